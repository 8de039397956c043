#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench model`: the tutorial's MyConvModel, a per-image
linear baseline and the model zoo (airbench94, ResNet-18, VGG-11, the same networks as
`torchlet::model::zoo`) on the CPU, same machine, same thread count, in images/s.

    python3 benches/pytorch_model.py [--threads 2] [--iters 20] [--models SeedConvNet ...]

Measures the tutorial's default layout and `channels_last` (PyTorch's best fp32 CPU setting),
and for the zoo, where the CPU has AVX512-BF16 or AMX, `channels_last` under
`torch.autocast("cpu", torch.bfloat16)` (its best setting there).
"""
import argparse
import os
import time

import torch
from torch import nn


def seed_conv_net():
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, 1, padding=2), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, 1, padding=2), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, 1, padding=2), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.Linear(64, 10))


class ConvGroup(nn.Module):
    """airbench94's block: conv, 2x2 max-pool, bn, GELU, conv, bn, GELU."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(c_out, eps=1e-12, momentum=0.4)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding="same", bias=False)
        self.norm2 = nn.BatchNorm2d(c_out, eps=1e-12, momentum=0.4)
        self.activ = nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Scale(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def airbench94():
    return nn.Sequential(
        nn.Conv2d(3, 24, 2, padding=0, bias=True), nn.GELU(),
        ConvGroup(24, 64), ConvGroup(64, 256), ConvGroup(256, 256),
        nn.MaxPool2d(3), nn.Flatten(), nn.Linear(256, 10, bias=False), Scale(1 / 9))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def resnet18():
    layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    c_in = 64
    for c_out, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))


def vgg11():
    layers, c_in = [], 3
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c_in = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))


# name -> (constructor, training batch sizes), as in benches/model.rs
ZOO = {"Airbench94": (airbench94, [256, 1024]), "Resnet18": (resnet18, [128]),
       "Vgg11": (vgg11, [128])}


def linear_baseline():
    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(iters):
        s = time.perf_counter()
        fn()
        t.append(time.perf_counter() - s)
    t.sort()
    return t[0], t[len(t) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                    help="also time the zoo's training steps under torch.autocast('cpu', bfloat16) "
                         "with channels_last (auto: where the CPU has AVX512-BF16 or AMX)")
    ap.add_argument("--models", nargs="+", default=["SeedConvNet", "LinearBaseline"],
                    choices=["SeedConvNet", "LinearBaseline", *ZOO], help="models to measure")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'case':<56} {'best img/s':>14} {'median img/s':>14}")
    layouts = ["contiguous", "channels_last"]
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    has_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    if args.bf16 == "on" or (args.bf16 == "auto" and has_bf16):
        layouts.append("bf16_autocast")
        print("bf16: autocast rows (channels_last, torch.autocast('cpu', torch.bfloat16)); "
              f"CPU {'has AMX' if 'amx_bf16' in flags else 'has AVX512-BF16, no AMX' if has_bf16 else 'has neither'}")
    else:
        print("bf16: no autocast rows (this CPU has neither AVX512-BF16 nor AMX)" if not has_bf16
              else "bf16: autocast rows turned off")
    for layout in layouts:
        fmt = torch.contiguous_format if layout == "contiguous" else torch.channels_last
        amp = layout == "bf16_autocast"
        models = [("SeedConvNet", seed_conv_net, [64]), ("LinearBaseline", linear_baseline, [64])]
        models += [(name, make, batches) for name, (make, batches) in ZOO.items()]
        for name, make, batches in models:
            if name not in args.models or (amp and name not in ZOO):
                continue
            model = make().to(memory_format=fmt)
            cases = []
            if name == "SeedConvNet":
                for n in (1000, 64):
                    x = torch.rand(n, 3, 32, 32).to(memory_format=fmt)
                    model.eval()

                    def infer(x=x):
                        with torch.no_grad():
                            model(x)
                    cases.append((f"inference, batch {n}", infer, n))
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            loss_fn = nn.CrossEntropyLoss()
            for n in batches:
                x = torch.rand(n, 3, 32, 32).to(memory_format=fmt)
                y = torch.arange(n) % 10

                def train(x=x, y=y, model=model, opt=opt, amp=amp):
                    model.train()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                        loss = loss_fn(model(x), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                cases.append((f"train step, batch {n}", train, n))
            for case, fn, n in cases:
                best, median = timed(fn, 2, args.iters)
                label = f"pytorch {layout}: {name} {case}"
                print(f"{label:<56} {n / best:>14.0f} {n / median:>14.0f}", flush=True)


if __name__ == "__main__":
    main()
