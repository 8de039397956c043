//! [`Trainer`]: one training run of any [`ImageClassifier`], from datasets to a run folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use burn::tensor::Device;
use torchlet_data::{Compose, DataLoader, ImageDataset, ImageShape};
use torchlet_model::{CustomModelConfig, ImageClassifier, Model, ModelConfig};

use crate::atomic::write_atomic;
use crate::checkpoint::SavedCheckpoint;
use crate::config::TrainConfig;
use crate::device::{DeviceChoice, SelectedDevice, select_device};
use crate::error::TrainError;
use crate::fit::check::check_model_fits;
use crate::fit::start::{self, StartPoint};
use crate::fit::{self as fit_loop, Setup, rng_lock};
use crate::optim::{build_optimizer, build_scheduler};
use crate::output::confusion::ConfusionMatrix;
use crate::output::final_reports::write_final_reports;
use crate::output::tensorboard::SummaryWriter;
use crate::report::{EpochSummary, Observer, Reporter, RunStart, Silent};

/// Name of the configuration file in a run folder.
pub const CONFIG_FILE: &str = "config.json";
pub use crate::output::final_reports::GRID_IMAGES;

/// Asks a running [`Trainer::fit`] to stop: it finishes the current step, writes a
/// checkpoint and returns. Cheap to clone; safe to call from a signal handler thread.
#[derive(Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
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
pub struct TrainReport<M = Model> {
    /// The final model, in eval mode (dropout off, batch norm on running statistics).
    pub model: M,
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

/// How the model of a run comes to be: built from the configuration (fitted to the data's
/// image shape and classes), or handed over by the caller.
type BuildModel<M> =
    Box<dyn FnOnce(&mut TrainConfig, &Device, ImageShape, usize) -> Result<M, TrainError> + Send>;

/// One training run: the tutorial's chapters three to six behind one call, for a built-in
/// model or your own.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use torchlet_data::Cifar10;
/// use torchlet_train::{TrainConfig, Trainer};
///
/// let cifar = Cifar10::open("cifar-10-binary.tar.gz")?;
/// // The tutorial's conv net, fitted to the data (3 × 32 × 32, 10 classes):
/// let report = Trainer::new(TrainConfig::tutorial(), "runs/tutorial").fit(cifar.train, cifar.test)?;
/// println!("test accuracy {:.1}%", 100.0 * report.history.last().map_or(0.0, |e| e.test_accuracy));
/// // Your own network: `Trainer::new(config, dir).model(MyNet::new(&device))`.
/// # Ok(()) }
/// ```
pub struct Trainer<M: ImageClassifier = Model> {
    config: TrainConfig,
    out_dir: PathBuf,
    devices: Vec<SelectedDevice>,
    observer: Arc<dyn Observer>,
    resume: Option<PathBuf>,
    stop: StopHandle,
    final_reports: bool,
    concurrent: bool,
    build: BuildModel<M>,
}

impl Trainer<Model> {
    /// A run of `config` writing into `out_dir` (created if needed). The model is
    /// `config.model`, built with the data's image shape and number of classes.
    pub fn new(config: TrainConfig, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            config,
            out_dir: out_dir.into(),
            devices: Vec::new(),
            observer: Arc::new(Silent),
            resume: None,
            stop: StopHandle::default(),
            final_reports: true,
            concurrent: false,
            build: Box::new(|config, device, shape, classes| {
                config.model = config.model.clone().fitted(shape.dims(), classes);
                let _rng = rng_lock();
                device.seed(config.seed);
                Ok(config.model.try_init(device)?)
            }),
        }
    }
}

impl<M: ImageClassifier> Trainer<M> {
    /// Trains `model`, your own network, instead of `config.model` (PyTorch's
    /// `model = MyModel()` before the loop). It is moved to the training device; the run's
    /// `config.json` records it as a [`ModelConfig::Custom`] with its
    /// [`name`](ImageClassifier::name). Resuming loads the checkpoint into it.
    pub fn model<N: ImageClassifier + Send>(self, model: N) -> Trainer<N> {
        Trainer {
            config: self.config,
            out_dir: self.out_dir,
            devices: self.devices,
            observer: self.observer,
            resume: self.resume,
            stop: self.stop,
            final_reports: self.final_reports,
            concurrent: self.concurrent,
            build: Box::new(move |config, device, _shape, _classes| {
                config.model = ModelConfig::Custom(
                    CustomModelConfig::new(model.name(), model.num_classes())
                        .with_input(model.input_shape()),
                );
                Ok(model.fork(device).train())
            }),
        }
    }

    /// Trains on `device` (default: [`DeviceChoice::Auto`]).
    pub fn device(mut self, device: SelectedDevice) -> Self {
        self.devices = vec![device];
        self
    }

    /// Trains data-parallel on several devices of this machine, like PyTorch's
    /// `DistributedDataParallel` (see [`select_devices`](crate::select_devices)): every
    /// batch is split over them and their gradients are combined so each step equals a
    /// one-device step on the whole batch. The first device is the main one (it holds the
    /// model and the optimizer and runs the evaluation). The same device may appear more than
    /// once (`flex,flex`). An empty list means [`DeviceChoice::Auto`].
    pub fn devices(mut self, devices: impl IntoIterator<Item = SelectedDevice>) -> Self {
        self.devices = devices.into_iter().collect();
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

    /// Lets this run train while another `Trainer` of this process is training (default:
    /// no, [`TrainError::ConcurrentRun`]). Two runs at once share the CPU's threads, and
    /// Burn's parallel reductions then add in an order that depends on timing: each run's
    /// last bits change from one try to the next (and the backend's one random stream is
    /// shared, though torchlet reseeds it under a lock for every draw it makes). Allow it
    /// when reproducibility does not matter (a sweep of short trials, say).
    pub fn allow_concurrent(mut self, allow: bool) -> Self {
        self.concurrent = allow;
        self
    }

    /// A handle that stops the run cleanly (for Ctrl-C).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Trains on `train`, evaluates on `test` after every epoch, and writes the run folder.
    ///
    /// Before the first step the model is checked against the data (image shape, classes, one
    /// forward pass): a mismatch is a [`TrainError::Mismatch`] naming both shapes.
    pub fn fit(
        self,
        train: impl Into<Arc<ImageDataset>>,
        test: impl Into<Arc<ImageDataset>>,
    ) -> Result<TrainReport<M>, TrainError> {
        let _claim = if self.concurrent {
            None
        } else {
            Some(RunClaim::take(&self.out_dir)?)
        };
        let mut config = self.config;
        config.validate()?;
        torchlet_model::set_precision(config.precision);
        let (train, test) = (train.into(), test.into());
        let mut devices = self.devices;
        if devices.is_empty() {
            devices.push(select_device(DeviceChoice::Auto)?);
        }
        let selected = devices[0].clone();
        let device = selected.device.clone();
        let autodiff = device.clone().autodiff();
        let model = (self.build)(&mut config, &autodiff, train.shape(), train.classes().len())?;
        check_model_fits(&model, &train, &test, &device)?;
        let (train_loader, test_loader) = loaders(&config, &train, &test, &device, &autodiff)?;
        let steps_per_epoch = train_loader.len();
        let optim = build_optimizer(&config.optimizer)?;
        let scheduler = build_scheduler(&config, steps_per_epoch)?;
        let (start, model, optim, scheduler) = match self.resume.as_deref() {
            Some(path) => {
                let r = start::resume(path, &config, model, optim, scheduler)?;
                (r.start, r.model, r.optim, r.scheduler)
            }
            None => (StartPoint::fresh(), model, optim, scheduler),
        };
        prepare_out_dir(&self.out_dir, &config)?;

        let reporter = Reporter {
            observer: self.observer.as_ref(),
        };
        reporter.run_started(&RunStart {
            device: with_precision(describe(&devices), selected.kind, config.precision),
            model: model.name(),
            num_params: model.num_params(),
            train_images: train_loader.num_images(),
            test_images: test_loader.num_images(),
            steps_per_epoch,
            first_epoch: start.epoch,
            epochs: config.epochs,
            resumed_from: start.checkpoint.clone(),
            out_dir: self.out_dir.clone(),
        });
        let mut tensorboard = SummaryWriter::new(&self.out_dir)?;
        if start.checkpoint.is_some() {
            // Steps a killed run logged after its last checkpoint are logged again now.
            tensorboard.purge_from(start.global_step as i64 + 1)?;
        }
        let outcome = fit_loop::run(Setup {
            config,
            device: autodiff,
            devices: devices
                .iter()
                .map(|d| (d.device.clone().autodiff(), d.description.clone()))
                .collect(),
            model,
            optim,
            scheduler,
            start,
            train: train_loader,
            test: test_loader.clone(),
            class_names: train.classes().to_vec(),
            out_dir: self.out_dir.clone(),
            tensorboard,
            observer: self.observer.clone(),
            stop: self.stop.clone(),
        })?;

        let model = outcome.model.valid();
        let confusion = if self.final_reports && !outcome.stopped_early {
            Some(write_final_reports(
                &self.out_dir,
                &model,
                &test_loader,
                &test,
                &reporter,
            )?)
        } else {
            None
        };
        let best_checkpoint = SavedCheckpoint::best(&self.out_dir).ok().map(|c| c.path);
        Ok(TrainReport {
            model,
            history: outcome.history,
            last_checkpoint: outcome.last_checkpoint,
            best_checkpoint,
            stopped_early: outcome.stopped_early,
            confusion,
            out_dir: self.out_dir,
        })
    }
}

/// The run folder of the `Trainer` training now in this process (runs that allowed
/// concurrency do not claim it).
static ACTIVE_RUN: Mutex<Option<PathBuf>> = Mutex::new(None);

/// This process's one reproducible run at a time; released when dropped (also on an error or
/// a panic).
struct RunClaim;

impl RunClaim {
    fn take(out_dir: &Path) -> Result<Self, TrainError> {
        let mut active = ACTIVE_RUN.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = active.as_ref() {
            return Err(TrainError::ConcurrentRun {
                running: running.clone(),
                asked: out_dir.to_path_buf(),
            });
        }
        *active = Some(out_dir.to_path_buf());
        Ok(RunClaim)
    }
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        *ACTIVE_RUN.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// `flex (CPU)`, or `2 devices: flex (CPU), flex (CPU)`.
fn describe(devices: &[SelectedDevice]) -> String {
    match devices {
        [one] => one.description.clone(),
        many => format!(
            "{} devices: {}",
            many.len(),
            many.iter()
                .map(|d| d.description.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The training loader (shuffled, augmented when asked, on the autodiff device) and the test
/// loader (in order, on the plain device).
fn loaders(
    config: &TrainConfig,
    train: &Arc<ImageDataset>,
    test: &Arc<ImageDataset>,
    device: &Device,
    autodiff: &Device,
) -> Result<(DataLoader, DataLoader), TrainError> {
    let transform = if config.augment {
        Compose::augment_for(train.shape())
    } else {
        Compose::to_tensor()
    };
    let mut train_builder = DataLoader::builder(train.clone())
        .batch_size(config.batch_size)
        .shuffle(true)
        .seed(config.seed)
        .num_workers(config.num_workers)
        .transform(transform)
        .device(autodiff);
    let mut test_builder = DataLoader::builder(test.clone())
        .batch_size(config.batch_size)
        .num_workers(config.num_workers)
        .device(device);
    if let Some(limit) = config.limit {
        train_builder = train_builder.limit(limit);
        test_builder = test_builder.limit(limit);
    }
    Ok((train_builder.build()?, test_builder.build()?))
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

/// The device's description with the precision the CPU kernels compute in, where it matters
/// (a Flex device, or bf16 asked for).
#[cfg_attr(not(feature = "flex"), allow(unused_variables))]
fn with_precision(
    device: String,
    kind: DeviceChoice,
    precision: torchlet_model::Precision,
) -> String {
    #[cfg(feature = "flex")]
    if kind == DeviceChoice::Flex {
        return format!(
            "{device}, {}",
            torchlet_model::cpu::kernels::describe(precision)
        );
    }
    match precision {
        torchlet_model::Precision::Bf16 => {
            format!("{device}, f32 (bf16 applies to the CPU kernels on Flex only)")
        }
        torchlet_model::Precision::F32 => device,
    }
}
