#!/usr/bin/env python3
"""Ratios of torchlet's conv-net figures to PyTorch's, round by round, from the log of
`ROUNDS=<n> benches/compare_models.sh`: each round's torchlet/PyTorch ratio (best to best,
median to median), then the median over the rounds.

    python3 benches/compare_summary.py LOG
"""
import re
import statistics
import sys

CASES = ["train step, batch 64", "inference, batch 64", "inference, batch 1000"]
ROW = re.compile(r"^(flex|pytorch contiguous|pytorch channels_last): SeedConvNet (.+?)\s+(\d+)\s+(\d+)\s*$")


def rounds(lines):
    """One {(side, case): (best, median)} per `== round` header."""
    out = []
    for line in lines:
        if line.startswith("== round"):
            out.append({})
        m = ROW.match(line)
        if m and out:
            out[-1][(m.group(1), m.group(2))] = (int(m.group(3)), int(m.group(4)))
    return out


def main():
    with open(sys.argv[1]) as f:
        rs = rounds(f.read().splitlines())
    print(f"\n{len(rs)} rounds; torchlet / PyTorch, best to best (median to median)")
    for case in CASES:
        for side, name in [("pytorch contiguous", "default layout"),
                           ("pytorch channels_last", "channels_last")]:
            pairs = [(r[("flex", case)], r[(side, case)]) for r in rs
                     if ("flex", case) in r and (side, case) in r]
            if not pairs:
                continue
            best = [t[0] / p[0] for t, p in pairs]
            median = [t[1] / p[1] for t, p in pairs]
            per_round = ", ".join(f"{b:.2f} ({m:.2f})" for b, m in zip(best, median))
            print(f"{case:<22} vs {name:<15} median {statistics.median(best):.2f}x "
                  f"({statistics.median(median):.2f}x); rounds: {per_round}")


if __name__ == "__main__":
    main()
