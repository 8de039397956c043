#!/usr/bin/env python3
"""Check that safetensors exported by torchlet-model load into PyTorch and give the same logits.

Usage:
    cargo run -p torchlet-model --example export_for_pytorch -- OUT_DIR
    python scripts/check_export.py OUT_DIR [--tolerance 1e-4]

For every OUT_DIR/<name>.json the example wrote, this builds the matching PyTorch module
(from the model configuration and the key layout in the JSON), loads <name>.safetensors with
load_state_dict(strict=True), runs <name>.input.f32 through it in eval mode and compares with
<name>.logits.f32, the logits Burn computed. Exit status 1 if any check fails.

Key layouts (see torchlet_model::interop):
  tutorial  the module keeps its layers in self.model = nn.Sequential(...), keys model.<i>.*
            (for the default conv net exactly the tutorial's MyConvModel)
  plain     the module has attributes conv1, bn1, ..., fc2 (or fc for the linear baseline)
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn


def conv_options(cfg):
    activation = cfg.get("activation", "None")
    if isinstance(activation, dict):  # tolerate {"Relu": null}-style encodings
        activation = next(iter(activation))
    return {
        "num_classes": int(cfg.get("num_classes", 10)),
        "relu": activation == "Relu",
        "batch_norm": bool(cfg.get("batch_norm", False)),
        "dropout": float(cfg.get("dropout", 0.0)),
    }


def conv_sequential(num_classes, relu, batch_norm, dropout):
    """The Sequential whose indices torchlet's tutorial layout uses."""
    layers = []
    for c_in, c_out in [(3, 32), (32, 32), (32, 64)]:
        layers.append(nn.Conv2d(c_in, c_out, 5, padding=2))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        if relu:
            layers.append(nn.ReLU())
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(1024, 64))
    if relu:
        layers.append(nn.ReLU())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(64, num_classes))
    return nn.Sequential(*layers)


class TutorialStyle(nn.Module):
    """self.model = nn.Sequential(...): keys model.<index>.*"""

    def __init__(self, sequential):
        super().__init__()
        self.model = sequential

    def forward(self, x):
        return self.model(x)


class PlainConvNet(nn.Module):
    """Attributes named like the Burn fields: conv1, bn1, ..., fc1, fc2."""

    def __init__(self, num_classes, relu, batch_norm, dropout):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(32) if batch_norm else None
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
        self.bn2 = nn.BatchNorm2d(32) if batch_norm else None
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)
        self.bn3 = nn.BatchNorm2d(64) if batch_norm else None
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.fc1 = nn.Linear(1024, 64)
        self.fc2 = nn.Linear(64, num_classes)
        self.relu = relu

    def block(self, conv, bn, x):
        x = conv(x)
        if bn is not None:
            x = bn(x)
        if self.relu:
            x = torch.relu(x)
        return self.pool(x)

    def drop(self, x):
        return self.dropout(x) if self.dropout is not None else x

    def forward(self, x):
        x = self.block(self.conv1, self.bn1, x)
        x = self.block(self.conv2, self.bn2, x)
        x = self.block(self.conv3, self.bn3, x)
        x = self.drop(torch.flatten(x, 1))
        x = self.fc1(x)
        if self.relu:
            x = torch.relu(x)
        return self.fc2(self.drop(x))


class PlainLinear(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3072, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


def build(model_config, layout):
    ((kind, cfg),) = model_config.items()
    if kind == "Conv":
        opts = conv_options(cfg)
        if layout == "tutorial":
            return TutorialStyle(conv_sequential(**opts))
        return PlainConvNet(**opts)
    if kind == "Linear":
        num_classes = int(cfg.get("num_classes", 10))
        if layout == "tutorial":
            return TutorialStyle(nn.Sequential(nn.Flatten(), nn.Linear(3072, num_classes)))
        return PlainLinear(num_classes)
    raise ValueError(f"unknown model {kind!r}")


def read_f32(path, shape):
    data = np.frombuffer(path.read_bytes(), dtype="<f4")
    return torch.from_numpy(data.copy()).reshape(shape)


def check(meta_path, tolerance):
    meta = json.loads(meta_path.read_text())
    model = build(meta["model"], meta["layout"])
    state = load_file(str(meta_path.parent / meta["weights"]))
    model.load_state_dict(state, strict=True)  # raises on any missing/unexpected/misshaped key
    model.eval()
    inputs = read_f32(meta_path.parent / meta["input"], meta["input_shape"])
    expected = read_f32(meta_path.parent / meta["logits"], meta["logits_shape"])
    with torch.no_grad():
        logits = model(inputs)
    diff = (logits - expected).abs().max().item()
    return diff, sorted(state)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    metas = sorted(args.dir.glob("*.json"))
    if not metas:
        print(f"no exported models (*.json) in {args.dir}", file=sys.stderr)
        return 1
    failed = 0
    for meta in metas:
        try:
            diff, keys = check(meta, args.tolerance)
        except Exception as err:  # noqa: BLE001 - report every failure, keep going
            print(f"FAIL {meta.stem}: {type(err).__name__}: {err}")
            failed += 1
            continue
        status = "ok  " if diff <= args.tolerance else "FAIL"
        failed += status == "FAIL"
        print(f"{status} {meta.stem}: strict load of {len(keys)} tensors, max |diff| = {diff:.3g} "
              f"(keys {keys[0]} .. {keys[-1]})")
    print(f"{len(metas) - failed}/{len(metas)} exports match PyTorch within {args.tolerance:g} (torch {torch.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
