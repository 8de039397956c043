#!/usr/bin/env python3
"""Side-by-side table and accuracy plot of a torchlet run and the PyTorch tutorial run.

    python3 scripts/compare_runs.py --ours runs/tutorial --pytorch runs/pytorch-tutorial \
        [--svg docs/results-accuracy.svg]

Reads `metrics.csv` of the torchlet run folder (written by `cargo run --example cifar10_train`)
and `epochs.csv` of the PyTorch run (written by `benches/pytorch_tutorial.py`), prints a
Markdown table per epoch, and writes both test-accuracy curves into one SVG (standard library
only). PyTorch's test loss is the tutorial's sum of batch means; it is divided by the number of
test batches here so it reads like torchlet's mean per image (equal up to the short last batch).
"""
import argparse
import csv
import math
import os


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def svg_plot(series, title, path):
    """Line plot of {name: [(epoch, value)]} in [0, 1] as percent."""
    w, h, left, right, top, bottom = 640, 400, 60, 150, 40, 50
    epochs = max(e for pts in series.values() for e, _ in pts)
    lo = math.floor(min(v for pts in series.values() for _, v in pts) * 10) / 10
    hi = math.ceil(max(v for pts in series.values() for _, v in pts) * 10) / 10
    x = lambda e: left + (e - 1) / max(epochs - 1, 1) * (w - left - right)
    y = lambda v: top + (hi - v) / max(hi - lo, 1e-9) * (h - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    steps = round((hi - lo) / 0.05)
    for i in range(steps + 1):
        v = lo + i * 0.05
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{100 * v:.0f}%</text>')
    for e in range(1, epochs + 1):
        if e == 1 or e % 5 == 0:
            out.append(f'<text x="{x(e):.1f}" y="{h - bottom + 18}" text-anchor="middle">{e}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">epoch</text>')
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"]
    for i, (name, pts) in enumerate(series.items()):
        c = colours[i % len(colours)]
        d = " ".join(f"{'M' if j == 0 else 'L'}{x(e):.1f},{y(v):.1f}" for j, (e, v) in enumerate(pts))
        out.append(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
        ly = top + 20 * i + 10
        out.append(f'<line x1="{w - right + 10}" x2="{w - right + 30}" y1="{ly}" y2="{ly}" '
                   f'stroke="{c}" stroke-width="2"/><text x="{w - right + 35}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", required=True, help="torchlet run folder (metrics.csv)")
    ap.add_argument("--pytorch", required=True, help="PyTorch run folder (epochs.csv)")
    ap.add_argument("--svg", help="write the accuracy curves here")
    ap.add_argument("--test-batches", type=int, default=157)
    args = ap.parse_args()
    ours = read_csv(os.path.join(args.ours, "metrics.csv"))
    torch = read_csv(os.path.join(args.pytorch, "epochs.csv"))
    print("| epoch | torchlet test acc | PyTorch test acc | torchlet train loss (mean) "
          "| PyTorch train loss (mean) | torchlet test loss | PyTorch test loss "
          "| torchlet epoch s | PyTorch epoch s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for o, t in zip(ours, torch):
        print(f"| {o['epoch']} | {100 * float(o['test_accuracy']):.2f}% "
              f"| {100 * float(t['test_accuracy']):.2f}% "
              f"| {float(o['train_loss_mean']):.4f} | {float(t['train_loss_mean']):.4f} "
              f"| {float(o['test_loss']):.4f} | {float(t['test_loss_sum']) / args.test_batches:.4f} "
              f"| {float(o['epoch_seconds']):.1f} | {float(t['epoch_seconds']):.1f} |")
    if args.svg:
        svg_plot({"torchlet (Flex)": [(int(r["epoch"]), float(r["test_accuracy"])) for r in ours],
                  "PyTorch": [(int(r["epoch"]), float(r["test_accuracy"])) for r in torch]},
                 "CIFAR-10 test accuracy, tutorial recipe", args.svg)


if __name__ == "__main__":
    main()
