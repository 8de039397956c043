#!/usr/bin/env python3
"""The tutorial's full PyTorch training loop, adapted only to read the same CIFAR-10 archive.

    python3 benches/pytorch_tutorial.py --out runs/pytorch [--epochs 20] [--shuffle] [--threads N]

This is the last chapter's "complete code" (MyConvModel, CrossEntropyLoss, SGD lr 0.01,
batch 64, 20 epochs, loss printed every 100 steps with elapsed seconds, a no-grad test pass
with loss sum and argmax accuracy, TensorBoard scalars, a `torch.save` per epoch). Changes:
- the data comes from the binary archive (converted once into torchvision's pickles, then read
  by torchvision's own `CIFAR10` class: see torchvision_loader.py);
- `--shuffle` shuffles the training set (the tutorial's loop does not; its data chapter does);
- messages are in English, and `epochs.csv` + `summary.json` in `--out` record per-epoch
  figures, wall time and peak memory for docs/results.md.
"""
import argparse
import csv
import json
import os
import resource
import time

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from torchvision import transforms

from torchvision_loader import CIFAR10, DEFAULT_ARCHIVE, to_python_layout


class MyConvModel(nn.Module):
    """The tutorial's network, layer for layer."""

    def __init__(self):
        super(MyConvModel, self).__init__()
        self.model = nn.Sequential(
            nn.Conv2d(3, 32, 5, 1, padding=2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, 1, padding=2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, 1, padding=2),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 64),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.model(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", default=os.environ.get("TORCHLET_CIFAR10", DEFAULT_ARCHIVE))
    ap.add_argument("--cache", default="/tmp/torchlet-torchvision-cifar")
    ap.add_argument("--out", default="runs/pytorch-tutorial")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    to_python_layout(args.archive, args.cache)
    wall = time.perf_counter()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    train_data = CIFAR10(args.cache, train=True, transform=transforms.ToTensor(), download=False)
    test_data = CIFAR10(args.cache, train=False, transform=transforms.ToTensor(), download=False)
    train_data_size = len(train_data)
    test_data_size = len(test_data)
    print(f"train set: {train_data_size}, test set: {test_data_size}")
    train_dataloader = DataLoader(train_data, 64, shuffle=args.shuffle)
    test_dataloader = DataLoader(test_data, 64)

    my_conv_model = MyConvModel().to(device)
    loss_fun = nn.CrossEntropyLoss().to(device)
    optim_sgd = torch.optim.SGD(my_conv_model.parameters(), lr=1e-2)
    train_time = 0
    test_time = 0
    writer = SummaryWriter(os.path.join(args.out, "logs_train"))
    rows = []
    for i in range(args.epochs):
        print(f"epoch {i + 1}")
        my_conv_model.train()
        start_time = time.time()
        train_loss_sum = 0.0
        for imgs, targets in train_dataloader:
            imgs = imgs.to(device)
            targets = targets.to(device)
            outputs = my_conv_model(imgs)
            loss = loss_fun(outputs, targets)
            optim_sgd.zero_grad()
            loss.backward()
            optim_sgd.step()
            train_loss_sum += loss.item()
            train_time = train_time + 1
            if train_time % 100 == 0:
                end_time = time.time()
                print(f"step {train_time}, loss {loss.item()}, {end_time - start_time:.2f} s")
                writer.add_scalar("train_loss", loss.item(), train_time)
        train_seconds = time.time() - start_time

        total_test_loss = 0
        total_accuracy = 0
        my_conv_model.eval()
        with torch.no_grad():
            for imgs, targets in test_dataloader:
                imgs = imgs.to(device)
                targets = targets.to(device)
                outputs = my_conv_model(imgs)
                test_loss = loss_fun(outputs, targets)
                total_test_loss = total_test_loss + test_loss.item()
                total_accuracy = total_accuracy + (outputs.argmax(1) == targets).sum()
        accuracy = total_accuracy.to("cpu").item() / test_data_size
        epoch_seconds = time.time() - start_time
        print(f"test loss sum {total_test_loss}, test accuracy {accuracy}")
        test_time = test_time + 1
        writer.add_scalar("test_loss", total_test_loss, test_time)
        writer.add_scalar("test_accuracy", accuracy, test_time)
        torch.save(my_conv_model, os.path.join(args.out, f"myConvModel_{i + 1}.pth"))
        rows.append({"epoch": i + 1, "train_loss_sum": train_loss_sum,
                     "train_loss_mean": train_loss_sum / len(train_dataloader),
                     "test_loss_sum": total_test_loss, "test_accuracy": accuracy,
                     "train_seconds": round(train_seconds, 3),
                     "epoch_seconds": round(epoch_seconds, 3),
                     "train_images_per_s": round(train_data_size / train_seconds, 1)})
        print(f"epoch {i + 1}: train loss sum {train_loss_sum:.2f}, test accuracy {accuracy:.4f}, "
              f"{epoch_seconds:.1f} s")
    writer.close()

    with open(os.path.join(args.out, "epochs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    summary = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "shuffle": args.shuffle, "epochs": args.epochs,
               "final_test_accuracy": rows[-1]["test_accuracy"],
               "wall_seconds": round(time.perf_counter() - wall, 1),
               "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
