//! Chapter five's loop, `for epoch in ...: train(); test(); save()`, over any
//! [`ImageClassifier`].
//!
//! torchlet owns this loop rather than running Burn's `SupervisedTraining`: the tutorial
//! prints every step's loss, a NaN loss must stop the run *before* its optimizer step, a
//! requested stop must leave a mid-epoch checkpoint, and a resumed run must see the same
//! shuffles and augmentations as an uninterrupted one — and Burn's runner exposes none of
//! that. The parts it would have run are Burn's all the same: `loss.backward()`,
//! `GradientsParams`, `ModuleOptimizer::step` (which also has `step_multi` for gradients from
//! several devices), `ModuleLrScheduler` and their records.
//!
//! One epoch, in order, each a function returning a `Result`:
//!
//! 1. `Run::train_epoch` (in `fit/epoch.rs`): the batches of `DataLoader::iter_epoch(epoch)`,
//!    one `Run::step` each; stops early on request;
//! 2. `Run::evaluate` (in `fit/evaluate.rs`): the test set on `model.valid()`;
//! 3. `Run::finish_epoch`: history, TensorBoard, `metrics.csv`, charts, the checkpoint.

pub mod check;
mod epoch;
mod evaluate;
mod parallel;
pub(crate) mod start;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::ModuleOptimizer;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::tensor::Device;
use torchlet_data::DataLoader;
use torchlet_model::ImageClassifier;

use crate::checkpoint::{CheckpointState, CheckpointStore, PartialEpoch, Records, STATE_FORMAT};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::output::epoch_files::write_epoch_files;
use crate::output::tensorboard::SummaryWriter;
use crate::report::{CheckpointSaved, EpochSummary, Observer, Reporter};
use crate::trainer::StopHandle;

pub(crate) use evaluate::predict_all;
use parallel::Replicas;
use start::StartPoint;

/// TensorBoard tag of the per-step training loss.
pub const TAG_TRAIN_LOSS: &str = "train_loss";
/// TensorBoard tag of the per-epoch test loss.
pub const TAG_TEST_LOSS: &str = "test_loss";
/// TensorBoard tag of the per-epoch test accuracy.
pub const TAG_TEST_ACCURACY: &str = "test_accuracy";

/// Serializes "seed the backend, then draw random numbers" sections: backends keep one RNG
/// per process, so two runs in one process (tests) would otherwise interleave their draws.
static RNG_LOCK: Mutex<()> = Mutex::new(());

pub(crate) fn rng_lock() -> MutexGuard<'static, ()> {
    RNG_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything a run needs, prepared by [`Trainer::fit`](crate::Trainer::fit).
pub(crate) struct Setup<M> {
    pub config: TrainConfig,
    /// The training device, with autodiff (the main device of a multi-device run).
    pub device: Device,
    /// Every device of a multi-device run, main first, with autodiff and a description;
    /// empty or one entry for a one-device run.
    pub devices: Vec<(Device, String)>,
    pub model: M,
    pub optim: ModuleOptimizer,
    pub scheduler: ModuleLrScheduler,
    pub start: StartPoint,
    pub train: DataLoader,
    pub test: DataLoader,
    pub class_names: Vec<String>,
    pub out_dir: PathBuf,
    pub tensorboard: SummaryWriter,
    pub observer: Arc<dyn Observer>,
    pub stop: StopHandle,
}

/// What a run leaves: the model (still on the training device) and where it got to.
pub(crate) struct Outcome<M> {
    pub model: M,
    pub history: Vec<EpochSummary>,
    pub last_checkpoint: Option<PathBuf>,
    pub stopped_early: bool,
}

/// A run in progress.
pub(crate) struct Run<M> {
    config: TrainConfig,
    device: Device,
    /// The worker threads of a multi-device run.
    replicas: Option<Replicas<M>>,
    model: M,
    optim: ModuleOptimizer,
    scheduler: ModuleLrScheduler,
    loss: CrossEntropyLoss,
    train: DataLoader,
    test: DataLoader,
    class_names: Vec<String>,
    out_dir: PathBuf,
    tensorboard: SummaryWriter,
    store: CheckpointStore,
    observer: Arc<dyn Observer>,
    stop: StopHandle,
    global_step: u64,
    history: Vec<EpochSummary>,
    last_checkpoint: Option<PathBuf>,
    /// Learning rate of the latest step.
    lr: f64,
    started: Instant,
}

/// How a training pass ended.
enum EpochEnd {
    /// Every batch trained.
    Complete(PartialEpoch),
    /// A stop was requested after `batches` batches.
    Stopped(PartialEpoch, usize),
}

/// Trains from `setup.start` to the last epoch (or a requested stop).
pub(crate) fn run<M: ImageClassifier>(setup: Setup<M>) -> Result<Outcome<M>, TrainError> {
    let start = setup.start.clone();
    let mut run = Run::new(setup);
    let mut stopped_early = false;
    for epoch in start.epoch..=run.config.epochs {
        let sums = if epoch == start.epoch && start.skip_batches > 0 {
            start.partial.clone().unwrap_or_default()
        } else {
            PartialEpoch::default()
        };
        let skip = if epoch == start.epoch {
            start.skip_batches
        } else {
            0
        };
        let sums = match run.train_epoch(epoch, skip, sums)? {
            EpochEnd::Complete(sums) => sums,
            EpochEnd::Stopped(sums, batches) => {
                // A requested stop inside the epoch: save where we are, then leave.
                let state = run.state(epoch - 1, batches, Some(sums));
                run.checkpoint(state)?;
                stopped_early = true;
                break;
            }
        };
        let eval = run.evaluate(epoch)?;
        run.finish_epoch(epoch, sums, eval)?;
        if run.stop.is_stopped() {
            stopped_early = true;
            break;
        }
    }
    Ok(Outcome {
        model: run.model,
        history: run.history,
        last_checkpoint: run.last_checkpoint,
        stopped_early,
    })
}

/// The test pass's totals.
pub(crate) struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub images: usize,
    pub seconds: f64,
}

impl<M: ImageClassifier> Run<M> {
    fn new(s: Setup<M>) -> Self {
        let smoothing = s.config.label_smoothing;
        let loss = CrossEntropyLossConfig::new()
            .with_smoothing((smoothing > 0.0).then_some(smoothing as f32))
            .init(&s.device);
        let store = CheckpointStore::new(&s.out_dir, s.config.keep_last);
        store.remove_unfinished();
        let replicas = (s.devices.len() > 1).then(|| Replicas::start(&s.devices));
        Self {
            replicas,
            loss,
            store,
            global_step: s.start.global_step,
            history: s.start.history,
            last_checkpoint: s.start.checkpoint,
            config: s.config,
            device: s.device,
            model: s.model,
            optim: s.optim,
            scheduler: s.scheduler,
            train: s.train,
            test: s.test,
            class_names: s.class_names,
            out_dir: s.out_dir,
            tensorboard: s.tensorboard,
            observer: s.observer,
            stop: s.stop,
            lr: 0.0,
            started: Instant::now(),
        }
    }

    fn reporter(&self) -> Reporter<'_> {
        Reporter {
            observer: self.observer.as_ref(),
        }
    }

    fn tensorboard(&mut self, tag: &str, value: f64, step: i64) {
        if let Err(e) = self.tensorboard.add_scalar(tag, value as f32, step) {
            tracing::warn!(error = %e, "cannot write to the TensorBoard file");
        }
    }

    /// The epoch's summary, curves and files, then its checkpoint.
    fn finish_epoch(
        &mut self,
        epoch: usize,
        sums: PartialEpoch,
        eval: Evaluation,
    ) -> Result<(), TrainError> {
        let summary = EpochSummary {
            epoch,
            epochs: self.config.epochs,
            train_loss_sum: sums.loss_sum,
            train_loss_mean: sums.loss_sum / sums.batches.max(1) as f64,
            train_batches: sums.batches,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            test_images: eval.images,
            epoch_seconds: sums.seconds + eval.seconds,
            train_images_per_sec: sums.images as f64 / sums.seconds.max(1e-9),
            lr: self.lr,
            global_step: self.global_step,
        };
        self.history.push(summary.clone());
        self.tensorboard(TAG_TEST_LOSS, summary.test_loss, epoch as i64);
        self.tensorboard(TAG_TEST_ACCURACY, summary.test_accuracy, epoch as i64);
        if let Err(e) = self.tensorboard.flush() {
            tracing::warn!(error = %e, "cannot flush the TensorBoard file");
        }
        write_epoch_files(&self.out_dir, &self.history)?;
        self.reporter().epoch(&summary);
        let state = self.state(epoch, 0, None);
        self.checkpoint(state)
    }

    /// The checkpoint state after `epochs_done` epochs and `batches_into_epoch` more batches.
    fn state(
        &self,
        epochs_done: usize,
        batches_into_epoch: usize,
        partial: Option<PartialEpoch>,
    ) -> CheckpointState {
        let last = self.history.last();
        CheckpointState {
            format: STATE_FORMAT,
            epoch: epochs_done,
            batches_into_epoch,
            global_step: self.global_step,
            loss: match &partial {
                Some(p) if p.batches > 0 => Some(p.loss_sum / p.batches as f64),
                _ => last.map(|s| s.train_loss_mean),
            },
            test_loss: last.map(|s| s.test_loss),
            test_accuracy: if batches_into_epoch == 0 {
                last.map(|s| s.test_accuracy)
            } else {
                None
            },
            loader_epoch: epochs_done as u64,
            partial,
            class_names: self.class_names.clone(),
            config: self.config.clone(),
            history: self.history.clone(),
        }
    }

    /// `torch.save({'epoch', 'model_state_dict', 'optimizer_state_dict', 'loss'})`.
    fn checkpoint(&mut self, state: CheckpointState) -> Result<(), TrainError> {
        let bytes = |what: &'static str, r: Result<burn::tensor::Bytes, _>| {
            r.map(|b| b.to_vec())
                .map_err(|e: burn::store::RecordError| TrainError::ReadBack {
                    what,
                    reason: e.to_string(),
                })
        };
        // Batch norm's running statistics wait, one value per worker thread, until the model
        // is next evaluated; `valid()` folds them in so the checkpoint holds the current ones.
        let _ = self.model.valid();
        let records = Records {
            model: bytes("weights", self.model.clone().into_record().into_bytes())?,
            optim: bytes("optimizer state", self.optim.to_record().into_bytes())?,
            scheduler: bytes("scheduler state", self.scheduler.to_record().into_bytes())?,
        };
        let path = self.store.save(&state, &records)?;
        let best = self.store.is_best(&path);
        self.last_checkpoint = Some(path.clone());
        self.reporter().checkpoint(&CheckpointSaved {
            path,
            epoch: state.epoch,
            batches_into_epoch: state.batches_into_epoch,
            best,
        });
        Ok(())
    }
}
