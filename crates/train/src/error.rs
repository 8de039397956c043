//! The one error type of `torchlet-train`.

use std::path::PathBuf;

/// Everything that can stop a run, each naming the file or value involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {field} = {value}: {expected}")]
    InvalidValue {
        /// The setting (`epochs`, `batch_size`, `optimizer.momentum`, ...).
        field: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        expected: String,
    },

    /// A name (optimizer, schedule) that is not one of the known ones.
    #[error("unknown {what} {name:?}: expected one of {expected}")]
    UnknownName {
        /// What kind of name (`optimizer`, `schedule`).
        what: &'static str,
        /// The name given.
        name: String,
        /// The accepted names.
        expected: &'static str,
    },

    /// The model and the data do not fit together; found before the first step.
    #[error("the model does not fit the data: {0}")]
    Mismatch(#[from] crate::fit::check::DataMismatch),

    /// A checkpoint holds the weights of another architecture than the model it is loaded
    /// into; every differing key is listed.
    #[error("checkpoint {path} does not fit the model: {diff}")]
    Architecture {
        /// The weights file.
        path: PathBuf,
        /// The keys and shapes that differ.
        diff: crate::checkpoint::KeyDiff,
    },

    /// The run to resume has already trained every epoch asked for.
    #[error("{path} already has {done} epochs; ask for more than {asked} to continue")]
    AlreadyTrained {
        /// The checkpoint.
        path: PathBuf,
        /// Epochs it has.
        done: usize,
        /// Epochs asked for.
        asked: usize,
    },

    /// An image handed to [`classify`](crate::classify) has the wrong number of bytes.
    #[error("image has {got} bytes, expected {expected} for {shape:?}")]
    ImageSize {
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
        /// `[channels, height, width]` expected.
        shape: [usize; 3],
    },

    /// An image file to classify cannot be read or converted.
    #[error("{path}: {reason}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A tensor could not be read back from the device (a backend fault).
    #[error("cannot read {what} back from the device: {reason}")]
    ReadBack {
        /// What was being read (`loss`, `predictions`, ...).
        what: &'static str,
        /// What the backend said.
        reason: String,
    },

    /// The run folder cannot be created or written; found before training starts.
    #[error("output folder {path} is not writable: {source}")]
    OutputNotWritable {
        /// The folder.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// A file of the run could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config or checkpoint state) cannot be parsed or written.
    #[error("{path}: invalid JSON: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },

    /// A checkpoint is incomplete, corrupt or does not fit the model.
    #[error("checkpoint {path}: {reason}")]
    BadCheckpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// No checkpoint to resume from or to load.
    #[error("no checkpoint found in {0}")]
    NoCheckpoint(PathBuf),

    /// The run to resume was trained with settings that change the numbers.
    #[error("cannot resume {path}: incompatible configuration: {reason}")]
    IncompatibleResume {
        /// The run folder being resumed.
        path: PathBuf,
        /// The first difference found.
        reason: String,
    },

    /// The loss became NaN or infinite; the run stopped without taking that step.
    #[error(
        "loss is {loss} at epoch {epoch}, step {step}: training stopped (lower the learning rate?); last good checkpoint: {}",
        last_checkpoint.as_ref().map_or_else(|| "none".to_string(), |p| p.display().to_string())
    )]
    NonFiniteLoss {
        /// The loss value.
        loss: f64,
        /// The epoch (1-based).
        epoch: usize,
        /// The global step (1-based) whose loss was not finite.
        step: u64,
        /// The newest checkpoint written before the fault, if any.
        last_checkpoint: Option<PathBuf>,
    },

    /// A device was asked for that this build lacks or that does not work here.
    #[error("device {name}: {reason}")]
    Device {
        /// The device name (`flex`, `wgpu`, ...).
        name: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// Another `Trainer` of this process is training: two runs at once would make both
    /// irreproducible (see [`Trainer::allow_concurrent`](crate::Trainer::allow_concurrent)).
    #[error(
        "cannot start the run in {}: the run in {} is training in this process (runs at once are not reproducible; allow_concurrent(true) accepts that)",
        asked.display(),
        running.display()
    )]
    ConcurrentRun {
        /// The run folder of the run already training.
        running: PathBuf,
        /// The run folder of the refused run.
        asked: PathBuf,
    },

    /// One device of a multi-device run failed during a step (its layer panicked, or the
    /// worker is gone); no weight was changed by that step.
    #[error("device {device} (replica {replica}) failed at step {step}: {message}")]
    Replica {
        /// The device's description.
        device: String,
        /// Its position in the device list (0 is the main device).
        replica: usize,
        /// The global step (1-based) that failed.
        step: u64,
        /// The panic message or what went wrong.
        message: String,
    },

    /// Data loading failed.
    #[error(transparent)]
    Data(#[from] torchlet_data::DataError),

    /// A batch could not be loaded during a pass over the data.
    #[error("{split} data loader: {source}")]
    Loader {
        /// `train` or `test`.
        split: &'static str,
        /// What failed.
        #[source]
        source: torchlet_data::DataError,
    },

    /// The model configuration is invalid.
    #[error(transparent)]
    Model(#[from] torchlet_model::ModelConfigError),

    /// Writing a TensorBoard event file failed.
    #[error(transparent)]
    TensorBoard(#[from] crate::output::tensorboard::TensorBoardError),

    /// Writing a chart failed.
    #[error(transparent)]
    Plot(#[from] crate::output::plot::PlotError),

    /// Writing the sample grid failed.
    #[error(transparent)]
    Grid(#[from] crate::output::grid::GridError),

    /// Building the confusion matrix failed.
    #[error(transparent)]
    Confusion(#[from] crate::output::confusion::ConfusionError),

    /// An atomic write failed.
    #[error(transparent)]
    Atomic(#[from] crate::atomic::AtomicWriteError),
}

impl TrainError {
    /// A [`TrainError::InvalidValue`].
    pub fn invalid(field: &'static str, value: impl ToString, expected: impl Into<String>) -> Self {
        TrainError::InvalidValue {
            field,
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// An [`TrainError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
