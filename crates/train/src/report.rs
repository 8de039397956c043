//! What a run reports while it trains: events handed to an [`Observer`].
//!
//! The library prints nothing. Every event also goes to `tracing` (target
//! `torchlet_train`), so a program that only installs a `tracing` subscriber sees the run;
//! a program that wants the tutorial's output implements [`Observer`] and prints the events'
//! `Display` lines (as `examples/cifar10_train.rs` does).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Receives a run's events; every method has an empty default.
///
/// Called from the training thread, in order. Keep the methods quick: the next step waits.
pub trait Observer: Send + Sync {
    /// Once, before the first step.
    fn run_started(&self, _start: &RunStart) {}
    /// After every batch (training and evaluation), for progress bars.
    fn progress(&self, _progress: &Progress) {}
    /// Every `log_every` training steps: the tutorial's `step, loss, elapsed` line.
    fn step(&self, _step: &StepLog) {}
    /// After each epoch's evaluation.
    fn epoch(&self, _summary: &EpochSummary) {}
    /// After a checkpoint has been written.
    fn checkpoint(&self, _saved: &CheckpointSaved) {}
    /// A note worth showing (files written, a stop requested, ...).
    fn message(&self, _text: &str) {}
}

/// An [`Observer`] that ignores everything (events still go to `tracing`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}

/// The start of a run.
#[derive(Debug, Clone)]
pub struct RunStart {
    /// The device, as chosen (e.g. `flex (CPU)`).
    pub device: String,
    /// `linear` or `conv`.
    pub model: String,
    /// Number of trainable parameters.
    pub num_params: usize,
    /// Images per training epoch.
    pub train_images: usize,
    /// Images evaluated after each epoch.
    pub test_images: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    /// The first epoch this process trains (1-based).
    pub first_epoch: usize,
    /// The last epoch.
    pub epochs: usize,
    /// The checkpoint this run continues, if resumed.
    pub resumed_from: Option<PathBuf>,
    /// The run folder.
    pub out_dir: PathBuf,
}

impl fmt::Display for RunStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "device: {} | model: {} ({} parameters) | {} train / {} test images, {} steps per epoch | epochs {}..={}",
            self.device,
            self.model,
            self.num_params,
            self.train_images,
            self.test_images,
            self.steps_per_epoch,
            self.first_epoch,
            self.epochs
        )?;
        if let Some(from) = &self.resumed_from {
            write!(f, " | resumed from {}", from.display())?;
        }
        Ok(())
    }
}

/// Which pass a [`Progress`] event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Training (with autodiff, train mode).
    Train,
    /// Evaluation on the test set (no autodiff, eval mode).
    Test,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Train => "train",
            Phase::Test => "test",
        })
    }
}

/// One batch done.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Training or evaluation.
    pub phase: Phase,
    /// The epoch (1-based).
    pub epoch: usize,
    /// The last epoch.
    pub epochs: usize,
    /// Batches done in this pass.
    pub done: usize,
    /// Batches in this pass.
    pub total: usize,
    /// Mean loss of the batches done so far in this pass.
    pub mean_loss: f64,
}

/// The tutorial's periodic line: step, loss and elapsed time.
#[derive(Debug, Clone)]
pub struct StepLog {
    /// The epoch (1-based).
    pub epoch: usize,
    /// The step within the epoch (1-based).
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Steps since the start of the run (1-based).
    pub global_step: u64,
    /// This step's loss.
    pub loss: f64,
    /// Mean loss since the previous line.
    pub mean_loss: f64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Seconds since this process started training.
    pub elapsed_s: f64,
}

impl fmt::Display for StepLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {} step {:>5}/{} | loss {:.4} (mean of last {:.4}) | lr {:.3e} | elapsed {:.1}s",
            self.epoch,
            self.step,
            self.steps_per_epoch,
            self.loss,
            self.mean_loss,
            self.lr,
            self.elapsed_s
        )
    }
}

/// Serde for `f64` that round-trips every value exactly, NaN and infinities included.
///
/// Values are written as strings in Rust's shortest round-trip form (`"2.3033261746168137"`,
/// `"NaN"`, `"inf"`): JSON has no NaN, and `serde_json` parses numbers to the nearest `f64`
/// only with its `float_roundtrip` feature. Plain JSON numbers are accepted when reading.
pub(crate) mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `v` as a string.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(f64),
        Text(String),
    }

    /// Reads a string written by [`serialize`], or a JSON number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Num(v) => Ok(v),
            NumOrText::Text(t) => t
                .parse::<f64>()
                .map_err(|_| serde::de::Error::custom(format!("not a number: {t:?}"))),
        }
    }
}

/// One epoch's numbers; the rows of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// The epoch (1-based).
    pub epoch: usize,
    /// The last epoch of the run.
    pub epochs: usize,
    /// Sum of the per-batch mean losses (the tutorial's `running_loss`).
    #[serde(with = "exact_f64")]
    pub train_loss_sum: f64,
    /// `train_loss_sum / batches`.
    #[serde(with = "exact_f64")]
    pub train_loss_mean: f64,
    /// Training batches.
    pub train_batches: usize,
    /// Mean cross-entropy over the test images.
    #[serde(with = "exact_f64")]
    pub test_loss: f64,
    /// Fraction of test images classified correctly.
    #[serde(with = "exact_f64")]
    pub test_accuracy: f64,
    /// Test images evaluated.
    pub test_images: usize,
    /// Wall time of the epoch, training and evaluation, in seconds.
    #[serde(with = "exact_f64")]
    pub epoch_seconds: f64,
    /// Training images per second.
    #[serde(with = "exact_f64")]
    pub train_images_per_sec: f64,
    /// Learning rate of the epoch's last step.
    #[serde(with = "exact_f64")]
    pub lr: f64,
    /// Steps since the start of the run at the end of the epoch.
    pub global_step: u64,
}

impl fmt::Display for EpochSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.epochs.to_string().len();
        write!(
            f,
            "epoch {:>w$}/{} | train loss sum {:.3} mean {:.4} | test loss {:.4} | test accuracy {:.2}% | {:.1}s | {:.0} images/s",
            self.epoch,
            self.epochs,
            self.train_loss_sum,
            self.train_loss_mean,
            self.test_loss,
            100.0 * self.test_accuracy,
            self.epoch_seconds,
            self.train_images_per_sec,
            w = width
        )
    }
}

/// A checkpoint written.
#[derive(Debug, Clone)]
pub struct CheckpointSaved {
    /// Its folder.
    pub path: PathBuf,
    /// Epochs completed in it.
    pub epoch: usize,
    /// Batches of the next epoch already trained (non-zero after an interruption).
    pub batches_into_epoch: usize,
    /// Whether it is the best so far by test accuracy.
    pub best: bool,
}

impl fmt::Display for CheckpointSaved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checkpoint {}", self.path.display())?;
        if self.best {
            f.write_str(" (best so far)")?;
        }
        Ok(())
    }
}

/// Forwards events to an observer and to `tracing`.
pub(crate) struct Reporter<'a> {
    pub observer: &'a dyn Observer,
}

impl Reporter<'_> {
    pub fn run_started(&self, e: &RunStart) {
        tracing::info!(target: "torchlet_train", "{e}");
        self.observer.run_started(e);
    }

    pub fn progress(&self, e: &Progress) {
        self.observer.progress(e);
    }

    pub fn step(&self, e: &StepLog) {
        tracing::info!(target: "torchlet_train", "{e}");
        self.observer.step(e);
    }

    pub fn epoch(&self, e: &EpochSummary) {
        tracing::info!(target: "torchlet_train", "{e}");
        self.observer.epoch(e);
    }

    pub fn checkpoint(&self, e: &CheckpointSaved) {
        tracing::info!(target: "torchlet_train", "{e}");
        self.observer.checkpoint(e);
    }

    pub fn message(&self, text: &str) {
        tracing::info!(target: "torchlet_train", "{text}");
        self.observer.message(text);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn epoch_summaries_round_trip_through_json_exactly() {
        let e = EpochSummary {
            epoch: 1,
            epochs: 2,
            train_loss_sum: 73.70643758773804,
            train_loss_mean: 0.1 + 0.2,
            train_batches: 3,
            test_loss: f64::NAN,
            test_accuracy: 1.0 / 3.0,
            test_images: 4,
            epoch_seconds: f64::INFINITY,
            train_images_per_sec: 1e-300,
            lr: 5e-324,
            global_step: 9,
        };
        let back: EpochSummary = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert!(back.test_loss.is_nan());
        let bits = |s: &EpochSummary| {
            [
                s.train_loss_sum,
                s.train_loss_mean,
                s.test_accuracy,
                s.epoch_seconds,
                s.train_images_per_sec,
                s.lr,
            ]
            .map(f64::to_bits)
        };
        assert_eq!(bits(&back), bits(&e));
    }
}
