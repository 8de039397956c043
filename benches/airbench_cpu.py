#!/usr/bin/env python3
"""airbench94's recipe in PyTorch on the CPU: the side-by-side for examples/cifar10_speedrun.rs.

Written from the recipe as the paper (arXiv 2404.00498) and torchlet's example describe it, for
the CPU: fp32 with channels_last (PyTorch's best fp32 CPU setting) or `--precision bf16`
(`torch.autocast("cpu", torch.bfloat16)`, AMX where the CPU has it). Same data (the binary
archive), same network, same hyper-parameters, same number of steps as the Rust example.

    python3 benches/airbench_cpu.py --archive ../shared/cifar10/cifar-10-binary.tar.gz
    python3 benches/airbench_cpu.py --archive ... --epochs 2 --threads 2 --results out.json

One line per epoch, then the accuracy with and without 6-view TTA and the training time
(evaluation excluded).
"""

import argparse
import io
import json
import math
import tarfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def read_archive(path):
    """(train_x, train_y, test_x, test_y) as uint8 NCHW and int64, from the binary layout."""
    parts = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            name = m.name.rsplit("/", 1)[-1]
            if name.endswith(".bin") and ("data_batch" in name or "test_batch" in name):
                parts[name] = tar.extractfile(m).read()

    def decode(names):
        raw = np.frombuffer(b"".join(parts[n] for n in names), dtype=np.uint8).reshape(-1, 3073)
        return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(
            raw[:, 0].astype(np.int64)
        )

    train = decode([f"data_batch_{i}.bin" for i in range(1, 6)])
    test = decode(["test_batch.bin"])
    return train + test


def normalize(x_u8):
    return (x_u8.float() / 255.0 - MEAN) / STD


def translate(x, pixels, gen):
    """Reflect-pad by `pixels`, crop 32x32 at a random offset per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="reflect")
    top = torch.randint(0, 2 * pixels + 1, (n,), generator=gen)
    left = torch.randint(0, 2 * pixels + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for dy in range(2 * pixels + 1):
        for dx in range(2 * pixels + 1):
            sel = (top == dy) & (left == dx)
            if sel.any():
                out[sel] = padded[sel, :, dy : dy + h, dx : dx + w]
    return out


class ConvGroup(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(c_out, eps=1e-12, momentum=0.4)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding="same", bias=False)
        self.norm2 = nn.BatchNorm2d(c_out, eps=1e-12, momentum=0.4)
        self.activ = nn.GELU()
        for norm in (self.norm1, self.norm2):
            norm.weight.requires_grad = False
        for conv in (self.conv1, self.conv2):
            w = conv.weight.data
            torch.nn.init.dirac_(w[: w.size(1)])

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Airbench94(nn.Module):
    def __init__(self, widths=(64, 256, 256)):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.activ = nn.GELU()
        self.block1 = ConvGroup(24, widths[0])
        self.block2 = ConvGroup(widths[0], widths[1])
        self.block3 = ConvGroup(widths[1], widths[2])
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(widths[2], 10, bias=False)
        self.whiten.weight.requires_grad = False

    def forward(self, x):
        x = self.activ(self.whiten(x))
        x = self.block3(self.block2(self.block1(x)))
        x = self.pool(x).flatten(1)
        return self.head(x) / 9.0


def init_whitening(layer, images, eps=5e-4):
    c, k = images.shape[1], layer.weight.shape[2]
    patches = images.unfold(2, k, 1).unfold(3, k, 1)  # [n, c, h', w', k, k]
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
    cov = patches.T @ patches / len(patches)
    values, vectors = torch.linalg.eigh(cov)
    values, vectors = values.flip(0), vectors.flip(1)
    filters = (vectors.T / torch.sqrt(values.clamp(min=0) + eps).view(-1, 1)).view(-1, c, k, k)
    layer.weight.data[:] = torch.cat([filters, -filters]).float()


def tta_logits(model, x):
    def mirror(v):
        return 0.5 * model(v) + 0.5 * model(v.flip(-1))

    padded = F.pad(x, (1,) * 4, mode="reflect")
    up_left, down_right = padded[:, :, :-2, :-2], padded[:, :, 2:, 2:]
    return 0.5 * mirror(x) + 0.25 * mirror(up_left) + 0.25 * mirror(down_right)


def evaluate(model, x_u8, y, tta, cl, autocast):
    model.eval()
    correct = 0
    with torch.no_grad(), autocast():
        for i in range(0, len(x_u8), 1000):
            x = normalize(x_u8[i : i + 1000])
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = tta_logits(model, x) if tta else model(x)
            correct += (logits.argmax(1) == y[i : i + 1000]).sum().item()
    model.train()
    return correct / len(x_u8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archive", required=True)
    ap.add_argument("--epochs", type=float, default=9.9)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--layout", choices=["channels_last", "contiguous"], default="channels_last")
    ap.add_argument("--results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train_x, train_y, test_x, test_y = read_archive(args.archive)
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
        test_x, test_y = test_x[: args.limit], test_y[: args.limit]
    cl = args.layout == "channels_last"
    bf16 = args.precision == "bf16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    n, bs = len(train_x), args.batch_size
    steps_per_epoch = math.ceil(n / bs)
    total_steps = math.ceil(args.epochs * n / bs)
    epochs = math.ceil(total_steps / steps_per_epoch)
    momentum, bias_scaler = 0.85, 64.0
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = 11.5 / kilostep_scale
    wd = 0.0153 * bs / kilostep_scale
    lr_bias = lr * bias_scaler

    start = time.perf_counter()
    model = Airbench94()
    init_whitening(model.whiten, normalize(train_x[:5000]))
    if cl:
        model = model.to(memory_format=torch.channels_last)
    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    biases = [p for k, p in named if "norm" in k]
    others = [p for k, p in named if "norm" not in k]
    optim = torch.optim.SGD(
        [
            dict(params=biases, lr=lr_bias, weight_decay=wd / lr_bias),
            dict(params=others, lr=lr, weight_decay=wd / lr),
        ],
        momentum=momentum,
        nesterov=True,
    )
    for g in optim.param_groups:
        g["initial_lr"] = g["lr"]
    schedule = np.interp(np.arange(total_steps + 1), [0, int(0.23 * total_steps), total_steps], [0.2, 1, 0.07])
    alpha = 0.95**5 * (np.arange(total_steps + 1) / total_steps) ** 3
    ema = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    flip_coin = torch.rand(n, generator=gen) < 0.5
    train_seconds = time.perf_counter() - start
    step, history = 0, []

    def lookahead(decay):
        sd = model.state_dict()
        for k, e in ema.items():
            e.lerp_(sd[k], 1 - decay)
            sd[k].copy_(e)

    for epoch in range(epochs):
        if epoch == 3:
            model.whiten.bias.requires_grad = False
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        losses = []
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            x = train_x[idx]
            flip = flip_coin[idx] ^ (epoch % 2 == 1)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            x = translate(normalize(x), 2, gen)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                loss = loss_fn(model(x), train_y[idx]).sum()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            for g in optim.param_groups:
                g["lr"] = g["initial_lr"] * schedule[step]
            optim.step()
            losses.append(loss.item() / len(idx))
            step += 1
            if step % 5 == 0:
                lookahead(alpha[step])
            if step >= total_steps:
                break
        if step >= total_steps:
            lookahead(1.0)
        train_seconds += time.perf_counter() - t0
        acc = evaluate(model, test_x, test_y, False, cl, autocast)
        history.append(dict(epoch=epoch + 1, train_loss=float(np.mean(losses)), test_accuracy=acc, train_seconds=train_seconds))
        print(f"epoch {epoch + 1:>2}/{epochs}  train loss {np.mean(losses):.4f}  test accuracy {100 * acc:.2f}%  training time {train_seconds:.1f} s", flush=True)
        if step >= total_steps:
            break
    t0 = time.perf_counter()
    tta_acc = evaluate(model, test_x, test_y, True, cl, autocast)
    tta_seconds = time.perf_counter() - t0
    acc = history[-1]["test_accuracy"]
    print(f"final: {100 * acc:.2f}% ({100 * tta_acc:.2f}% with 6-view TTA, {tta_seconds:.1f} s), training {train_seconds:.1f} s for {step} steps ({args.precision}, {args.layout}, torch {torch.__version__}, {args.threads} threads)")
    if args.results:
        with open(args.results, "w") as f:
            json.dump(dict(recipe="airbench94", framework=f"torch {torch.__version__}", precision=args.precision, layout=args.layout, epochs=args.epochs, seed=args.seed, steps=step, train_seconds=train_seconds, tta_seconds=tta_seconds, accuracy=acc, tta_accuracy=tta_acc, history=history), f, indent=2)


if __name__ == "__main__":
    main()
