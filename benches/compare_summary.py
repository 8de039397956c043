#!/usr/bin/env python3
"""Ratios of torchlet's figures to PyTorch's, round by round, from the log of
`ROUNDS=<n> [MODELS=...] benches/compare_models.sh`: each round's torchlet/PyTorch ratio
(best to best, median to median), then the median over the rounds, for every network and
case both sides measured ("(Burn conv)" rows: torchlet on Burn's conv2d).

    python3 benches/compare_summary.py LOG
"""
import re
import statistics
import sys

ROW = re.compile(r"^(flex|flex bf16|pytorch contiguous|pytorch channels_last|pytorch bf16_autocast): "
                 r"(\w+) (.+?)\s+(\d+)\s+(\d+)\s*$")
BURN = "(Burn conv) "


def rounds(lines):
    """One {(side, case): (best, median)} per `== round` header."""
    out = []
    for line in lines:
        if line.startswith("== round"):
            out.append({})
        m = ROW.match(line)
        if m and out:
            key = (m.group(1), f"{m.group(2)} {m.group(3)}")
            out[-1][key] = (int(m.group(4)), int(m.group(5)))
    return out


def main():
    with open(sys.argv[1]) as f:
        rs = rounds(f.read().splitlines())
    print(f"\n{len(rs)} rounds; torchlet / PyTorch, best to best (median to median)")
    ours = sorted({(side, case) for r in rs for side, case in r if side.startswith("flex")})
    for mine, case in ours:
        theirs = case.replace(BURN, "")
        against = [("pytorch contiguous", "default layout"), ("pytorch channels_last", "channels_last")]
        if mine == "flex bf16":
            against = [("pytorch bf16_autocast", "bf16 autocast"), ("pytorch channels_last", "channels_last")]
        label = f"{case} (bf16)" if mine == "flex bf16" else case
        for side, name in against:
            pairs = [(r[(mine, case)], r[(side, theirs)]) for r in rs
                     if (mine, case) in r and (side, theirs) in r]
            if not pairs:
                continue
            best = [t[0] / p[0] for t, p in pairs]
            median = [t[1] / p[1] for t, p in pairs]
            per_round = ", ".join(f"{b:.2f} ({m:.2f})" for b, m in zip(best, median))
            print(f"{label:<46} vs {name:<15} median {statistics.median(best):.2f}x "
                  f"({statistics.median(median):.2f}x); rounds: {per_round}")


if __name__ == "__main__":
    main()
