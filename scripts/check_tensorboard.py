#!/usr/bin/env python3
"""Check a TensorBoard event file against expected scalars.

Usage: check_tensorboard.py <event-file> <expected.json>

The event file is read with TensorBoard's own EventAccumulator. The JSON file
holds a list of {"tag": str, "step": int, "value": float}. Every scalar in the
event file must match the expected list exactly (same tags, same steps in the
same order per tag, values equal as float32; NaN matches NaN). Exits 0 when
everything matches, 1 on any mismatch, 2 on bad usage or unreadable input.
"""

import json
import math
import os
import sys

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def same_f32(a, b):
    fa = np.float32(a)
    fb = np.float32(b)
    if math.isnan(fa) or math.isnan(fb):
        return bool(math.isnan(fa) and math.isnan(fb))
    return bool(fa == fb) and bool(np.signbit(fa) == np.signbit(fb))


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    event_path, expected_path = argv[1], argv[2]
    if not os.path.isfile(event_path):
        print(f"error: {event_path} is not a file", file=sys.stderr)
        return 2
    try:
        with open(expected_path, encoding="utf-8") as f:
            expected = json.load(f)
    except (OSError, ValueError) as e:
        print(f"error: cannot read {expected_path}: {e}", file=sys.stderr)
        return 2

    expected_by_tag = {}
    for item in expected:
        expected_by_tag.setdefault(item["tag"], []).append(
            (int(item["step"]), float(item["value"]))
        )

    # size_guidance 0 = keep every scalar (the default samples 10,000 per tag).
    acc = EventAccumulator(event_path, size_guidance={"scalars": 0})
    acc.Reload()
    actual_by_tag = {
        tag: [(e.step, e.value) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }

    problems = []
    for tag in sorted(set(expected_by_tag) | set(actual_by_tag)):
        want = expected_by_tag.get(tag, [])
        got = actual_by_tag.get(tag, [])
        if len(want) != len(got):
            problems.append(f"{tag}: expected {len(want)} scalars, found {len(got)}")
        for i, ((ws, wv), (gs, gv)) in enumerate(zip(want, got)):
            if ws != gs or not same_f32(wv, gv):
                problems.append(
                    f"{tag}[{i}]: expected step {ws} value {str(np.float32(wv))}, "
                    f"found step {gs} value {str(np.float32(gv))}"
                )

    total = sum(len(v) for v in actual_by_tag.values())
    print(
        f"{event_path}: file_version={acc.file_version!r}, "
        f"{len(actual_by_tag)} tags, {total} scalars read by TensorBoard"
    )
    for tag in sorted(actual_by_tag):
        print(f"  {tag}: {len(actual_by_tag[tag])} scalars")
    if problems:
        print(f"MISMATCH: {len(problems)} problem(s)")
        for p in problems:
            print(f"  {p}")
        return 1
    print(f"OK: all {len(expected)} expected scalars match exactly (float32)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
