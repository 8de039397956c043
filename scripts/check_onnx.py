#!/usr/bin/env python3
"""Runs a torchlet ONNX export in onnxruntime and compares it with torchlet.

    python3 scripts/check_onnx.py model.onnx

Reads the check files `examples/export_onnx.rs` writes next to MODEL (MODEL.input.f32,
MODEL.logits.f32, MODEL.labels.u8, MODEL.json), runs the images through onnxruntime's CPU
provider in batches of 100 (the batch axis is dynamic), and checks every logit against
torchlet's within 1e-4 (relative where |logit| > 1) and, for labelled images, that the accuracy
is the same. Exits 1 and says what differs otherwise. Needs `pip install onnxruntime numpy`.
"""
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort

TOLERANCE = 1e-4


def main(model_path):
    model = pathlib.Path(model_path)
    meta = json.loads(model.with_suffix(".json").read_text())
    n, c, h, w = meta["input_shape"]
    classes = meta["classes"]
    images = np.fromfile(model.with_suffix(".input.f32"), dtype="<f4").reshape(n, c, h, w)
    expected = np.fromfile(model.with_suffix(".logits.f32"), dtype="<f4").reshape(n, classes)
    labels = np.fromfile(model.with_suffix(".labels.u8"), dtype=np.uint8)

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = np.concatenate(
        [session.run(None, {name: images[i : i + 100]})[0] for i in range(0, n, 100)]
    )
    if got.shape != expected.shape:
        print(f"onnxruntime: logits of shape {got.shape}, torchlet {expected.shape}")
        return 1
    error = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
    worst = float(error.max()) if error.size else 0.0
    ort_acc = float((got.argmax(1) == labels).mean())
    line = (
        f"onnxruntime {ort.__version__}: {n} images, max |Δ| {worst:.2e} "
        f"(tolerance {TOLERANCE:g})"
    )
    if meta["labelled"]:
        line += f", accuracy {100 * ort_acc:.2f}% (torchlet {100 * meta['accuracy']:.2f}%)"
    print(line)
    if worst > TOLERANCE:
        at = np.unravel_index(error.argmax(), error.shape)
        print(f"logit {at} differs: onnxruntime {got[at]}, torchlet {expected[at]}")
        return 1
    if meta["labelled"] and abs(ort_acc - meta["accuracy"]) > 0.5 / max(n, 1):
        print("the accuracy differs")
        return 1
    print("same as torchlet")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
