//! [`Trainer`]: one training run, from datasets to a run folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::tensor::Device;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::{Interrupter, Learner, SupervisedTraining, TrainingStrategy};
use torchlet_data::{Compose, DataLoader, ImageBatch, ImageDataset};
use torchlet_model::Model;

use crate::atomic::write_atomic;
use crate::checkpoint::{
    CheckpointStore, Part, PartCheckpointer, SaveEveryCall, SavedCheckpoint, load_classifier,
};
use crate::config::TrainConfig;
use crate::confusion::ConfusionMatrix;
use crate::device::{DeviceChoice, SelectedDevice, select_device};
use crate::error::TrainError;
use crate::grid::{GridCell, write_grid_png};
use crate::optim::{build_optimizer, build_scheduler};
use crate::renderer::QuietRenderer;
use crate::report::{EpochSummary, Observer, Reporter, RunStart, Silent};
use crate::step::Classifier;
use crate::strategy::{Outcome, Plan, TutorialStrategy, rng_lock};
use crate::tensorboard::SummaryWriter;

/// Name of the configuration file in a run folder.
pub const CONFIG_FILE: &str = "config.json";
/// Number of test images shown in `samples.png`.
pub const GRID_IMAGES: usize = 32;

/// Asks a running [`Trainer::fit`] to stop: it finishes the current step, writes a
/// checkpoint and returns. Cheap to clone; safe to call from a signal handler thread.
#[derive(Clone, Default)]
pub struct StopHandle(Interrupter);

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.0.stop(Some("stop requested"));
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.should_stop()
    }
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// What a finished (or stopped) run leaves.
#[derive(Debug)]
pub struct TrainReport {
    /// The final model, in eval mode (dropout off, batch norm on running statistics).
    pub model: Model,
    /// Every epoch of the run, resumed ones included.
    pub history: Vec<EpochSummary>,
    /// The newest checkpoint written.
    pub last_checkpoint: Option<PathBuf>,
    /// The checkpoint with the best test accuracy.
    pub best_checkpoint: Option<PathBuf>,
    /// Whether the run stopped early because [`StopHandle::stop`] was called.
    pub stopped_early: bool,
    /// The final model's confusion matrix on the test set (absent when stopped early).
    pub confusion: Option<ConfusionMatrix>,
    /// The run folder.
    pub out_dir: PathBuf,
}

/// One training run: the tutorial's chapters three to six behind one call.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use torchlet_data::Cifar10;
/// use torchlet_train::{TrainConfig, Trainer};
///
/// let cifar = Cifar10::open("cifar-10-binary.tar.gz")?;
/// let report = Trainer::new(TrainConfig::tutorial(), "runs/tutorial").fit(cifar.train, cifar.test)?;
/// println!("test accuracy {:.1}%", 100.0 * report.history.last().map_or(0.0, |e| e.test_accuracy));
/// # Ok(()) }
/// ```
pub struct Trainer {
    config: TrainConfig,
    out_dir: PathBuf,
    device: Option<SelectedDevice>,
    observer: Arc<dyn Observer>,
    resume: Option<PathBuf>,
    stop: StopHandle,
    final_reports: bool,
}

struct Resume {
    checkpoint: SavedCheckpoint,
    model: Classifier,
    optim: OptimizerRecord,
    scheduler: LrSchedulerRecord,
}

impl Trainer {
    /// A run of `config` writing into `out_dir` (created if needed).
    pub fn new(config: TrainConfig, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            config,
            out_dir: out_dir.into(),
            device: None,
            observer: Arc::new(Silent),
            resume: None,
            stop: StopHandle::default(),
            final_reports: true,
        }
    }

    /// Trains on `device` (default: [`DeviceChoice::Auto`]).
    pub fn device(mut self, device: SelectedDevice) -> Self {
        self.device = Some(device);
        self
    }

    /// Sends the run's events to `observer` (default: none; events still go to `tracing`).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Continues from a checkpoint folder, or from the newest checkpoint of a run folder.
    pub fn resume_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.resume = Some(path.into());
        self
    }

    /// Whether to write the confusion matrix, per-class accuracy and sample grid at the end
    /// (default: yes).
    pub fn final_reports(mut self, enabled: bool) -> Self {
        self.final_reports = enabled;
        self
    }

    /// A handle that stops the run cleanly (for Ctrl-C).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Trains on `train`, evaluates on `test` after every epoch, and writes the run folder.
    pub fn fit(
        self,
        train: impl Into<Arc<ImageDataset>>,
        test: impl Into<Arc<ImageDataset>>,
    ) -> Result<TrainReport, TrainError> {
        let config = self.config.clone();
        config.validate()?;
        let (train, test) = (train.into(), test.into());
        if train.classes().len() != config.model.num_classes() {
            return Err(TrainError::InvalidConfig(format!(
                "the dataset has {} classes but the model {}",
                train.classes().len(),
                config.model.num_classes()
            )));
        }
        let selected = match self.device.clone() {
            Some(d) => d,
            None => select_device(DeviceChoice::Auto)?,
        };
        let device = selected.device.clone();
        let autodiff = device.clone().autodiff();
        let resume = self
            .resume
            .as_deref()
            .map(|p| open_resume(p, &config, &autodiff))
            .transpose()?;
        prepare_out_dir(&self.out_dir, &config)?;

        let transform = if config.augment {
            Compose::cifar10_augment()
        } else {
            Compose::to_tensor()
        };
        let mut train_builder = DataLoader::builder(train.clone())
            .batch_size(config.batch_size)
            .shuffle(true)
            .seed(config.seed)
            .num_workers(config.num_workers)
            .transform(transform)
            .device(&device);
        let mut test_builder = DataLoader::builder(test.clone())
            .batch_size(config.batch_size)
            .num_workers(config.num_workers)
            .device(&device);
        if let Some(limit) = config.limit {
            train_builder = train_builder.limit(limit);
            test_builder = test_builder.limit(limit);
        }
        let train_loader = train_builder.build()?;
        let test_loader = test_builder.build()?;
        let steps_per_epoch = train_loader.len();

        let optimizer = build_optimizer(&config.optimizer)?;
        let scheduler = build_scheduler(&config, steps_per_epoch)?;
        let (first_epoch, skip, partial, global_step, history, last_checkpoint, learner) =
            match resume {
                Some(r) => {
                    let mut learner = Learner::new(r.model, optimizer, scheduler);
                    // Burn materializes optimizer state on `Device::default()` (then moves it to
                    // the parameters' device on the next step); in a build with a GPU backend on
                    // a machine without that GPU, that panics.
                    let optim = r.optim;
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        learner.load_optim(optim);
                    }))
                    .map_err(|_| TrainError::Device {
                        name: "default".into(),
                        reason:
                            "Burn loads optimizer state on its default device, which failed to \
                             start; set BURN_DEVICE to the backend you train on (e.g. \
                             BURN_DEVICE=flex)"
                                .into(),
                    })?;
                    learner.load_scheduler(r.scheduler);
                    let s = r.checkpoint.state;
                    (
                        s.epoch + 1,
                        s.batches_into_epoch,
                        s.partial,
                        s.global_step,
                        s.history,
                        Some(r.checkpoint.path),
                        learner,
                    )
                }
                None => {
                    let classifier = {
                        let _rng = rng_lock();
                        autodiff.seed(config.seed);
                        Classifier::new(config.model.try_init(&autodiff)?)
                    };
                    let learner = Learner::new(classifier, optimizer, scheduler);
                    (1, 0, None, 0, Vec::new(), None, learner)
                }
            };
        let num_params = learner.model().num_params();

        let reporter = Reporter {
            observer: self.observer.as_ref(),
        };
        reporter.run_started(&RunStart {
            device: selected.description.clone(),
            model: config.model.kind().to_string(),
            num_params,
            train_images: train_loader.num_images(),
            test_images: test_loader.num_images(),
            steps_per_epoch,
            first_epoch,
            epochs: config.epochs,
            resumed_from: last_checkpoint.clone(),
            out_dir: self.out_dir.clone(),
        });

        let store = Arc::new(CheckpointStore::new(&self.out_dir, config.keep_last));
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let mut tensorboard = SummaryWriter::new(&self.out_dir)?;
        if last_checkpoint.is_some() {
            // Steps a killed run logged after its last checkpoint are logged again now.
            tensorboard.purge_from(global_step as i64 + 1)?;
        }
        let plan = Plan {
            config: config.clone(),
            first_epoch,
            skip_batches: skip,
            partial,
            global_step,
            history,
            loader: train_loader.clone(),
            steps_per_epoch,
            class_names: train.classes().to_vec(),
            out_dir: self.out_dir.clone(),
            store: store.clone(),
            observer: self.observer.clone(),
            tensorboard,
            last_checkpoint,
            seed_per_step: has_dropout(&config),
        };
        let strategy = TutorialStrategy::new(device.clone(), plan, outcome.clone());
        let result = SupervisedTraining::<Classifier>::new(
            &self.out_dir,
            Arc::new(train_loader) as Arc<dyn burn::data::dataloader::DataLoader<ImageBatch>>,
            Arc::new(test_loader.clone()),
        )
        .with_training_strategy(TrainingStrategy::Custom(Arc::new(strategy)))
        .with_custom_checkpointers(
            PartCheckpointer::new(store.clone(), Part::Model),
            PartCheckpointer::new(store.clone(), Part::Optim),
            PartCheckpointer::new(store.clone(), Part::Scheduler),
        )
        .with_checkpointing_strategy(SaveEveryCall)
        .renderer(Box::new(QuietRenderer))
        .with_application_logger(None)
        .with_metric_logger(InMemoryMetricLogger::new())
        .with_interrupter(self.stop.0.clone())
        .num_epochs(config.epochs)
        .launch(learner);

        let outcome = std::mem::take(&mut *outcome.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(error) = outcome.error {
            return Err(error);
        }
        if let Some(error) = result.error {
            return Err(TrainError::Training(error.to_string()));
        }
        let model = result.model.into_inner();
        let stopped_early = outcome.stopped_by_request;
        let confusion = if self.final_reports && !stopped_early {
            let matrix =
                write_final_reports(&self.out_dir, &model, &test_loader, &test, &reporter)?;
            Some(matrix)
        } else {
            None
        };
        let best_checkpoint = SavedCheckpoint::best(&self.out_dir).ok().map(|c| c.path);
        Ok(TrainReport {
            model,
            history: outcome.history,
            last_checkpoint: outcome.last_checkpoint,
            best_checkpoint,
            stopped_early,
            confusion,
            out_dir: self.out_dir,
        })
    }
}

fn has_dropout(config: &TrainConfig) -> bool {
    match &config.model {
        torchlet_model::ModelConfig::Conv(c) => c.dropout > 0.0,
        _ => false,
    }
}

/// Finds and checks the checkpoint to resume before anything is written.
fn open_resume(path: &Path, config: &TrainConfig, device: &Device) -> Result<Resume, TrainError> {
    let checkpoint = SavedCheckpoint::find(path)?;
    if let Some(reason) = checkpoint.state.config.resume_mismatch(config) {
        return Err(TrainError::IncompatibleResume {
            path: path.to_path_buf(),
            reason,
        });
    }
    let s = &checkpoint.state;
    if s.batches_into_epoch == 0 && s.epoch >= config.epochs {
        return Err(TrainError::InvalidConfig(format!(
            "{} already has {} epochs; ask for more than {} to continue",
            checkpoint.path.display(),
            s.epoch,
            config.epochs
        )));
    }
    let (record, optim, scheduler) = checkpoint.load_records()?;
    // Checked loading: a checkpoint of another architecture is reported here rather than by
    // a panic inside Burn.
    let model = load_classifier(&checkpoint.path, config, record, device)?;
    Ok(Resume {
        checkpoint,
        model,
        optim,
        scheduler,
    })
}

/// Creates the run folder and writes `config.json`, failing early when it is not writable.
fn prepare_out_dir(out_dir: &Path, config: &TrainConfig) -> Result<(), TrainError> {
    let not_writable = |source: std::io::Error| TrainError::OutputNotWritable {
        path: out_dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(out_dir).map_err(not_writable)?;
    let json = serde_json::to_vec_pretty(config).map_err(|e| TrainError::Json {
        path: out_dir.join(CONFIG_FILE),
        reason: e.to_string(),
    })?;
    write_atomic(&out_dir.join(CONFIG_FILE), &json).map_err(|e| match e {
        crate::atomic::AtomicWriteError::Io { source, .. } => not_writable(source),
        other => TrainError::Atomic(other),
    })
}

/// Evaluates `model` on the whole test loader and writes the confusion matrix, per-class
/// accuracy and the sample grid.
fn write_final_reports(
    out_dir: &Path,
    model: &Model,
    test_loader: &DataLoader,
    test: &ImageDataset,
    reporter: &Reporter<'_>,
) -> Result<ConfusionMatrix, TrainError> {
    let classes = test.classes().to_vec();
    let mut matrix = ConfusionMatrix::new(classes.clone());
    let mut predictions: Vec<i64> = Vec::with_capacity(test_loader.num_images());
    for batch in test_loader.iter_epoch(0) {
        let predicted = model.forward(batch.images).argmax(1).flatten::<1>(0, 1);
        let predicted: Vec<i64> = predicted
            .into_data()
            .try_into_vec_as::<i64>()
            .map_err(|e| TrainError::Training(format!("reading predictions: {e:?}")))?;
        let targets: Vec<i64> = batch
            .targets
            .into_data()
            .try_into_vec_as::<i64>()
            .map_err(|e| TrainError::Training(format!("reading targets: {e:?}")))?;
        matrix.add_batch(&targets, &predicted)?;
        predictions.extend(predicted);
    }
    let write = |name: &str, text: String| -> Result<(), TrainError> {
        write_atomic(&out_dir.join(name), text.as_bytes())?;
        Ok(())
    };
    write("confusion.csv", matrix.to_csv())?;
    write("confusion.md", matrix.to_markdown())?;
    let mut per_class = String::from("class,accuracy,images\n");
    for ((name, acc), total) in classes
        .iter()
        .zip(matrix.per_class_accuracy())
        .zip(matrix.class_totals())
    {
        per_class.push_str(&format!("{name},{acc},{total}\n"));
    }
    write("per_class_accuracy.csv", per_class)?;

    let shape = test.shape();
    let cells: Vec<GridCell<'_>> = predictions
        .iter()
        .enumerate()
        .take(GRID_IMAGES)
        .filter_map(|(i, &p)| {
            let image = test.image(i)?;
            let truth = test.label(i)?;
            Some(GridCell {
                image_chw: image,
                height: shape.height,
                width: shape.width,
                true_label: classes.get(truth).map_or("?", String::as_str),
                predicted_label: usize::try_from(p)
                    .ok()
                    .and_then(|p| classes.get(p))
                    .map_or("?", String::as_str),
            })
        })
        .collect();
    if !cells.is_empty() {
        write_grid_png(&out_dir.join("samples.png"), &cells, 8, 3)?;
    }
    reporter.message(&format!(
        "final model: test accuracy {:.2}% ({} / {}); per-class accuracy, confusion matrix and samples.png written to {}",
        100.0 * matrix.accuracy(),
        matrix.correct(),
        matrix.total(),
        out_dir.display()
    ));
    Ok(matrix)
}
