#!/usr/bin/env python3
"""Regenerate the PyTorch reference fixtures of torchlet-model's zoo (tests/fixtures/model/zoo/).

Usage:  python scripts/zoo_fixtures.py [OUT_DIR]   (default: tests/fixtures/model/zoo)
Needs:  torch, safetensors, numpy.

Defines VGG-11/16 (batch norm, CIFAR layout of kuangliu/pytorch-cifar), ResNet-18 (same
source) and airbench94's network (KellerJordan/cifar10-airbench) in PyTorch, with exactly
the parameter names of torchlet_model::zoo. For each, seeded, at a narrow width so the files
stay small, it writes:

  <model>.pth / .safetensors   state_dict (torch.save or safetensors.torch.save_file, see
                               FORMATS), with non-trivial batch norm weights, biases and
                               running statistics (a few train-mode forwards)
  <model>_logits.f32           eval-mode logits of inputs.f32, [2, 10]

and once:

  inputs.f32                   2 images [2, 3, 32, 32]: uniform in [0, 1), and N(1, 2²)
  manifest.json                per model: the narrow config, the state_dict keys and shapes,
                               and the parameter count of the narrow model; under
                               "full_num_params", each model's count at full width
                               (sum(p.numel() for p in m.parameters()))

The .f32 files are raw little-endian float32, row-major, no header.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

VGG_LAYERS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """kuangliu's VGG, with a base width and adaptive average pooling."""

    def __init__(self, name, base_width=64, num_classes=10, in_channels=3):
        super().__init__()
        layers, channels = [], in_channels
        for item in VGG_LAYERS[name]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                width = item // 64 * base_width
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, base_width=64, num_classes=10, in_channels=3):
        super().__init__()
        w = base_width
        self.conv1 = nn.Conv2d(in_channels, w, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.layer1 = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w))
        self.layer4 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2), BasicBlock(8 * w, 8 * w))
        self.linear = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(torch.flatten(out, 1))


def airbench_bn(width):
    # airbench's BatchNorm(momentum=0.6, eps=1e-12) is nn.BatchNorm2d(eps=1e-12, momentum=1 - 0.6)
    return nn.BatchNorm2d(width, eps=1e-12, momentum=0.4)


class ConvGroup(nn.Module):
    def __init__(self, channels_in, channels_out):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = airbench_bn(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding="same", bias=False)
        self.norm2 = airbench_bn(channels_out)
        self.activ = nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Airbench94(nn.Module):
    """airbench94's make_net(), with named attributes instead of Sequential indices."""

    def __init__(self, widths=(64, 256, 256), num_classes=10, in_channels=3, size=32):
        super().__init__()
        whiten_width = 2 * in_channels * 2 * 2
        self.whiten = nn.Conv2d(in_channels, whiten_width, 2, padding=0, bias=True)
        self.activ = nn.GELU()
        self.block1 = ConvGroup(whiten_width, widths[0])
        self.block2 = ConvGroup(widths[0], widths[1])
        self.block3 = ConvGroup(widths[1], widths[2])
        self.pool = nn.MaxPool2d(3)
        s = (size - 1) // 8 // 3
        self.head = nn.Linear(widths[2] * s * s, num_classes, bias=False)

    def forward(self, x):
        x = self.activ(self.whiten(x))
        x = self.block3(self.block2(self.block1(x)))
        x = torch.flatten(self.pool(x), 1)
        return self.head(x) / 9


# Which files hold each state_dict: both formats once, one for the others (smaller fixtures).
FORMATS = {"vgg11": ["pth"], "vgg16": ["safetensors"], "resnet18": ["pth", "safetensors"], "airbench94": ["pth"]}


def build(name, narrow):
    if name in VGG_LAYERS:
        return VGG(name, base_width=4 if narrow else 64), {"base_width": 4}
    if name == "resnet18":
        return ResNet18(base_width=4 if narrow else 64), {"base_width": 4}
    widths = (8, 16, 16) if narrow else (64, 256, 256)
    return Airbench94(widths=widths), {"widths": [8, 16, 16]}


def settle(model):
    """Non-trivial batch norm affine parameters and running statistics, and a classifier
    whose logits differ between images well beyond the tests' 1e-4: after batch norms and
    global pooling, a narrow network's features vary little from image to image, so the
    last layer's weights are scaled by 10 and its bias (which would dominate) is zeroed."""
    with torch.no_grad():
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last.weight.mul_(10)
        if last.bias is not None:
            last.bias.zero_()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 32, 32))
    return model.eval()


def write_f32(path, tensor):
    path.write_bytes(tensor.detach().cpu().numpy().astype("<f4").tobytes())


def main():
    default = Path(__file__).resolve().parent.parent / "tests/fixtures/model/zoo"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    # Two unlike images, so that the logits depend on the input well beyond the tolerance:
    # one uniform in [0, 1) like ToTensor(), one Gaussian with another mean and spread.
    inputs = torch.stack([torch.rand(3, 32, 32), torch.randn(3, 32, 32) * 2 + 1])
    write_f32(out / "inputs.f32", inputs)
    manifest = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "seed": 0,
        "inputs": {"file": "inputs.f32", "shape": list(inputs.shape)},
        "full_num_params": {},
        "models": {},
    }
    for name in ["vgg11", "vgg16", "resnet18", "airbench94"]:
        full, _ = build(name, narrow=False)
        manifest["full_num_params"][name] = sum(p.numel() for p in full.parameters())
        torch.manual_seed(1)
        model, config = build(name, narrow=True)
        model = settle(model)
        with torch.no_grad():
            logits = model(inputs)
        state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        if "pth" in FORMATS[name]:
            torch.save(model.state_dict(), out / f"{name}.pth")
        if "safetensors" in FORMATS[name]:
            save_file(state, str(out / f"{name}.safetensors"))
        write_f32(out / f"{name}_logits.f32", logits)
        manifest["models"][name] = {
            "config": config,
            "files": [f"{name}.{ext}" for ext in FORMATS[name]],
            "logits": {"file": f"{name}_logits.f32", "shape": list(logits.shape)},
            "num_params": sum(p.numel() for p in model.parameters()),
            "state_dict": {k: list(v.shape) for k, v in model.state_dict().items()},
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    sizes = {f.name: f.stat().st_size for f in out.iterdir() if f.is_file()}
    print(f"wrote {out}: {sum(sizes.values()) / 1e6:.2f} MB, largest {max(sizes.values()) / 1e3:.0f} KB")
    print(json.dumps(manifest["full_num_params"]))


if __name__ == "__main__":
    main()
