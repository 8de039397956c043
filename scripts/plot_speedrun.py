#!/usr/bin/env python3
"""Time to accuracy of the CPU speed-run: the test accuracy after each epoch against training
time, for torchlet's and PyTorch's runs, as an SVG; and a summary line per side (mean and
spread over the seeds given).

    python3 scripts/plot_speedrun.py --torchlet target/speedrun/torchlet-*.json \
        --pytorch target/speedrun/pytorch-*.json --svg docs/results-speedrun.svg

Reads the JSON that `examples/cifar10_speedrun.rs --results` and
`benches/airbench_cpu.py --results` write.
"""
import argparse
import json
import statistics


def load(paths):
    return [json.load(open(p)) for p in paths]


def summary(name, runs):
    def stat(key):
        vals = [r[key] for r in runs]
        mean = statistics.fmean(vals)
        spread = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return mean, spread, min(vals), max(vals)

    acc, tta = stat("accuracy"), stat("tta_accuracy")
    secs = stat("train_seconds")
    return (f"{name}: {len(runs)} run(s); accuracy {100 * acc[0]:.2f}% (sd {100 * acc[1]:.2f}), "
            f"with TTA {100 * tta[0]:.2f}% (sd {100 * tta[1]:.2f}); training {secs[0]:.1f} s "
            f"(range {secs[2]:.1f}-{secs[3]:.1f})")


def svg(series, path, title):
    """Line plot of {name: [[(seconds, accuracy)]]}: one line per run."""
    w, h, left, right, top, bottom = 680, 400, 60, 170, 40, 50
    pts = [p for runs in series.values() for run in runs for p in run]
    tmax = max(t for t, _ in pts)
    lo = max(0.0, min(v for _, v in pts) - 0.05)
    lo = int(lo * 10) / 10
    hi = min(1.0, int(max(v for _, v in pts) * 10 + 1) / 10)
    x = lambda t: left + t / tmax * (w - left - right)
    y = lambda v: top + (hi - v) / max(hi - lo, 1e-9) * (h - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    v = lo
    while v <= hi + 1e-9:
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{100 * v:.0f}%</text>')
        v += 0.05
    tick = 300 if tmax > 1200 else 60
    t = 0
    while t <= tmax:
        out.append(f'<text x="{x(t):.1f}" y="{h - bottom + 18}" text-anchor="middle">{t:.0f}</text>')
        t += tick
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">'
               f'training time (s), evaluation excluded</text>')
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"]
    for i, (name, runs) in enumerate(series.items()):
        c = colours[i % len(colours)]
        for run in runs:
            d = " ".join(f"{'M' if j == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for j, (t, v) in enumerate(run))
            out.append(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
            out.extend(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{c}"/>' for t, v in run)
        ly = top + 20 * i + 10
        out.append(f'<line x1="{w - right + 10}" x2="{w - right + 30}" y1="{ly}" y2="{ly}" '
                   f'stroke="{c}" stroke-width="2"/><text x="{w - right + 35}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torchlet", nargs="+", required=True, help="torchlet's results JSON files")
    ap.add_argument("--pytorch", nargs="+", required=True, help="PyTorch's results JSON files")
    ap.add_argument("--svg", help="write the time-to-accuracy plot here")
    args = ap.parse_args()
    ours, theirs = load(args.torchlet), load(args.pytorch)
    print(summary("torchlet", ours))
    print(summary(f"PyTorch ({theirs[0].get('precision', '?')}, {theirs[0].get('layout', '?')})", theirs))
    ratio = statistics.fmean(r["train_seconds"] for r in ours) / statistics.fmean(r["train_seconds"] for r in theirs)
    print(f"training time, torchlet / PyTorch: {ratio:.2f}x")
    if args.svg:
        curve = lambda r: [(h["train_seconds"], h["test_accuracy"]) for h in r["history"]]
        svg({"torchlet (Flex)": [curve(r) for r in ours],
             "PyTorch (" + theirs[0].get("precision", "") + ")": [curve(r) for r in theirs]},
            args.svg, "CIFAR-10 test accuracy vs training time, airbench94 on 2 CPU cores")


if __name__ == "__main__":
    main()
