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

from svg_plot import line_plot


def load(paths):
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(json.load(f))
    return runs


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
        tmax = max(r["train_seconds"] for r in ours + theirs)
        tick = 300 if tmax > 1200 else 60
        line_plot({"torchlet (Flex)": [curve(r) for r in ours],
                   f"PyTorch ({theirs[0].get('precision', '?')})": [curve(r) for r in theirs]},
                  args.svg, "CIFAR-10 test accuracy vs training time, airbench94 on the CPU",
                  "training time (s), evaluation excluded", range(0, int(tmax) + 1, tick),
                  x0=0, width=680, legend=170, dots=True)


if __name__ == "__main__":
    main()
