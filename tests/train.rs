//! Chapters 3–6 — loss + SGD, checkpoints, the train/eval loop, devices.
//!
//! Small generated datasets test resume determinism, checkpoints, TensorBoard files and
//! every fault; the real archive (`../shared/cifar10/`) tests that a short run learns.
//! Without `CI` set, the real-data test says SKIPPED when the archive is absent; with `CI`
//! set it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use common::{params, resumable_sgd, serial};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use torchlet::burn;
use torchlet::data::{Cifar10, ImageDataset, ImageShape};
use torchlet::model::{Activation, LinearBaselineConfig, Model, ModelConfig, SeedConvNetConfig};
use torchlet::train::tensorboard::read_scalars;
use torchlet::train::{
    DeviceChoice, EpochSummary, Observer, OptimizerConfig, Progress, SavedCheckpoint, StepLog,
    StopHandle, TrainConfig, TrainError, TrainReport, Trainer, select_device,
};

// ---------------------------------------------------------------- helpers

fn flex() -> torchlet::train::SelectedDevice {
    select_device(DeviceChoice::Flex).unwrap()
}

/// `n` images of `classes` classes; each class has its own brightness pattern plus noise, so
/// a model can learn them.
fn synthetic(n: usize, classes: usize, seed: u32) -> ImageDataset {
    let mut pixels = Vec::with_capacity(n * 3072);
    let mut labels = Vec::with_capacity(n);
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    for i in 0..n {
        let label = i % classes;
        labels.push(label as u16);
        for p in 0..3072usize {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let channel = p / 1024;
            let base = if channel == label % 3 {
                60 + 40 * (label as u32 % 4)
            } else {
                30
            };
            pixels.push((base + state % 60) as u8);
        }
    }
    let names = (0..classes).map(|c| format!("class{c}")).collect();
    ImageDataset::new(pixels, labels, ImageShape::CIFAR, names).unwrap()
}

fn small_config(model: ModelConfig, epochs: usize) -> TrainConfig {
    TrainConfig {
        model,
        optimizer: OptimizerConfig::sgd_momentum(0.01, 0.9),
        epochs,
        batch_size: 16,
        log_every: 2,
        num_workers: 1,
        ..TrainConfig::tutorial()
    }
}

fn linear(classes: usize) -> ModelConfig {
    ModelConfig::Linear(LinearBaselineConfig::new().with_num_classes(classes))
}

/// Every float tensor of a module, by path, as raw bits.
/// Records step lines and epoch summaries; can request a stop at a given step.
#[derive(Default)]
struct Recorder {
    steps: Mutex<Vec<StepLog>>,
    epochs: Mutex<Vec<EpochSummary>>,
    stop_at: Option<(usize, usize, StopHandle)>,
}

impl Observer for Recorder {
    fn progress(&self, p: &Progress) {
        if let Some((epoch, batch, stop)) = &self.stop_at
            && p.phase == torchlet::train::Phase::Train
            && p.epoch == *epoch
            && p.done == *batch
        {
            stop.stop();
        }
    }
    fn step(&self, s: &StepLog) {
        self.steps.lock().unwrap().push(s.clone());
    }
    fn epoch(&self, e: &EpochSummary) {
        self.epochs.lock().unwrap().push(e.clone());
    }
}

fn fit(config: TrainConfig, out: &Path, data: &ImageDataset) -> Result<TrainReport, TrainError> {
    Trainer::new(config, out)
        .device(flex())
        .fit(data.clone(), data.clone())
}

// ---------------------------------------------------------------- real data

#[test]
fn short_real_run_beats_chance_and_lowers_loss() {
    let _serial = serial();
    let Some(archive) = common::real_archive() else {
        return;
    };
    let cifar = Cifar10::open(archive).unwrap();
    let out = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        limit: Some(2000),
        epochs: 2,
        batch_size: 16,
        optimizer: OptimizerConfig::sgd_momentum(0.01, 0.9),
        log_every: 50,
        ..TrainConfig::tutorial()
    };
    let started = std::time::Instant::now();
    let report = Trainer::new(config, out.path())
        .device(flex())
        .fit(cifar.train, cifar.test)
        .unwrap();
    let [first, second] = report.history.as_slice() else {
        panic!("two epochs expected: {:?}", report.history)
    };
    println!(
        "{first}\n{second}\n({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        second.train_loss_mean < first.train_loss_mean,
        "{first}\n{second}"
    );
    assert!(second.train_loss_mean < (10f64).ln(), "{second}");
    assert!(second.test_accuracy > 0.2, "chance is 0.1: {second}");
    assert_eq!(second.test_images, 2000);
    assert_eq!(first.train_batches, 125);
    let matrix = report.confusion.unwrap();
    assert_eq!(matrix.total(), 2000);
    assert!((matrix.accuracy() - second.test_accuracy).abs() < 1e-12);
}

// ---------------------------------------------------------------- the run folder

#[test]
fn run_folder_has_every_artifact_and_tensorboard_reads_back_exactly() {
    let _serial = serial();
    let data = synthetic(64, 4, 1);
    let out = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let config = TrainConfig {
        log_every: 1,
        ..small_config(linear(4), 2)
    };
    let report = Trainer::new(config, out.path())
        .device(flex())
        .observer(recorder.clone())
        .fit(data.clone(), data)
        .unwrap();
    let dir = out.path();
    for file in [
        "config.json",
        "metrics.csv",
        "loss.svg",
        "accuracy.svg",
        "confusion.csv",
        "confusion.md",
        "per_class_accuracy.csv",
        "samples.png",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let config: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config.epochs, 2);
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // TensorBoard: one train_loss per step, test_loss and test_accuracy per epoch, exact.
    let events: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents")
        })
        .collect();
    assert_eq!(events.len(), 1);
    let scalars = read_scalars(&events[0]).unwrap();
    let train: Vec<(i64, f32)> = scalars
        .iter()
        .filter(|s| s.tag == "train_loss")
        .map(|s| (s.step, s.value))
        .collect();
    let steps = recorder.steps.lock().unwrap();
    assert_eq!(train.len(), 8);
    assert_eq!(steps.len(), 8);
    for (tb, step) in train.iter().zip(steps.iter()) {
        assert_eq!(*tb, (step.global_step as i64, step.loss as f32));
    }
    for (tag, f) in [
        (
            "test_loss",
            (|e: &EpochSummary| e.test_loss) as fn(&EpochSummary) -> f64,
        ),
        ("test_accuracy", |e: &EpochSummary| e.test_accuracy),
    ] {
        let got: Vec<(i64, f32)> = scalars
            .iter()
            .filter(|s| s.tag == tag)
            .map(|s| (s.step, s.value))
            .collect();
        let want: Vec<(i64, f32)> = report
            .history
            .iter()
            .map(|e| (e.epoch as i64, f(e) as f32))
            .collect();
        assert_eq!(got, want, "{tag}");
    }
    // The epoch sums are the sums of the step losses.
    let first_epoch: f64 = steps.iter().filter(|s| s.epoch == 1).map(|s| s.loss).sum();
    assert!((first_epoch - report.history[0].train_loss_sum).abs() < 1e-9);
    assert_eq!(*recorder.epochs.lock().unwrap(), report.history);
}

// ---------------------------------------------------------------- checkpoints

#[test]
fn checkpoint_round_trip_loads_into_a_fresh_model() {
    let _serial = serial();
    let data = synthetic(48, 3, 2);
    let out = tempfile::tempdir().unwrap();
    let model = ModelConfig::Conv(SeedConvNetConfig::new().with_num_classes(3));
    let report = fit(small_config(model, 2), out.path(), &data).unwrap();
    let latest = SavedCheckpoint::latest(out.path()).unwrap();
    assert_eq!(latest.state.epoch, 2);
    assert_eq!(latest.state.global_step, 6);
    assert_eq!(latest.state.history, report.history);
    assert_eq!(
        report.last_checkpoint.as_deref(),
        Some(latest.path.as_path())
    );
    let loaded: Model = latest.load_model(&Device::flex()).unwrap();
    assert_eq!(params(&loaded), params(&report.model));
    // Same predictions.
    let x = Tensor::<4>::ones([2, 3, 32, 32], &Device::flex());
    let a = report
        .model
        .forward(x.clone())
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap();
    let b = loaded
        .valid()
        .forward(x)
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert_eq!(a, b);
    // keep_last = 2: both epochs are there, and the best is one of them.
    let best = SavedCheckpoint::best(out.path()).unwrap();
    assert!(best.state.test_accuracy.is_some());
    assert_eq!(
        torchlet::train::list_checkpoints(out.path()).unwrap().len(),
        2
    );
}

#[test]
fn resume_is_bit_exact_after_an_epoch_and_after_a_stop_mid_epoch() {
    let _serial = serial();
    let data = synthetic(64, 4, 3);
    let model = ModelConfig::Conv(
        SeedConvNetConfig::new()
            .with_num_classes(4)
            .with_activation(Activation::Relu)
            .with_dropout(0.25),
    );
    let optimizer = resumable_sgd(0.01);
    let config = |epochs| TrainConfig {
        augment: true,
        seed: 7,
        optimizer: optimizer.clone(),
        ..small_config(model.clone(), epochs)
    };

    // Two epochs straight.
    let straight = tempfile::tempdir().unwrap();
    let a = fit(config(2), straight.path(), &data).unwrap();

    // One epoch, then resume to two.
    let split = tempfile::tempdir().unwrap();
    fit(config(1), split.path(), &data).unwrap();
    let b = Trainer::new(config(2), split.path())
        .device(flex())
        .resume_from(split.path())
        .fit(data.clone(), data.clone())
        .unwrap();
    assert_eq!(
        params(&a.model),
        params(&b.model),
        "1 + 1 epochs differ from 2"
    );
    assert_eq!(a.history.len(), 2);
    assert_eq!(b.history.len(), 2);
    assert_eq!(a.history[1].train_loss_sum, b.history[1].train_loss_sum);

    // Stopped (as by Ctrl-C) after the 3rd step of epoch 1, then resumed.
    let stopped = tempfile::tempdir().unwrap();
    let trainer = Trainer::new(config(2), stopped.path()).device(flex());
    let recorder = Arc::new(Recorder {
        stop_at: Some((1, 3, trainer.stop_handle())),
        ..Recorder::default()
    });
    let c = trainer
        .observer(recorder)
        .fit(data.clone(), data.clone())
        .unwrap();
    assert!(c.stopped_early);
    assert!(c.history.is_empty());
    let saved = SavedCheckpoint::latest(stopped.path()).unwrap();
    assert_eq!((saved.state.epoch, saved.state.batches_into_epoch), (0, 3));
    let d = Trainer::new(config(2), stopped.path())
        .device(flex())
        .resume_from(stopped.path())
        .fit(data.clone(), data)
        .unwrap();
    assert_eq!(
        params(&a.model),
        params(&d.model),
        "stopped + resumed differs from straight"
    );
    assert_eq!(a.history[0].train_loss_sum, d.history[0].train_loss_sum);
}

// ---------------------------------------------------------------- faults

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let _serial = serial();
    // One step per epoch; a learning rate so large that the second step overflows.
    let data = synthetic(8, 2, 4);
    let out = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        optimizer: OptimizerConfig::sgd(1e38),
        batch_size: 8,
        ..small_config(linear(2), 3)
    };
    let err = fit(config, out.path(), &data).unwrap_err();
    let TrainError::NonFiniteLoss {
        epoch,
        step,
        last_checkpoint,
        ..
    } = &err
    else {
        panic!("expected a non-finite loss error, got {err}")
    };
    assert_eq!((*epoch, *step), (2, 2));
    let latest = SavedCheckpoint::latest(out.path()).unwrap();
    assert_eq!(last_checkpoint.as_deref(), Some(latest.path.as_path()));
    assert_eq!(latest.state.epoch, 1);
    assert!(err.to_string().contains("epoch-0001"), "{err}");
}

#[test]
fn an_unwritable_output_folder_fails_before_training() {
    let _serial = serial();
    let data = synthetic(8, 2, 5);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let recorder = Arc::new(Recorder::default());
    let err = Trainer::new(small_config(linear(2), 1), file.join("run"))
        .device(flex())
        .observer(recorder.clone())
        .fit(data.clone(), data)
        .unwrap_err();
    assert!(matches!(err, TrainError::OutputNotWritable { .. }), "{err}");
    assert!(err.to_string().contains("a-file"), "{err}");
    assert!(recorder.steps.lock().unwrap().is_empty());
}

#[test]
fn resuming_with_another_config_or_a_corrupt_checkpoint_is_a_clear_error() {
    let _serial = serial();
    let data = synthetic(32, 2, 6);
    let out = tempfile::tempdir().unwrap();
    fit(small_config(linear(2), 1), out.path(), &data).unwrap();

    let resume = |config: TrainConfig| {
        Trainer::new(config, out.path())
            .device(flex())
            .resume_from(out.path())
            .fit(data.clone(), data.clone())
            .unwrap_err()
    };
    let conv = ModelConfig::Conv(SeedConvNetConfig::new().with_num_classes(2));
    let err = resume(small_config(conv, 2));
    assert!(
        matches!(err, TrainError::IncompatibleResume { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("model differs"), "{err}");

    let mut other_lr = small_config(linear(2), 2);
    other_lr.optimizer = OptimizerConfig::sgd_momentum(0.5, 0.9);
    let err = resume(other_lr);
    assert!(err.to_string().contains("optimizer differs"), "{err}");

    let err = resume(small_config(linear(2), 1));
    assert!(err.to_string().contains("already has 1 epochs"), "{err}");

    // A truncated weights file.
    let latest = SavedCheckpoint::latest(out.path()).unwrap();
    let model_file = latest.path.join("model.bpk");
    let bytes = std::fs::read(&model_file).unwrap();
    std::fs::write(&model_file, &bytes[..bytes.len() / 2]).unwrap();
    let err = resume(small_config(linear(2), 2));
    assert!(matches!(err, TrainError::BadCheckpoint { .. }), "{err}");
    assert!(err.to_string().contains("model.bpk"), "{err}");

    // A state file that is not JSON: the folder is no longer a checkpoint.
    std::fs::write(&model_file, &bytes).unwrap();
    std::fs::write(latest.path.join("state.json"), b"{ not json").unwrap();
    let err = SavedCheckpoint::open(&latest.path).unwrap_err();
    assert!(err.to_string().contains("invalid state"), "{err}");
    let err = resume(small_config(linear(2), 2));
    assert!(matches!(err, TrainError::NoCheckpoint(_)), "{err}");
}

#[test]
fn every_optimizer_and_schedule_trains() {
    let _serial = serial();
    let data = synthetic(32, 2, 7);
    for (optimizer, schedule) in [
        ("sgd", "step"),
        ("sgd-momentum", "cosine"),
        ("adam", "one-cycle"),
        ("adamw", "constant"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let config = TrainConfig {
            optimizer: optimizer.parse::<OptimizerConfig>().unwrap().with_lr(0.001),
            schedule: schedule.parse().unwrap(),
            ..small_config(linear(2), 1)
        };
        let report = fit(config, out.path(), &data).unwrap();
        assert!(
            report.history[0].train_loss_mean.is_finite(),
            "{optimizer}/{schedule}"
        );
    }
}
