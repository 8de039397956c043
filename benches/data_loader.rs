//! Loader throughput: one epoch of CIFAR-10's training split (shuffle + ToTensor + batch 64
//! onto the Flex device), without and with augmentation, in images/s.
//!
//! ```text
//! cargo bench --bench data_loader            # full measurement (5 epochs each, best and median)
//! python3 benches/torchvision_loader.py      # the same job with torchvision, for the ratio
//! ```
//!
//! Under `cargo test --benches` it runs one short epoch as a smoke test. Reads the archive from
//! `TORCHLET_CIFAR10` or `../shared/cifar10/cifar-10-binary.tar.gz`.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use torchlet::burn::data::dataloader::DataLoaderBuilder;
use torchlet::burn::tensor::Device;
use torchlet::data::{Cifar10, Compose, DataLoader, ImageBatcher, ImageDataset};

fn archive() -> PathBuf {
    std::env::var_os("TORCHLET_CIFAR10")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/cifar10/cifar-10-binary.tar.gz")
        })
}

struct Stats {
    best: f64,
    median: f64,
}

fn measure(epochs: usize, mut run_epoch: impl FnMut(u64) -> usize) -> Stats {
    run_epoch(1000); // warm-up: threads, allocator, page faults
    let mut rates: Vec<f64> = (0..epochs as u64)
        .map(|e| {
            let t = Instant::now();
            let n = run_epoch(e);
            n as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| b.total_cmp(a));
    Stats {
        best: rates[0],
        median: rates[rates.len() / 2],
    }
}

fn ours(
    train: &Arc<ImageDataset>,
    transform: Compose,
    workers: usize,
    limit: usize,
) -> Result<DataLoader> {
    Ok(DataLoader::builder(train.clone())
        .batch_size(64)
        .shuffle(true)
        .seed(0)
        .num_workers(workers)
        .transform(transform)
        .limit(limit)
        .device(&Device::flex())
        .build()?)
}

fn main() -> Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let path = archive();
    let t = Instant::now();
    let cifar = Cifar10::open(&path).with_context(|| {
        format!(
            "the loader benchmark reads the real archive; none at {}",
            path.display()
        )
    })?;
    let parse = t.elapsed().as_secs_f64();
    let train = Arc::new(cifar.train);
    let (limit, epochs) = if full { (train.len(), 5) } else { (2_000, 1) };
    println!(
        "CIFAR-10 parsed from {} in {parse:.2} s; {} threads available; {} images per epoch",
        path.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        limit
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "loader (batch 64, shuffle, Flex)", "best img/s", "median img/s"
    );
    let report = |name: &str, s: Stats| println!("{name:<52} {:>14.0} {:>14.0}", s.best, s.median);

    for (name, transform) in [
        ("torchlet, ToTensor", Compose::to_tensor()),
        (
            "torchlet, RandomCrop(32,4)+Flip+ToTensor",
            Compose::cifar10_augment(),
        ),
    ] {
        for workers in [0, 1, 2] {
            let loader = ours(&train, transform.clone(), workers, limit)?;
            let s = measure(epochs, |e| {
                loader.iter_epoch(e).map(|b| b.targets.dims()[0]).sum()
            });
            report(&format!("{name}, {workers} workers"), s);
        }
    }

    // Where the time goes: host-side batches only (gather + ToTensor), one thread.
    let loader = ours(&train, Compose::to_tensor(), 0, limit)?;
    let s = measure(epochs, |e| {
        let order = loader.order(e);
        (0..loader.len())
            .map(|i| loader.host_batch(e, &order, i).len())
            .sum()
    });
    report("torchlet host batches only (no tensor), 1 thread", s);

    // Burn's own DataLoader + our Batcher on the same dataset, for comparison.
    let subset = Arc::new(train.select(&(0..limit).collect::<Vec<_>>())?);
    for workers in [0, 2] {
        let batcher = ImageBatcher::new(Compose::to_tensor(), train.shape(), 0)?;
        let loader = DataLoaderBuilder::new(batcher)
            .batch_size(64)
            .shuffle(0)
            .num_workers(workers)
            .set_device(Device::flex())
            .build(subset.clone());
        let s = measure(epochs, |_| {
            loader
                .iter()
                .map(|b| b.map(|b| b.targets.dims()[0]).unwrap_or(0))
                .sum()
        });
        report(
            &format!("burn DataLoaderBuilder + ImageBatcher, {workers} workers"),
            s,
        );
    }
    Ok(())
}
