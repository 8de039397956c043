//! Where a run starts: from scratch, or from a checkpoint (bit-exact, mid-epoch included).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{ModuleOptimizer, OptimizerRecord};

use crate::checkpoint::{MODEL_FILE, PartialEpoch, SavedCheckpoint, load_record_checked};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::report::EpochSummary;

/// The first step of a run and the counters it continues.
#[derive(Debug, Clone)]
pub(crate) struct StartPoint {
    /// The first epoch this process trains (1-based).
    pub epoch: usize,
    /// Batches of that epoch already trained (skipped now).
    pub skip_batches: usize,
    /// Sums of those batches.
    pub partial: Option<PartialEpoch>,
    /// Optimizer steps already taken.
    pub global_step: u64,
    /// The epochs already trained.
    pub history: Vec<EpochSummary>,
    /// The checkpoint this run continues.
    pub checkpoint: Option<PathBuf>,
}

impl StartPoint {
    /// A new run.
    pub fn fresh() -> Self {
        Self {
            epoch: 1,
            skip_batches: 0,
            partial: None,
            global_step: 0,
            history: Vec::new(),
            checkpoint: None,
        }
    }
}

/// What resuming restores besides the counters.
pub(crate) struct Resumed<M> {
    pub start: StartPoint,
    pub model: M,
    pub optim: ModuleOptimizer,
    pub scheduler: ModuleLrScheduler,
}

/// Opens the checkpoint at `path` (a checkpoint folder, or a run folder's newest), checks it
/// against `config` and loads it into `model`, `optim` and `scheduler`.
pub(crate) fn resume<M: Module>(
    path: &Path,
    config: &TrainConfig,
    model: M,
    optim: ModuleOptimizer,
    scheduler: ModuleLrScheduler,
) -> Result<Resumed<M>, TrainError> {
    let checkpoint = SavedCheckpoint::find(path)?;
    if let Some(reason) = checkpoint.state.config.resume_mismatch(config) {
        return Err(TrainError::IncompatibleResume {
            path: path.to_path_buf(),
            reason,
        });
    }
    let s = &checkpoint.state;
    if s.batches_into_epoch == 0 && s.epoch >= config.epochs {
        return Err(TrainError::AlreadyTrained {
            path: checkpoint.path.clone(),
            done: s.epoch,
            asked: config.epochs,
        });
    }
    let (record, optim_record, scheduler_record) = checkpoint.load_records()?;
    let model = load_record_checked(&checkpoint.path.join(MODEL_FILE), model, record)?;
    let optim = load_optim(optim, optim_record)?;
    let scheduler = scheduler.load_record(scheduler_record);
    let s = checkpoint.state;
    Ok(Resumed {
        start: StartPoint {
            epoch: s.epoch + 1,
            skip_batches: s.batches_into_epoch,
            partial: s.partial,
            global_step: s.global_step,
            history: s.history,
            checkpoint: Some(checkpoint.path),
        },
        model,
        optim,
        scheduler,
    })
}

/// Loads the optimizer state; Burn may touch its default device while doing so, which in a
/// build with a GPU backend on a machine without that GPU panics: reported, not propagated.
fn load_optim(
    optim: ModuleOptimizer,
    record: OptimizerRecord,
) -> Result<ModuleOptimizer, TrainError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| optim.load_record(record))).map_err(
        |_| TrainError::Device {
            name: "default".into(),
            reason: "Burn loads optimizer state on its default device, which failed to start; \
                     set BURN_DEVICE to the backend you train on (e.g. BURN_DEVICE=flex)"
                .into(),
        },
    )
}
