//! The `cifar10_train` command line as a script sees it: `--json`, `--quiet`, and CIFAR-10
//! fetched when it is not there (or an error with `--no-download`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Serve, example, members, serve, write_archive};

/// The linear model on `archive`, two epochs of 200 images at batch 50, with `extra` flags.
fn run(archive: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(example())
        .args(["--device", "flex", "--model", "linear", "--epochs", "2"])
        .args(["--batch-size", "50", "--workers", "1", "--log-every", "1"])
        .arg("--archive")
        .arg(archive)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("BURN_DEVICE", "flex")
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap()
}

/// A temporary folder holding a tiny archive (5 × 40 training images, 40 test images).
fn tiny_archive() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("tiny.tar.gz");
    write_archive(&archive, &members(40));
    (dir, archive)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn json_prints_one_object_per_epoch_on_stdout_and_the_rest_on_stderr() {
    let (dir, archive) = tiny_archive();
    let out = run(&archive, &dir.path().join("run"), &["--json"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let epochs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect(line))
        .collect();
    assert_eq!(epochs.len(), 2, "{stdout}");
    // The numbers metrics.csv has, for each epoch in turn.
    let csv = std::fs::read_to_string(dir.path().join("run/metrics.csv")).unwrap();
    for (i, epoch) in epochs.iter().enumerate() {
        assert_eq!(epoch["epoch"], i + 1, "{epoch}");
        let accuracy = epoch["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{epoch}");
        assert!(
            epoch["train_loss_mean"].as_f64().unwrap().is_finite(),
            "{epoch}"
        );
        assert_eq!(epoch["train_batches"], 4, "{epoch}");
        let row = csv.lines().nth(i + 1).unwrap();
        assert!(row.starts_with(&format!("{},", i + 1)), "{row}");
    }
    // The human lines went to stderr: the device, the steps, the summary at the end.
    assert!(stderr.contains("Using device: flex"), "{stderr}");
    assert!(stderr.contains("training took"), "{stderr}");
    assert!(!stdout.contains("Using device"), "{stdout}");
}

#[test]
fn quiet_prints_nothing_and_still_trains() {
    let (dir, archive) = tiny_archive();
    let out = run(&archive, &dir.path().join("run"), &["--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert!(
        !text(&out.stderr).contains("epoch"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        torchlet::train::list_checkpoints(dir.path().join("run"))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_missing_archive_is_downloaded_by_default_and_checked() {
    // The local server plays the official URL, with a file that is not the official archive:
    // the run fetches it (as download=True does), checks it and refuses it by its size.
    let dir = tempfile::tempdir().unwrap();
    let server = serve(common::archive_bytes(&members(4)), Serve::Whole);
    let data = dir.path().join("data");
    let out = Command::new(example())
        .args(["--device", "flex", "--epochs", "1"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--download-url", &server.url])
        .env("BURN_DEVICE", "flex")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert!(stdout.contains("downloading it"), "{stdout}");
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(stderr.contains("cannot download CIFAR-10"), "{stderr}");
    assert!(stderr.contains("size is"), "{stderr}");
    assert!(stderr.contains("expected 170052171"), "{stderr}");
    // Nothing is left that a later run could take for the archive.
    let left: Vec<_> = std::fs::read_dir(&data)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // With --no-download the same run stops at once, saying what to pass.
    let out = Command::new(example())
        .args(["--device", "flex", "--no-download"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--download-url", &server.url])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("CIFAR-10 not found (and --no-download)"),
        "{stderr}"
    );
    assert!(stderr.contains("--archive"), "{stderr}");
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}
