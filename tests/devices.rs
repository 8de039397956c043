//! Chapter six, beyond one device: data-parallel training over several devices
//! (`Trainer::devices`, `--devices flex,flex`) takes the same steps as one device at the same
//! global batch, resumes bit-exactly on a fixed device list, and reports a failing device.
//!
//! Flex has one device, so `flex,flex` runs two replicas on the same CPU: the code path of
//! several GPUs (batch split, one worker thread per device, gradients combined on the main
//! device), without their speed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use common::{StopAt, params, resumable_sgd, serial, synthetic};
use torchlet::burn;
use torchlet::data::{ImageDataset, ImageShape};
use torchlet::model::nn::{
    BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Dropout, DropoutConfig, Flatten, Linear,
    LinearConfig, MaxPool2d, MaxPool2dConfig, Padding,
};
use torchlet::model::{
    Activation, ImageClassifier, LinearBaselineConfig, ModelConfig, SeedConvNetConfig,
};
use torchlet::train::{
    Observer, OptimizerConfig, RunStart, SavedCheckpoint, SelectedDevice, TrainConfig, TrainError,
    TrainReport, Trainer, parse_device_list, select_devices,
};

/// `n` Flex devices, as `--devices flex,flex,...` opens them.
fn flex(n: usize) -> Vec<SelectedDevice> {
    let list = vec!["flex"; n].join(",");
    select_devices(&parse_device_list(&list).unwrap()).unwrap()
}

fn config(model: ModelConfig, epochs: usize, batch_size: usize) -> TrainConfig {
    TrainConfig {
        model,
        optimizer: resumable_sgd(0.02),
        epochs,
        batch_size,
        log_every: 0,
        num_workers: 1,
        augment: true,
        seed: 5,
        ..TrainConfig::tutorial()
    }
}

/// The tutorial's conv net for 4 classes, without dropout (a one-device and an N-device run
/// draw different masks by design).
fn conv4() -> ModelConfig {
    ModelConfig::Conv(
        SeedConvNetConfig::new()
            .with_num_classes(4)
            .with_activation(Activation::Relu),
    )
}

/// Remembers the device line of the run's start.
#[derive(Default)]
struct DeviceLine(Mutex<String>);

impl Observer for DeviceLine {
    fn run_started(&self, start: &RunStart) {
        *self.0.lock().unwrap() = start.device.clone();
    }
}

fn fit_on(
    devices: Vec<SelectedDevice>,
    config: TrainConfig,
    out: &Path,
    data: &ImageDataset,
) -> (TrainReport, String) {
    let line = Arc::new(DeviceLine::default());
    let report = Trainer::new(config, out)
        .devices(devices)
        .observer(line.clone())
        .final_reports(false)
        .fit(data.clone(), data.clone())
        .unwrap();
    let line = line.0.lock().unwrap().clone();
    (report, line)
}

/// Largest `|a - b| / max(1, |a|)` over every parameter of two models of one architecture.
fn max_rel_diff(a: &impl Module, b: &impl Module) -> f64 {
    let (a, b) = (params(a), params(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "different parameters"
    );
    a.iter()
        .flat_map(|(key, x)| x.iter().zip(&b[key]))
        .map(|(&x, &y)| {
            let (x, y) = (f32::from_bits(x) as f64, f32::from_bits(y) as f64);
            (x - y).abs() / x.abs().max(1.0)
        })
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------- the same steps

#[test]
fn two_and_three_flex_devices_take_the_steps_of_one_at_the_same_global_batch() {
    let _serial = serial();
    // 60 images at batch 16: three full batches and one of 12, so shards of 8/8, 6/6 (two
    // devices) and 6/5/5, 4/4/4 (three) — uneven shards are weighted by their size.
    let data = synthetic(60, 4, ImageShape::CIFAR, 2);
    for model in [
        conv4(),
        ModelConfig::Linear(LinearBaselineConfig::new().with_num_classes(4)),
    ] {
        let one_dir = tempfile::tempdir().unwrap();
        let (one, line) = fit_on(flex(1), config(model.clone(), 2, 16), one_dir.path(), &data);
        assert!(!line.contains("devices"), "{line}");
        for n in [2, 3] {
            let dir = tempfile::tempdir().unwrap();
            let (many, line) = fit_on(flex(n), config(model.clone(), 2, 16), dir.path(), &data);
            assert!(line.starts_with(&format!("{n} devices: flex")), "{line}");
            let diff = max_rel_diff(&one.model, &many.model);
            println!("{model:?} on {n} devices: largest relative difference {diff:e}");
            assert!(diff < 1e-6, "{n} devices differ from one by {diff:e}");
            for (a, b) in one.history.iter().zip(&many.history) {
                let rel = (a.train_loss_sum - b.train_loss_sum).abs() / a.train_loss_sum;
                assert!(rel < 1e-5, "epoch {}: loss sums {a:?} vs {b:?}", a.epoch);
                assert_eq!(a.test_accuracy, b.test_accuracy);
            }
        }
        // Training moved the weights well beyond that tolerance: the check is not vacuous.
        let untrained = tempfile::tempdir().unwrap();
        let (zero, _) = fit_on(flex(1), config(model, 1, 16), untrained.path(), &data);
        assert!(max_rel_diff(&one.model, &zero.model) > 1e-3);
    }
}

// ---------------------------------------------------------------- resume

/// A user's network with batch norm (per-device statistics, averaged running values) and
/// dropout (per-device random streams): the hard case for a bit-exact resume.
#[derive(Module, Debug)]
struct NormNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    pool: MaxPool2d,
    dropout: Dropout,
    flatten: Flatten,
    fc: Linear,
}

impl NormNet {
    fn seeded(seed: u64) -> Self {
        let device = Device::flex();
        device.seed(seed);
        Self {
            conv1: Conv2dConfig::new(3, 6, [3, 3])
                .with_padding(Padding::Same)
                .init(&device),
            bn1: BatchNorm2dConfig::new(6).init(&device),
            pool: MaxPool2dConfig::new([4, 4]).with_strides([4, 4]).init(),
            dropout: DropoutConfig::new(0.3).init(),
            flatten: Flatten::new(),
            fc: LinearConfig::new(6 * 8 * 8, 4).init(&device),
        }
    }
}

impl ImageClassifier for NormNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.bn1.forward(self.conv1.forward(images)).clamp_min(0.0); // [batch, 6, 32, 32]
        let x = self.pool.forward(x); // [batch, 6, 8, 8]
        let x = self.dropout.forward(self.flatten.forward(x)); // [batch, 384]
        self.fc.forward(x) // [batch, 4]
    }

    fn num_classes(&self) -> usize {
        4
    }
}

#[test]
fn a_two_device_run_stopped_mid_epoch_resumes_bit_exactly() {
    let _serial = serial();
    let data = synthetic(48, 4, ImageShape::CIFAR, 3);
    let cfg = || config(conv4(), 2, 8);
    let trainer = |dir: &Path| {
        Trainer::new(cfg(), dir)
            .model(NormNet::seeded(9))
            .devices(flex(2))
            .final_reports(false)
    };

    let straight_dir = tempfile::tempdir().unwrap();
    let straight = trainer(straight_dir.path())
        .fit(data.clone(), data.clone())
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let first = trainer(dir.path());
    let stopper = Arc::new(StopAt {
        at: Some((1, 4, first.stop_handle())),
        ..StopAt::default()
    });
    let stopped = first
        .observer(stopper)
        .fit(data.clone(), data.clone())
        .unwrap();
    assert!(stopped.stopped_early);
    let saved = SavedCheckpoint::latest(dir.path()).unwrap();
    assert_eq!((saved.state.epoch, saved.state.batches_into_epoch), (0, 4));
    let resumed = trainer(dir.path())
        .resume_from(dir.path())
        .fit(data.clone(), data)
        .unwrap();

    assert_eq!(
        params(&straight.model),
        params(&resumed.model),
        "stopped + resumed on two devices differs from straight"
    );
    assert_eq!(
        straight.history[0].train_loss_sum,
        resumed.history[0].train_loss_sum
    );
    assert_eq!(straight.history[1].test_loss, resumed.history[1].test_loss);
}

// ---------------------------------------------------------------- faults

/// Panics on a batch of exactly five images: the shape a two-device split of ten gives.
#[derive(Module, Debug)]
struct FailsOnFive {
    fc: Linear,
}

impl ImageClassifier for FailsOnFive {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let batch = images.dims()[0];
        assert_ne!(batch, 5, "a shard of five images");
        self.fc.forward(images.flatten(1, 3))
    }

    fn num_classes(&self) -> usize {
        4
    }
}

#[test]
fn a_failing_device_and_a_non_finite_loss_stop_the_run_with_clear_errors() {
    let _serial = serial();
    let data = synthetic(20, 4, ImageShape::CIFAR, 4);
    let net = FailsOnFive {
        fc: LinearConfig::new(3072, 4).init(&Device::flex()),
    };
    let dir = tempfile::tempdir().unwrap();
    let err = Trainer::new(config(conv4(), 1, 10), dir.path())
        .model(net)
        .devices(flex(2))
        .fit(data.clone(), data.clone())
        .unwrap_err();
    match &err {
        TrainError::Replica {
            replica,
            step,
            message,
            device,
        } => {
            assert_eq!((*replica, *step), (0, 1));
            assert!(device.contains("flex"), "{device}");
            assert!(message.contains("a shard of five images"), "{message}");
        }
        other => panic!("expected a replica error, got {other}"),
    }
    assert!(err.to_string().contains("step 1"), "{err}");
    assert!(
        SavedCheckpoint::latest(dir.path()).is_err(),
        "no checkpoint"
    );

    // A learning rate that overflows the weights: the run stops before the bad step.
    let dir = tempfile::tempdir().unwrap();
    let huge = TrainConfig {
        optimizer: OptimizerConfig::sgd(1e38),
        ..config(
            ModelConfig::Linear(LinearBaselineConfig::new().with_num_classes(4)),
            3,
            10,
        )
    };
    let err = Trainer::new(huge, dir.path())
        .devices(flex(2))
        .fit(data.clone(), data)
        .unwrap_err();
    let TrainError::NonFiniteLoss {
        step,
        last_checkpoint,
        ..
    } = &err
    else {
        panic!("expected a non-finite loss error, got {err}")
    };
    assert!(*step >= 2, "{err}");
    let latest = SavedCheckpoint::latest(dir.path()).ok().map(|c| c.path);
    assert_eq!(last_checkpoint, &latest, "{err}");
}

// ---------------------------------------------------------------- the GPU path

/// The same split over wgpu (in CI a software Vulkan, lavapipe, listed once: the adapter
/// twice, as `--devices wgpu,wgpu`) takes the steps of one wgpu device.
#[cfg(feature = "wgpu")]
#[test]
fn two_wgpu_replicas_take_the_steps_of_one() {
    let _serial = serial();
    let open = |list: &str| select_devices(&parse_device_list(list).unwrap());
    let one = match open("wgpu") {
        Ok(one) => one,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "no usable wgpu adapter in CI: {e}"
            );
            eprintln!("SKIPPED two_wgpu_replicas_take_the_steps_of_one: {e}");
            return;
        }
    };
    let data = synthetic(12, 4, ImageShape::CIFAR, 6);
    let linear = || {
        TrainConfig {
            // Stateless, so nothing depends on where Burn restores optimizer state.
            optimizer: OptimizerConfig::sgd(0.02),
            ..config(
                ModelConfig::Linear(LinearBaselineConfig::new().with_num_classes(4)),
                1,
                6,
            )
        }
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // An adapter number past the list is an error naming the count, not a panic.
    let err = open("wgpu:99").unwrap_err().to_string();
    assert!(
        err.contains("wgpu:99") && err.contains("adapter(s)"),
        "{err}"
    );
    let (a, _) = fit_on(one, linear(), a_dir.path(), &data);
    let (b, line) = fit_on(open("wgpu,wgpu").unwrap(), linear(), b_dir.path(), &data);
    assert!(line.starts_with("2 devices: wgpu"), "{line}");
    let diff = max_rel_diff(&a.model, &b.model);
    println!("linear on 2 wgpu replicas: largest relative difference {diff:e}");
    assert!(diff < 1e-5, "two wgpu replicas differ from one by {diff:e}");
}
