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
import os

from svg_plot import line_plot


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


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
        curve = lambda rows: [[(int(r["epoch"]), float(r["test_accuracy"])) for r in rows]]
        epochs = len(ours)
        line_plot({"torchlet (Flex)": curve(ours), "PyTorch": curve(torch)}, args.svg,
                  "CIFAR-10 test accuracy, tutorial recipe", "epoch",
                  [e for e in range(1, epochs + 1) if e == 1 or e % 5 == 0])


if __name__ == "__main__":
    main()
