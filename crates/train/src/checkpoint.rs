//! Chapter four: checkpoints — `torch.save({'epoch', 'model_state_dict',
//! 'optimizer_state_dict', 'loss'})` — written atomically after every epoch.
//!
//! A checkpoint is a folder `checkpoints/epoch-NNNN/` (or `epoch-NNNN-step-SSSSSS/` when a
//! run was stopped inside an epoch) holding
//!
//! | file | content |
//! |---|---|
//! | `model.bpk` | the weights (Burn's burnpack format, the model's own keys, e.g. `conv1.weight`) |
//! | `optim.bpk` | the optimizer state (momentum buffers, Adam moments) |
//! | `scheduler.bpk` | the learning-rate scheduler position |
//! | `state.json` | epoch, step, loss, test accuracy, the full [`TrainConfig`], the seed and the data loader position, and the history of every epoch |
//!
//! The folder is assembled under a temporary name and renamed into place, so a crash leaves
//! either the previous checkpoint or the complete new one. The newest `keep_last`
//! checkpoints and the best one by test accuracy are kept; older ones are deleted.
//!
//! The records are Burn's (`Module::into_record`, `ModuleOptimizer::to_record`,
//! `ModuleLrScheduler::to_record`, all burnpack); the folder layout, retention and checks are
//! this module's. Loading checks every file first and reports what is wrong: a checkpoint of
//! another architecture lists every key and shape that differs ([`KeyDiff`]), as PyTorch's
//! `load_state_dict` does.
//!
//! Loading works as in PyTorch: build the model (`model = MyModel()`), then load the
//! checkpoint into it with [`SavedCheckpoint::load_into`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::store::{BurnpackStore, ModuleRecord, ModuleStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use torchlet_model::Model;

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::report::EpochSummary;

/// Folder of a run that holds its checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Weights file of a checkpoint.
pub const MODEL_FILE: &str = "model.bpk";
/// Optimizer-state file of a checkpoint.
pub const OPTIM_FILE: &str = "optim.bpk";
/// Scheduler-state file of a checkpoint.
pub const SCHEDULER_FILE: &str = "scheduler.bpk";
/// State file of a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// Version of the `state.json` layout (2: the weights are the model's own keys, without a
/// wrapper's prefix).
pub const STATE_FORMAT: u32 = 2;

/// Sums of an epoch interrupted part-way, so a resumed epoch reports the same totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Sum of the per-batch losses so far.
    #[serde(with = "crate::report::exact_f64")]
    pub loss_sum: f64,
    /// Batches trained so far.
    pub batches: usize,
    /// Images trained so far.
    pub images: usize,
    /// Seconds spent training so far.
    #[serde(with = "crate::report::exact_f64")]
    pub seconds: f64,
}

/// Everything in a checkpoint besides the three records: `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Layout version ([`STATE_FORMAT`]).
    pub format: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Batches of epoch `epoch + 1` already trained (0 for an end-of-epoch checkpoint).
    pub batches_into_epoch: usize,
    /// Optimizer steps taken since the start of the run.
    pub global_step: u64,
    /// Mean training loss of the last completed epoch (or of the partial epoch).
    pub loss: Option<f64>,
    /// Test loss after the last completed epoch.
    pub test_loss: Option<f64>,
    /// Test accuracy after the last completed epoch (absent in a mid-epoch checkpoint).
    pub test_accuracy: Option<f64>,
    /// The data loader epoch the next batch comes from (its shuffle and augmentation).
    pub loader_epoch: u64,
    /// Sums of the partial epoch, when `batches_into_epoch > 0`.
    #[serde(default)]
    pub partial: Option<PartialEpoch>,
    /// Class names, for inference.
    pub class_names: Vec<String>,
    /// The run's configuration (the seed of every random choice included).
    pub config: TrainConfig,
    /// Every completed epoch's numbers.
    pub history: Vec<EpochSummary>,
}

impl CheckpointState {
    /// The folder name of this checkpoint.
    pub fn dir_name(&self) -> String {
        if self.batches_into_epoch == 0 {
            format!("epoch-{:04}", self.epoch)
        } else {
            format!(
                "epoch-{:04}-step-{:06}",
                self.epoch, self.batches_into_epoch
            )
        }
    }
}

/// A checkpoint on disk whose files were all found and whose state was read.
#[derive(Debug, Clone)]
pub struct SavedCheckpoint {
    /// The checkpoint folder.
    pub path: PathBuf,
    /// Its `state.json`.
    pub state: CheckpointState,
}

impl SavedCheckpoint {
    /// Opens a checkpoint folder, checking that its four files are there and `state.json`
    /// parses.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TrainError> {
        let path = path.as_ref().to_path_buf();
        let bad = |reason: String| TrainError::BadCheckpoint {
            path: path.clone(),
            reason,
        };
        if !path.is_dir() {
            return Err(bad("not a checkpoint folder".into()));
        }
        for file in [MODEL_FILE, OPTIM_FILE, SCHEDULER_FILE, STATE_FILE] {
            if !path.join(file).is_file() {
                return Err(bad(format!("{file} is missing")));
            }
        }
        let state_path = path.join(STATE_FILE);
        let text = fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
        let state: CheckpointState =
            serde_json::from_str(&text).map_err(|e| TrainError::BadCheckpoint {
                path: state_path.clone(),
                reason: format!("invalid state: {e}"),
            })?;
        if state.format != STATE_FORMAT {
            return Err(bad(format!(
                "state format {} is not the supported {STATE_FORMAT}",
                state.format
            )));
        }
        // An untrusted file: its model's size, ranges and names are checked before anything
        // is built from it.
        state
            .config
            .validate()
            .map_err(|e| TrainError::BadCheckpoint {
                path: state_path.clone(),
                reason: format!("invalid configuration: {e}"),
            })?;
        Ok(Self { path, state })
    }

    /// Opens `path` if it is a checkpoint folder, else the newest checkpoint of the run
    /// folder `path`.
    pub fn find(path: impl AsRef<Path>) -> Result<Self, TrainError> {
        let path = path.as_ref();
        if path.join(STATE_FILE).is_file() {
            Self::open(path)
        } else {
            Self::latest(path)
        }
    }

    /// The newest checkpoint (most steps) of a run folder.
    pub fn latest(run_dir: impl AsRef<Path>) -> Result<Self, TrainError> {
        let run_dir = run_dir.as_ref();
        let all = list_checkpoints(run_dir)?;
        all.into_iter()
            .max_by_key(|c| c.state.global_step)
            .ok_or_else(|| TrainError::NoCheckpoint(run_dir.to_path_buf()))
    }

    /// The checkpoint of a run folder with the highest test accuracy.
    pub fn best(run_dir: impl AsRef<Path>) -> Result<Self, TrainError> {
        let run_dir = run_dir.as_ref();
        let all = list_checkpoints(run_dir)?;
        best_of(&all)
            .cloned()
            .ok_or_else(|| TrainError::NoCheckpoint(run_dir.to_path_buf()))
    }

    /// Reads and checks the three records.
    pub fn load_records(
        &self,
    ) -> Result<(ModuleRecord, OptimizerRecord, LrSchedulerRecord), TrainError> {
        let file = |name: &str| self.path.join(name);
        let err = |name: &str, e: &dyn std::fmt::Display| TrainError::BadCheckpoint {
            path: file(name),
            reason: format!("cannot read: {e}"),
        };
        let model = ModuleRecord::load(file(MODEL_FILE)).map_err(|e| err(MODEL_FILE, &e))?;
        let optim = OptimizerRecord::load(file(OPTIM_FILE)).map_err(|e| err(OPTIM_FILE, &e))?;
        let scheduler =
            LrSchedulerRecord::load(file(SCHEDULER_FILE)).map_err(|e| err(SCHEDULER_FILE, &e))?;
        Ok((model, optim, scheduler))
    }

    /// Builds the checkpoint's built-in model (from its `config.json`) on `device` and loads
    /// its weights into it: a fresh model, ready for inference after `.valid()`.
    ///
    /// A run of your own model has nothing to build from: use [`load_into`](Self::load_into).
    pub fn load_model(&self, device: &Device) -> Result<Model, TrainError> {
        let model = self.state.config.model.try_init(device)?;
        self.load_into(model)
    }

    /// Loads the checkpoint's weights into `model`, which you built (PyTorch's
    /// `model.load_state_dict(checkpoint["model_state_dict"])`). Every key and shape is checked;
    /// a checkpoint of another architecture is a [`TrainError::Architecture`] listing what
    /// differs.
    pub fn load_into<M: Module>(&self, model: M) -> Result<M, TrainError> {
        let path = self.path.join(MODEL_FILE);
        let record = ModuleRecord::load(&path).map_err(|e| TrainError::BadCheckpoint {
            path: path.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        load_record_checked(&path, model, record)
    }
}

/// Loads `record` (read from `path`) into `model`, comparing keys and shapes first.
pub(crate) fn load_record_checked<M: Module>(
    path: &Path,
    model: M,
    record: ModuleRecord,
) -> Result<M, TrainError> {
    let expected = weight_shapes(&model)?;
    let found = file_shapes(path)?;
    let diff = KeyDiff::between(&expected, &found);
    if !diff.is_empty() {
        return Err(TrainError::Architecture {
            path: path.to_path_buf(),
            diff,
        });
    }
    model
        .try_load_record(record)
        .map_err(|e| TrainError::BadCheckpoint {
            path: path.to_path_buf(),
            reason: format!("cannot load: {e}"),
        })
}

/// Every tensor `module` saves (parameters and batch norm's running statistics) with its
/// shape, by key: what its `model.bpk` would hold.
pub fn weight_shapes(module: &impl Module) -> Result<BTreeMap<String, Vec<usize>>, TrainError> {
    let bytes = module
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| TrainError::ReadBack {
            what: "weights",
            reason: e.to_string(),
        })?;
    let mut store = BurnpackStore::from_bytes(Some(bytes));
    let tensors = store.get_all_tensors().map_err(|e| TrainError::ReadBack {
        what: "weights",
        reason: e.to_string(),
    })?;
    Ok(shapes_of(tensors))
}

fn shapes_of(
    tensors: &BTreeMap<String, burn::store::burn_pack::Tensor>,
) -> BTreeMap<String, Vec<usize>> {
    tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.to_vec()))
        .collect()
}

/// The tensors of a burnpack weights file with their shapes, by key.
fn file_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>, TrainError> {
    let mut store = BurnpackStore::from_file(path);
    let tensors = store
        .get_all_tensors()
        .map_err(|e| TrainError::BadCheckpoint {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        })?;
    Ok(shapes_of(tensors))
}

/// How the weights of a checkpoint differ from a model's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyDiff {
    /// Keys the model has and the checkpoint lacks, with the model's shapes.
    pub missing: Vec<(String, Vec<usize>)>,
    /// Keys the checkpoint has and the model lacks, with the checkpoint's shapes.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// Keys in both with other shapes: `(key, model's shape, checkpoint's shape)`.
    pub shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl KeyDiff {
    /// Compares a model's shapes with a checkpoint's.
    pub fn between(
        model: &BTreeMap<String, Vec<usize>>,
        checkpoint: &BTreeMap<String, Vec<usize>>,
    ) -> Self {
        let mut diff = KeyDiff::default();
        for (key, shape) in model {
            match checkpoint.get(key) {
                None => diff.missing.push((key.clone(), shape.clone())),
                Some(other) if other != shape => {
                    diff.shapes
                        .push((key.clone(), shape.clone(), other.clone()));
                }
                Some(_) => {}
            }
        }
        for (key, shape) in checkpoint {
            if !model.contains_key(key) {
                diff.unexpected.push((key.clone(), shape.clone()));
            }
        }
        diff
    }

    /// Whether the two agree on every key and shape.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shapes.is_empty()
    }
}

impl fmt::Display for KeyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let keys: Vec<String> = self
                .missing
                .iter()
                .map(|(k, s)| format!("{k} {s:?}"))
                .collect();
            parts.push(format!("missing in the checkpoint: {}", keys.join(", ")));
        }
        if !self.unexpected.is_empty() {
            let keys: Vec<String> = self
                .unexpected
                .iter()
                .map(|(k, s)| format!("{k} {s:?}"))
                .collect();
            parts.push(format!("not in the model: {}", keys.join(", ")));
        }
        if !self.shapes.is_empty() {
            let keys: Vec<String> = self
                .shapes
                .iter()
                .map(|(k, m, c)| format!("{k} (model {m:?}, checkpoint {c:?})"))
                .collect();
            parts.push(format!("other shapes: {}", keys.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Every readable checkpoint of a run folder, oldest first. Folders that are not complete
/// checkpoints (a crash mid-write leaves only temporary names) are skipped.
pub fn list_checkpoints(run_dir: impl AsRef<Path>) -> Result<Vec<SavedCheckpoint>, TrainError> {
    let dir = run_dir.as_ref().join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))? {
        let entry = entry.map_err(|e| TrainError::io(&dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("epoch-") {
            continue;
        }
        match SavedCheckpoint::open(entry.path()) {
            Ok(c) => found.push(c),
            Err(e) => tracing::warn!(error = %e, "skipping unreadable checkpoint"),
        }
    }
    found.sort_by_key(|c| c.state.global_step);
    Ok(found)
}

fn best_of(all: &[SavedCheckpoint]) -> Option<&SavedCheckpoint> {
    all.iter().filter(|c| c.state.test_accuracy.is_some()).fold(
        None,
        |best: Option<&SavedCheckpoint>, c| match best {
            Some(b) if b.state.test_accuracy >= c.state.test_accuracy => Some(b),
            _ => Some(c),
        },
    )
}

/// The three records of a checkpoint, serialized.
pub(crate) struct Records {
    pub model: Vec<u8>,
    pub optim: Vec<u8>,
    pub scheduler: Vec<u8>,
}

/// Writes a run's checkpoint folders atomically and keeps the newest `keep_last` and the best.
pub(crate) struct CheckpointStore {
    dir: PathBuf,
    keep_last: usize,
}

impl CheckpointStore {
    pub fn new(run_dir: &Path, keep_last: usize) -> Self {
        Self {
            dir: run_dir.join(CHECKPOINTS_DIR),
            keep_last: keep_last.max(1),
        }
    }

    /// Writes the checkpoint, then deletes the ones no longer kept; returns its folder.
    pub fn save(&self, state: &CheckpointState, records: &Records) -> Result<PathBuf, TrainError> {
        let path = self.write(state, records)?;
        if let Err(e) = self.prune() {
            tracing::warn!(error = %e, "cannot delete old checkpoints");
        }
        Ok(path)
    }

    /// Removes the temporary folders of checkpoints a killed process was writing (they never
    /// got their final name, so nothing reads them).
    pub fn remove_unfinished(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-")
                && let Err(e) = fs::remove_dir_all(entry.path())
            {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove an unfinished checkpoint");
            }
        }
    }

    /// Writes the folder under a temporary name, syncs it and renames it into place.
    fn write(&self, state: &CheckpointState, records: &Records) -> Result<PathBuf, TrainError> {
        fs::create_dir_all(&self.dir).map_err(|e| TrainError::io(&self.dir, e))?;
        let name = state.dir_name();
        let final_path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".tmp-{name}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        if let Err(e) = write_files(&tmp, state, records) {
            // A full disk, say: leave nothing half-written behind (it never had the final
            // name, so it could not be taken for a checkpoint, but it holds space).
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if final_path.exists() {
            let old = self.dir.join(format!(".old-{name}-{}", std::process::id()));
            fs::rename(&final_path, &old).map_err(|e| TrainError::io(&final_path, e))?;
            fs::rename(&tmp, &final_path).map_err(|e| TrainError::io(&final_path, e))?;
            fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
        } else {
            fs::rename(&tmp, &final_path).map_err(|e| TrainError::io(&final_path, e))?;
        }
        sync_dir(&self.dir)?;
        Ok(final_path)
    }

    /// Deletes all but the newest `keep_last` checkpoints and the best one.
    fn prune(&self) -> Result<(), TrainError> {
        let Some(run_dir) = self.dir.parent() else {
            return Ok(());
        };
        let all = list_checkpoints(run_dir)?;
        let best = best_of(&all).map(|c| c.path.clone());
        let keep_from = all.len().saturating_sub(self.keep_last);
        for (i, c) in all.iter().enumerate() {
            if i < keep_from && Some(&c.path) != best.as_ref() {
                fs::remove_dir_all(&c.path).map_err(|e| TrainError::io(&c.path, e))?;
            }
        }
        Ok(())
    }

    /// Whether the checkpoint at `path` is currently the best of the run.
    pub fn is_best(&self, path: &Path) -> bool {
        let Some(run_dir) = self.dir.parent() else {
            return false;
        };
        list_checkpoints(run_dir)
            .ok()
            .and_then(|all| best_of(&all).map(|b| b.path == path))
            .unwrap_or(false)
    }
}

/// The four files of a checkpoint folder, each written and synced.
fn write_files(dir: &Path, state: &CheckpointState, records: &Records) -> Result<(), TrainError> {
    let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::Json {
        path: dir.join(STATE_FILE),
        reason: e.to_string(),
    })?;
    let files: [(&str, &[u8]); 4] = [
        (STATE_FILE, &json),
        (MODEL_FILE, &records.model),
        (OPTIM_FILE, &records.optim),
        (SCHEDULER_FILE, &records.scheduler),
    ];
    for (file, bytes) in files {
        let path = dir.join(file);
        let mut f = File::create(&path).map_err(|e| TrainError::io(&path, e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| TrainError::io(&path, e))?;
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    // Makes the renames durable; directories can be opened read-only and synced on Unix.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TrainError::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn state(epoch: usize, step: u64, acc: Option<f64>) -> CheckpointState {
        CheckpointState {
            format: STATE_FORMAT,
            epoch,
            batches_into_epoch: 0,
            global_step: step,
            loss: Some(1.0),
            test_loss: Some(1.0),
            test_accuracy: acc,
            loader_epoch: epoch as u64,
            partial: None,
            class_names: vec!["a".into()],
            config: TrainConfig::tutorial(),
            history: Vec::new(),
        }
    }

    fn save(store: &CheckpointStore, _key: usize, s: CheckpointState) -> PathBuf {
        let records = Records {
            model: vec![1, 2, 3],
            optim: vec![4, 5],
            scheduler: vec![6],
        };
        store.save(&s, &records).unwrap()
    }

    #[test]
    fn keeps_the_last_k_and_the_best() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), 2);
        let accs = [0.3, 0.9, 0.5, 0.4, 0.6];
        for (i, acc) in accs.iter().enumerate() {
            save(&store, i + 1, state(i + 1, (i + 1) as u64 * 10, Some(*acc)));
        }
        let names: Vec<String> = list_checkpoints(dir.path())
            .unwrap()
            .iter()
            .map(|c| c.state.dir_name())
            .collect();
        assert_eq!(names, ["epoch-0002", "epoch-0004", "epoch-0005"]);
        assert_eq!(SavedCheckpoint::best(dir.path()).unwrap().state.epoch, 2);
        assert_eq!(SavedCheckpoint::latest(dir.path()).unwrap().state.epoch, 5);
        // No temporary folders are left behind.
        let leftovers = fs::read_dir(dir.path().join(CHECKPOINTS_DIR))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn a_missing_file_or_bad_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), 2);
        let path = save(&store, 1, state(1, 10, Some(0.5)));
        fs::write(path.join(STATE_FILE), b"{not json").unwrap();
        let err = SavedCheckpoint::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("state.json") && err.contains("invalid state"),
            "{err}"
        );
        fs::remove_file(path.join(OPTIM_FILE)).unwrap();
        let err = SavedCheckpoint::open(&path).unwrap_err().to_string();
        assert!(err.contains("optim.bpk is missing"), "{err}");
        assert!(matches!(
            SavedCheckpoint::latest(dir.path().join("nowhere")),
            Err(TrainError::NoCheckpoint(_))
        ));
    }

    #[test]
    fn rewriting_a_checkpoint_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), 3);
        save(&store, 1, state(1, 10, Some(0.1)));
        let p = save(&store, 2, state(1, 10, Some(0.2)));
        assert_eq!(
            SavedCheckpoint::open(p).unwrap().state.test_accuracy,
            Some(0.2)
        );
    }
}
