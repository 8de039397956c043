#!/usr/bin/env python3
"""torchvision's CIFAR10 + DataLoader on the same data and machine as `cargo bench --bench data_loader`.

    python3 benches/torchvision_loader.py [--archive PATH] [--epochs 3]

The binary archive is converted once into torchvision's own `cifar-10-batches-py` pickles (in a
cache folder), then measured exactly as the tutorial uses it:
`CIFAR10(root, train=True, transform=ToTensor())` + `DataLoader(batch_size=64, shuffle=True)`,
with 0 and 2 workers, without and with RandomCrop(32, 4) + RandomHorizontalFlip.
"""
import argparse
import os
import pickle
import tarfile
import tempfile
import time

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHIVE = os.path.join(HERE, "..", "..", "shared", "cifar10", "cifar-10-binary.tar.gz")


def to_python_layout(archive, root):
    """Writes torchvision's cifar-10-batches-py pickles from the binary archive."""
    out = os.path.join(root, "cifar-10-batches-py")
    if os.path.exists(os.path.join(out, "test_batch")):
        return
    os.makedirs(out, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        members = {os.path.basename(m.name): m for m in tar.getmembers()}
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            raw = np.frombuffer(tar.extractfile(members[name + ".bin"]).read(), dtype=np.uint8)
            rec = raw.reshape(-1, 3073)
            entry = {"data": rec[:, 1:].copy(), "labels": rec[:, 0].astype(int).tolist(),
                     "batch_label": name, "filenames": [f"{i}.png" for i in range(len(rec))]}
            with open(os.path.join(out, name), "wb") as f:
                pickle.dump(entry, f)
        names = tar.extractfile(members["batches.meta.txt"]).read().decode().split()
        with open(os.path.join(out, "batches.meta"), "wb") as f:
            pickle.dump({"label_names": names}, f)


class CIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10; the md5 checks are skipped because the files were rebuilt here."""

    def _check_integrity(self):
        return True

    def _load_meta(self):
        with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", default=os.environ.get("TORCHLET_CIFAR10", DEFAULT_ARCHIVE))
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "torchlet-torchvision-cifar"))
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    to_python_layout(args.archive, args.cache)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs")
    print(f"{'loader (batch 64, shuffle)':<52} {'best img/s':>14} {'median img/s':>14}")
    plain = transforms.ToTensor()
    augment = transforms.Compose([transforms.RandomCrop(32, padding=4),
                                  transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    for tname, tf in [("ToTensor", plain), ("RandomCrop(32,4)+Flip+ToTensor", augment)]:
        ds = CIFAR10(args.cache, train=True, transform=tf, download=False)
        for workers in [0, 2]:
            loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                persistent_workers=workers > 0)
            rates = []
            for epoch in range(args.epochs + 1):
                t = time.perf_counter()
                n = 0
                for imgs, targets in loader:
                    n += imgs.shape[0]
                rate = n / (time.perf_counter() - t)
                if epoch > 0:  # the first epoch warms up workers and caches
                    rates.append(rate)
            rates.sort(reverse=True)
            name = f"torchvision, {tname}, {workers} workers"
            print(f"{name:<52} {rates[0]:>14.0f} {rates[len(rates) // 2]:>14.0f}", flush=True)


if __name__ == "__main__":
    main()
