//! Chapter four: checkpoints — `torch.save({'epoch', 'model_state_dict',
//! 'optimizer_state_dict', 'loss'})` — written atomically after every epoch.
//!
//! A checkpoint is a folder `checkpoints/epoch-NNNN/` (or `epoch-NNNN-step-SSSSSS/` when a
//! run was stopped inside an epoch) holding
//!
//! | file | content |
//! |---|---|
//! | `model.bpk` | the weights (Burn's burnpack format; keys `model.<Variant>.<layer>.<param>`) |
//! | `optim.bpk` | the optimizer state (momentum buffers, Adam moments) |
//! | `scheduler.bpk` | the learning-rate scheduler position |
//! | `state.json` | epoch, step, loss, test accuracy, the full [`TrainConfig`], the seed and the data loader position, and the history of every epoch |
//!
//! The folder is assembled under a temporary name and renamed into place, so a crash leaves
//! either the previous checkpoint or the complete new one. The newest `keep_last`
//! checkpoints and the best one by test accuracy are kept; older ones are deleted.
//!
//! Burn's [`LearningCheckpointer`](burn::train::LearningCheckpointer) writes the three records
//! through [`Checkpointer`] implementations; this module's checkpointer collects them in
//! memory and writes the folder once all three and the state have arrived. Loading does not go
//! through Burn (whose checkpointer panics on a bad file): [`SavedCheckpoint`] checks every
//! file first and reports what is wrong.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use burn::train::checkpoint::{
    Checkpoint, Checkpointer, CheckpointerError, CheckpointingAction, CheckpointingStrategy,
};
use burn::train::metric::store::EventStoreClient;
use serde::{Deserialize, Serialize};
use torchlet_model::Model;

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::report::EpochSummary;
use crate::step::Classifier;

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
/// Version of the `state.json` layout.
pub const STATE_FORMAT: u32 = 1;

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

    /// Builds the checkpoint's model on `device` and loads its weights into it, checking every
    /// name and shape: a fresh model, ready for inference after `.valid()`.
    pub fn load_model(&self, device: &Device) -> Result<Model, TrainError> {
        let record = ModuleRecord::load(self.path.join(MODEL_FILE)).map_err(|e| {
            TrainError::BadCheckpoint {
                path: self.path.join(MODEL_FILE),
                reason: format!("cannot read: {e}"),
            }
        })?;
        Ok(load_classifier(&self.path, &self.state.config, record, device)?.into_inner())
    }
}

/// Builds the configured model on `device` and loads `record` into it, with errors naming
/// `path`.
pub(crate) fn load_classifier(
    path: &Path,
    config: &TrainConfig,
    record: ModuleRecord,
    device: &Device,
) -> Result<Classifier, TrainError> {
    let model = config.model.try_init(device)?;
    Classifier::new(model)
        .try_load_record(record)
        .map_err(|e| TrainError::BadCheckpoint {
            path: path.join(MODEL_FILE),
            reason: format!("does not fit the {} model: {e}", config.model.kind()),
        })
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

/// Which record a [`PartCheckpointer`] handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    Model,
    Optim,
    Scheduler,
}

impl Part {
    fn file(self) -> &'static str {
        match self {
            Part::Model => MODEL_FILE,
            Part::Optim => OPTIM_FILE,
            Part::Scheduler => SCHEDULER_FILE,
        }
    }
}

#[derive(Default)]
struct Pending {
    state: Option<CheckpointState>,
    parts: HashMap<Part, Vec<u8>>,
}

#[derive(Default)]
struct StoreInner {
    pending: HashMap<usize, Pending>,
    done: HashMap<usize, Result<PathBuf, String>>,
    paths: HashMap<usize, PathBuf>,
}

/// Collects the records of a checkpoint from Burn's checkpointer threads and writes the
/// folder atomically when everything has arrived. Keyed by the global step.
pub(crate) struct CheckpointStore {
    dir: PathBuf,
    keep_last: usize,
    inner: Mutex<StoreInner>,
    ready: Condvar,
}

impl CheckpointStore {
    pub fn new(run_dir: &Path, keep_last: usize) -> Self {
        Self {
            dir: run_dir.join(CHECKPOINTS_DIR),
            keep_last: keep_last.max(1),
            inner: Mutex::new(StoreInner::default()),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Announces the state of the checkpoint `key`; the records follow from Burn.
    pub fn stage(&self, key: usize, state: CheckpointState) {
        let mut inner = self.lock();
        inner.done.remove(&key);
        inner.pending.entry(key).or_default().state = Some(state);
        self.try_complete(&mut inner, key);
    }

    fn put(&self, key: usize, part: Part, bytes: Vec<u8>) {
        let mut inner = self.lock();
        inner
            .pending
            .entry(key)
            .or_default()
            .parts
            .insert(part, bytes);
        self.try_complete(&mut inner, key);
    }

    fn fail(&self, key: usize, reason: String) {
        let mut inner = self.lock();
        inner.pending.remove(&key);
        inner.done.insert(key, Err(reason));
        self.ready.notify_all();
    }

    fn try_complete(&self, inner: &mut StoreInner, key: usize) {
        let complete = inner
            .pending
            .get(&key)
            .is_some_and(|p| p.state.is_some() && p.parts.len() == 3);
        if !complete {
            return;
        }
        let Some(pending) = inner.pending.remove(&key) else {
            return;
        };
        let result = self.write(pending).map_err(|e| e.to_string());
        if let Ok(path) = &result {
            inner.paths.insert(key, path.clone());
            if let Err(e) = self.prune() {
                tracing::warn!(error = %e, "cannot delete old checkpoints");
            }
        }
        inner.done.insert(key, result);
        self.ready.notify_all();
    }

    /// Waits until checkpoint `key` is written (or failed).
    pub fn wait(&self, key: usize) -> Result<PathBuf, TrainError> {
        let mut inner = self.lock();
        loop {
            if let Some(result) = inner.done.remove(&key) {
                return result.map_err(|reason| TrainError::BadCheckpoint {
                    path: self.dir.clone(),
                    reason: format!("cannot write: {reason}"),
                });
            }
            inner = self
                .ready
                .wait(inner)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn path_of(&self, key: usize) -> Option<PathBuf> {
        self.lock().paths.get(&key).cloned()
    }

    /// Writes the folder under a temporary name, syncs it and renames it into place.
    fn write(&self, pending: Pending) -> Result<PathBuf, TrainError> {
        let Some(state) = pending.state else {
            return Err(TrainError::InvalidConfig("checkpoint without state".into()));
        };
        fs::create_dir_all(&self.dir).map_err(|e| TrainError::io(&self.dir, e))?;
        let name = state.dir_name();
        let final_path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".tmp-{name}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        let json = serde_json::to_vec_pretty(&state).map_err(|e| TrainError::Json {
            path: tmp.join(STATE_FILE),
            reason: e.to_string(),
        })?;
        let mut files: Vec<(&str, &[u8])> = vec![(STATE_FILE, &json)];
        for part in [Part::Model, Part::Optim, Part::Scheduler] {
            let bytes = pending.parts.get(&part).map_or(&[][..], Vec::as_slice);
            files.push((part.file(), bytes));
        }
        for (file, bytes) in files {
            let path = tmp.join(file);
            let mut f = File::create(&path).map_err(|e| TrainError::io(&path, e))?;
            f.write_all(bytes)
                .and_then(|()| f.sync_all())
                .map_err(|e| TrainError::io(&path, e))?;
        }
        sync_dir(&tmp)?;
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

/// Burn [`Checkpointer`] for one of the three records; hands its bytes to the store.
pub(crate) struct PartCheckpointer {
    store: Arc<CheckpointStore>,
    part: Part,
}

impl PartCheckpointer {
    pub fn new(store: Arc<CheckpointStore>, part: Part) -> Self {
        Self { store, part }
    }
}

impl<R: Checkpoint> Checkpointer<R> for PartCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        match record.checkpoint_into_bytes() {
            Ok(bytes) => {
                self.store.put(epoch, self.part, bytes.to_vec());
                Ok(())
            }
            Err(e) => {
                self.store.fail(epoch, format!("{}: {e}", self.part.file()));
                Err(CheckpointerError::Record(e))
            }
        }
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        // Retention is the store's (keep the last K and the best by test accuracy).
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        let dir = self.store.path_of(epoch).ok_or_else(|| {
            CheckpointerError::Unknown(format!("no checkpoint written at step {epoch}"))
        })?;
        let bytes = fs::read(dir.join(self.part.file())).map_err(CheckpointerError::IOError)?;
        R::checkpoint_from_bytes(Bytes::from_bytes_vec(bytes)).map_err(CheckpointerError::Record)
    }
}

/// Burn checkpointing strategy: save whenever asked (the loop asks once per epoch and on a
/// requested stop); the store does the retention.
pub(crate) struct SaveEveryCall;

impl CheckpointingStrategy for SaveEveryCall {
    fn checkpointing(
        &mut self,
        _epoch: usize,
        _store: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
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

    fn save(store: &CheckpointStore, key: usize, s: CheckpointState) -> PathBuf {
        store.stage(key, s);
        for part in [Part::Model, Part::Optim, Part::Scheduler] {
            store.put(key, part, vec![1, 2, 3]);
        }
        store.wait(key).unwrap()
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
