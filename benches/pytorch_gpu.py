#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench devices` on a GPU: the same networks and batches
(the tutorial's net at 64, vgg11 and resnet18 at 128, airbench94's net at 1024 and 256), one
training step each (forward, CrossEntropy, backward, SGD with momentum), in images/s over
timed steps after warm-up, in eager fp32 and in `channels_last` + bf16/fp16 autocast (AMP).

    python3 benches/pytorch_gpu.py [--device cuda] [--steps 20] [--models conv vgg11 ...]

The networks are benches/pytorch_model.py's tutorial net and scripts/zoo_fixtures.py's zoo
(the parity fixtures' definitions, with torchlet's parameter names). `--device cpu` runs the same loop on the CPU (for trying the
script; the CPU comparisons live in benches/pytorch_model.py).
"""
import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "scripts")]
from pytorch_model import seed_conv_net as tutorial_net  # noqa: E402
from zoo_fixtures import VGG, Airbench94, ResNet18  # noqa: E402


CASES = [
    ("conv (the tutorial's net), batch 64", "conv", tutorial_net, 64),
    ("vgg11, batch 128", "vgg11", lambda: VGG("vgg11"), 128),
    ("resnet18, batch 128", "resnet18", ResNet18, 128),
    ("airbench94, batch 1024", "airbench94", Airbench94, 1024),
    ("airbench94, batch 256", "airbench94", Airbench94, 256),
]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(make, batch, device, steps, warmup, amp_dtype):
    model = make().to(device)
    fmt = torch.channels_last if amp_dtype else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(batch, 3, 32, 32, device=device).to(memory_format=fmt)
    y = torch.arange(batch, device=device) % 10
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["conv", "vgg11", "resnet18", "airbench94"])
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {device} ({name})")
    amp = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    print(f"{'case (training, one step)':<44} {'eager fp32 img/s':>18} {'channels_last AMP img/s':>24}")
    torch.backends.cudnn.benchmark = True
    for label, key, make, batch in CASES:
        if key not in args.models:
            continue
        fp32 = measure(make, batch, device, args.steps, args.warmup, None)
        mixed = measure(make, batch, device, args.steps, args.warmup, amp)
        print(f"{label:<44} {fp32:>18.1f} {mixed:>24.1f}  (AMP dtype {str(amp).removeprefix('torch.')})")


if __name__ == "__main__":
    main()
