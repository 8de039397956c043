//! Training speed through `Trainer` on a device list: the tutorial's net (batch 64), vgg11 and
//! resnet18 (batch 128) and airbench94's net (batch 1024 and 256), in training images/s over
//! the steps after a warm-up (a GPU compiles its kernels during the first steps).
//!
//! ```text
//! cargo bench --profile dev --features torchlet/wgpu,torchlet/ndarray --bench devices -- --devices wgpu
//! cargo bench --profile dev --features torchlet/wgpu,torchlet/ndarray --bench devices -- --devices flex,flex conv
//! benches/gpu.sh            # on a GPU machine: this and PyTorch CUDA side by side
//! ```
//!
//! `--devices LIST` as in `cifar10_train` (default `flex`); other words keep only the cases
//! whose name contains them; `--steps N` timed steps per case (default 20), after 3 warm-up
//! steps. Under `cargo test --benches` it runs the tutorial's net for 2 steps on `flex` and on
//! `flex,flex` as a smoke test.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use torchlet::data::{ImageDataset, ImageShape};
use torchlet::model::{ModelConfig, ModelKind};
use torchlet::train::{
    Observer, OptimizerConfig, Phase, Progress, TrainConfig, Trainer, parse_device_list,
    select_devices,
};

/// The time each training step ended.
#[derive(Default)]
struct StepClock(Mutex<Vec<Instant>>);

impl Observer for StepClock {
    fn progress(&self, p: &Progress) {
        if p.phase == Phase::Train {
            self.0.lock().unwrap().push(Instant::now());
        }
    }
}

/// `n` random 3 × 32 × 32 images of 10 classes.
fn random_images(n: usize) -> ImageDataset {
    let mut state = 0x2545_f491_u32;
    let pixels = (0..n * 3072)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let labels = (0..n).map(|i| (i % 10) as u16).collect();
    let names = (0..10).map(|c| format!("class{c}")).collect();
    ImageDataset::new(pixels, labels, ImageShape::CIFAR, names).unwrap()
}

/// Training images/s of `kind` at `batch` over `steps` steps after `warmup`.
fn measure(kind: ModelKind, batch: usize, list: &str, warmup: usize, steps: usize) -> f64 {
    let devices = select_devices(&parse_device_list(list).unwrap()).unwrap();
    let config = TrainConfig {
        model: ModelConfig::default_for(kind),
        optimizer: OptimizerConfig::sgd_momentum(0.01, 0.9),
        epochs: 1,
        batch_size: batch,
        log_every: 0,
        augment: true,
        ..TrainConfig::tutorial()
    };
    let clock = Arc::new(StepClock::default());
    let out = tempfile::tempdir().unwrap();
    Trainer::new(config, out.path())
        .devices(devices)
        .observer(clock.clone())
        .final_reports(false)
        .fit(random_images(batch * (warmup + steps)), random_images(10))
        .unwrap();
    let times = clock.0.lock().unwrap();
    let (start, end) = (times[warmup - 1], times[warmup + steps - 1]);
    (steps * batch) as f64 / (end - start).as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let list = value("--devices").unwrap_or_else(|| "flex".into());
    let steps: usize = value("--steps").and_then(|s| s.parse().ok()).unwrap_or(20);
    let words: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--") && !matches!(args.get(i.wrapping_sub(1)), Some(f) if f == "--devices" || f == "--steps")
        })
        .map(|(_, a)| a)
        .collect();
    let cases = [
        ("conv (the tutorial's net), batch 64", ModelKind::Conv, 64),
        ("vgg11, batch 128", ModelKind::Vgg11, 128),
        ("resnet18, batch 128", ModelKind::Resnet18, 128),
        ("airbench94, batch 1024", ModelKind::Airbench94, 1024),
        ("airbench94, batch 256", ModelKind::Airbench94, 256),
    ];
    if !full {
        for list in ["flex", "flex,flex"] {
            let rate = measure(ModelKind::Conv, 8, list, 1, 1);
            println!("smoke: conv, batch 8, {list}: {rate:.0} img/s");
        }
        return;
    }
    println!(
        "devices: {list}; {steps} timed steps after 3 warm-up steps; {}",
        date()
    );
    println!("{:<44} {:>14}", "case (training, Trainer)", "img/s");
    for (name, kind, batch) in cases {
        if words.iter().all(|w| name.contains(w.as_str())) {
            let rate = measure(kind, batch, &list, 3, steps);
            println!("{name:<44} {rate:>14.1}");
        }
    }
}

/// Seconds since the epoch, for the log (no clock crate needed).
fn date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("unix time {secs}")
}
