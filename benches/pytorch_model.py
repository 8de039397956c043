#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench model`: the tutorial's MyConvModel and a per-image
linear baseline on the CPU, same machine, same thread count, in images/s.

    python3 benches/pytorch_model.py [--threads 2] [--iters 20] [--models SeedConvNet]

Measures the tutorial's default layout and `channels_last` (PyTorch's best CPU setting).
"""
import argparse
import time

import torch
from torch import nn


def seed_conv_net():
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, 1, padding=2), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, 1, padding=2), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, 1, padding=2), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.Linear(64, 10))


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
    ap.add_argument("--models", nargs="+", default=["SeedConvNet", "LinearBaseline"],
                    choices=["SeedConvNet", "LinearBaseline"], help="models to measure")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'case':<56} {'best img/s':>14} {'median img/s':>14}")
    for layout in ["contiguous", "channels_last"]:
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        for name, make in [("SeedConvNet", seed_conv_net), ("LinearBaseline", linear_baseline)]:
            if name not in args.models:
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
            x = torch.rand(64, 3, 32, 32).to(memory_format=fmt)
            y = torch.arange(64) % 10
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            loss_fn = nn.CrossEntropyLoss()

            def train(x=x, y=y, model=model, opt=opt):
                model.train()
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            cases.append(("train step, batch 64", train, 64))
            for case, fn, n in cases:
                best, median = timed(fn, 2, args.iters)
                label = f"pytorch {layout}: {name} {case}"
                print(f"{label:<56} {n / best:>14.0f} {n / median:>14.0f}", flush=True)


if __name__ == "__main__":
    main()
