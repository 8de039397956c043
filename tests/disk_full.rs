//! The disk fills up mid-run: a run folder on a 4 MiB tmpfs is filled to the last byte just
//! before epoch 2's checkpoint. The run stops with an error naming the file it could not
//! write, epoch 1's checkpoint stays intact and loadable, nothing half-written is taken for a
//! checkpoint, and once there is room the run resumes from epoch 1 to the same weights as a
//! run that never ran out of space.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere the test says SKIPPED, and with
//! `CI` set it fails instead.
#![cfg(target_os = "linux")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::{params, resumable_sgd, synthetic};
use torchlet::burn::tensor::Device;
use torchlet::data::ImageShape;
use torchlet::model::{LinearBaselineConfig, ModelConfig};
use torchlet::train::{
    DeviceChoice, EpochSummary, Observer, SavedCheckpoint, TrainConfig, TrainError, Trainer,
    list_checkpoints, select_device,
};

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` to the last byte, just before epoch `at`'s checkpoint (the
/// summary is reported right before the checkpoint is written).
struct FillBeforeCheckpoint {
    at: usize,
    filler: PathBuf,
    filled: Mutex<bool>,
}

impl Observer for FillBeforeCheckpoint {
    fn epoch(&self, e: &EpochSummary) {
        if e.epoch != self.at {
            return;
        }
        let mut file = std::fs::File::create(&self.filler).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        // The last partial chunk, byte by byte.
        while file.write_all(&[0]).is_ok() {}
        let _ = file.flush();
        *self.filled.lock().unwrap() = true;
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        model: ModelConfig::Linear(LinearBaselineConfig::new().with_num_classes(4)),
        optimizer: resumable_sgd(0.01),
        epochs,
        batch_size: 8,
        log_every: 0,
        num_workers: 1,
        ..TrainConfig::tutorial()
    }
}

fn trainer(out: &Path) -> Trainer {
    Trainer::new(config(3), out)
        .device(select_device(DeviceChoice::Flex).unwrap())
        .final_reports(false)
}

#[test]
fn a_full_disk_mid_run_keeps_the_last_checkpoint_and_resumes() {
    let _serial = common::serial();
    let data = synthetic(32, 4, ImageShape::CIFAR, 9);
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("small");
    std::fs::create_dir(&mount_point).unwrap();
    let _tmpfs = match Tmpfs::mount(&mount_point, "4m") {
        Ok(m) => m,
        Err(reason) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but a tmpfs cannot be mounted: {reason}"
            );
            eprintln!(
                "SKIPPED a_full_disk_mid_run_keeps_the_last_checkpoint_and_resumes: {reason}"
            );
            return;
        }
    };
    let reference_dir = dir.path().join("reference");
    let reference = trainer(&reference_dir)
        .fit(data.clone(), data.clone())
        .unwrap();

    let out = mount_point.join("run");
    let fill = Arc::new(FillBeforeCheckpoint {
        at: 2,
        filler: mount_point.join("filler"),
        filled: Mutex::new(false),
    });
    let err = trainer(&out)
        .observer(fill.clone())
        .fit(data.clone(), data.clone())
        .unwrap_err();
    assert!(*fill.filled.lock().unwrap(), "the disk was filled");
    let text = err.to_string();
    println!("disk full: {text}");
    assert!(
        text.contains(&out.display().to_string()),
        "the error names the file: {text}"
    );
    assert!(
        text.contains("No space left") || text.contains("space"),
        "the error says why: {text}"
    );
    assert!(
        !matches!(err, TrainError::NonFiniteLoss { .. }),
        "a disk error, not a training one"
    );

    // Only epoch 1's checkpoint is there, and it loads.
    let listed = list_checkpoints(&out).unwrap();
    assert_eq!(
        listed.iter().map(|c| c.state.epoch).collect::<Vec<_>>(),
        vec![1]
    );
    let leftovers: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "epoch-0001")
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written files left: {leftovers:?}"
    );
    let latest = SavedCheckpoint::latest(&out).unwrap();
    assert_eq!(latest.state.epoch, 1);
    latest
        .load_into(latest.state.config.model.init(&Device::flex()))
        .unwrap();

    // With room again, the run resumes from epoch 1 to the reference's weights.
    std::fs::remove_file(mount_point.join("filler")).unwrap();
    let resumed = trainer(&out)
        .resume_from(&out)
        .fit(data.clone(), data)
        .unwrap();
    assert_eq!(resumed.history.len(), 3);
    assert_eq!(params(&reference.model), params(&resumed.model));
}
