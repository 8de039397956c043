//! The one error type of `torchlet-train`.

use std::path::PathBuf;

/// Everything that can stop a run, each naming the file or value involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A configuration value is out of range or unknown.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

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

    /// Data loading failed.
    #[error(transparent)]
    Data(#[from] torchlet_data::DataError),

    /// The model configuration is invalid.
    #[error(transparent)]
    Model(#[from] torchlet_model::ModelConfigError),

    /// Writing a TensorBoard event file failed.
    #[error(transparent)]
    TensorBoard(#[from] crate::tensorboard::TensorBoardError),

    /// Writing a chart failed.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),

    /// Writing the sample grid failed.
    #[error(transparent)]
    Grid(#[from] crate::grid::GridError),

    /// Building the confusion matrix failed.
    #[error(transparent)]
    Confusion(#[from] crate::confusion::ConfusionError),

    /// An atomic write failed.
    #[error(transparent)]
    Atomic(#[from] crate::atomic::AtomicWriteError),

    /// Burn's training loop reported an error (data, checkpoint or metric failure).
    #[error("training failed: {0}")]
    Training(String),
}

impl TrainError {
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
