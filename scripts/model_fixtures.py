#!/usr/bin/env python3
"""Regenerate the PyTorch reference fixtures of torchlet-model (tests/fixtures/model/).

Usage:  python scripts/model_fixtures.py [OUT_DIR]   (default: tests/fixtures/model)
Needs:  torch, safetensors, numpy.

Everything is seeded (torch.manual_seed(0)), so the files only change when PyTorch's
random number generator or default initialisation does. What it writes:

  conv_tutorial.pth          MyConvModel().state_dict(), the tutorial's own keys
                             (model.0.*, model.2.*, model.4.*, model.7.*, model.8.*)
  conv_plain.safetensors     the same weights under plain keys (conv1.*, ..., fc2.*),
                             written by safetensors.torch.save_file
  linear_tutorial.pth        LinearBaseline (nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))
                             in self.model): keys model.1.weight, model.1.bias
  linear_plain.pth           the same weights under plain keys (fc.weight, fc.bias)
  linear_plain.safetensors   the same, as safetensors
  linear_checkpoint.pth      a training checkpoint dict holding the tutorial-key state dict:
                             {"epoch": 3, "model_state_dict": ..., "note": "..."}
  inputs.f32                 4 images [4, 3, 32, 32], uniform in [0, 1) like ToTensor()
  conv_logits.f32            MyConvModel logits of inputs.f32, [4, 10]
  linear_logits.f32          LinearBaseline logits of inputs.f32, [4, 10]
  manifest.json              shapes, keys and the PyTorch version that produced the files

The .f32 files are raw little-endian float32, row-major, no header.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import Conv2d, Flatten, Linear, MaxPool2d, Sequential


class MyConvModel(nn.Module):
    """The tutorial's network, verbatim."""

    def __init__(self):
        super().__init__()
        self.model = Sequential(
            Conv2d(3, 32, 5, padding=2),
            MaxPool2d(2),
            Conv2d(32, 32, 5, padding=2),
            MaxPool2d(2),
            Conv2d(32, 64, 5, padding=2),
            MaxPool2d(2),
            Flatten(),
            Linear(1024, 64),
            Linear(64, 10),
        )

    def forward(self, x):
        return self.model(x)


class LinearBaseline(nn.Module):
    """Per-image flatten -> Linear(3072, 10), in the tutorial's style (self.model)."""

    def __init__(self):
        super().__init__()
        self.model = Sequential(Flatten(), Linear(3072, 10))

    def forward(self, x):
        return self.model(x)


# Tutorial Sequential index -> plain attribute name (the Burn field names).
CONV_PLAIN = {"0": "conv1", "2": "conv2", "4": "conv3", "7": "fc1", "8": "fc2"}
LINEAR_PLAIN = {"1": "fc"}


def plain_keys(state_dict, names):
    """model.<i>.<param> -> <names[i]>.<param>."""
    out = {}
    for key, value in state_dict.items():
        prefix, index, param = key.split(".", 2)
        assert prefix == "model", key
        out[f"{names[index]}.{param}"] = value.detach().clone().contiguous()
    return out


def write_f32(path, tensor):
    path.write_bytes(tensor.detach().cpu().numpy().astype("<f4").tobytes())


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests/fixtures/model"
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    conv = MyConvModel().eval()
    linear = LinearBaseline().eval()
    inputs = torch.rand(4, 3, 32, 32)

    with torch.no_grad():
        conv_logits = conv(inputs)
        linear_logits = linear(inputs)

    torch.save(conv.state_dict(), out / "conv_tutorial.pth")
    save_file(plain_keys(conv.state_dict(), CONV_PLAIN), str(out / "conv_plain.safetensors"))
    torch.save(linear.state_dict(), out / "linear_tutorial.pth")
    linear_plain = plain_keys(linear.state_dict(), LINEAR_PLAIN)
    torch.save(linear_plain, out / "linear_plain.pth")
    save_file(linear_plain, str(out / "linear_plain.safetensors"))
    torch.save(
        {"epoch": 3, "model_state_dict": linear.state_dict(), "note": "checkpoint"},
        out / "linear_checkpoint.pth",
    )

    write_f32(out / "inputs.f32", inputs)
    write_f32(out / "conv_logits.f32", conv_logits)
    write_f32(out / "linear_logits.f32", linear_logits)

    manifest = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "seed": 0,
        "inputs": {"file": "inputs.f32", "shape": list(inputs.shape)},
        "conv": {
            "logits": {"file": "conv_logits.f32", "shape": list(conv_logits.shape)},
            "state_dict": {k: list(v.shape) for k, v in conv.state_dict().items()},
            "num_params": sum(p.numel() for p in conv.parameters()),
        },
        "linear": {
            "logits": {"file": "linear_logits.f32", "shape": list(linear_logits.shape)},
            "state_dict": {k: list(v.shape) for k, v in linear.state_dict().items()},
            "num_params": sum(p.numel() for p in linear.parameters()),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB), torch {torch.__version__}")


if __name__ == "__main__":
    main()
