//! Real processes, real signals: the `cifar10_train` example is started on a tiny archive,
//! interrupted with SIGINT mid-epoch (it writes a checkpoint and exits with 130) or killed
//! with SIGKILL at a random moment (the last complete checkpoint loads, nothing half-written is
//! taken for one), resumed with `--resume`, and its final weights compared bit for bit with an
//! uninterrupted run's.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{example, members, params, write_archive};
use torchlet::burn::tensor::Device;
use torchlet::train::{SavedCheckpoint, list_checkpoints};

const EPOCHS: &str = "3";

/// The example on `archive` into `out`: the conv net, batch 8 (25 steps per epoch of 200
/// images), augmentation on, every step logged.
fn start(archive: &Path, out: &Path, resume: bool) -> Child {
    let mut cmd = Command::new(example());
    cmd.args(["--device", "flex", "--batch-size", "8", "--augment"])
        .args(["--epochs", EPOCHS, "--log-every", "1", "--workers", "1"])
        .arg("--archive")
        .arg(archive)
        .arg("--out")
        .arg(out)
        .env("BURN_DEVICE", "flex")
        .env("RAYON_NUM_THREADS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if resume {
        cmd.arg("--resume").arg(out);
    }
    cmd.spawn().unwrap()
}

/// Forwards the child's stdout lines to a channel (and keeps stderr for the end).
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn finish(mut child: Child) -> (ExitStatus, String) {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
    }
    (child.wait().unwrap(), stderr)
}

/// Waits for the line `until` accepts; panics after a minute.
fn wait_for(rx: &mpsc::Receiver<String>, until: impl Fn(&str) -> bool) -> String {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the example printed nothing for a minute");
        if until(&line) {
            return line;
        }
    }
}

fn run_to_end(archive: &Path, out: &Path, resume: bool) {
    let child = start(archive, out, resume);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The weights of the run's newest checkpoint, by path, as bits.
fn final_weights(out: &Path) -> std::collections::BTreeMap<String, Vec<u32>> {
    let saved = SavedCheckpoint::latest(out).unwrap();
    assert_eq!(saved.state.epoch.to_string(), EPOCHS);
    let model = saved
        .load_into(saved.state.config.model.init(&Device::flex()))
        .unwrap();
    params(&model)
}

fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} failed");
}

/// A tiny archive (5 × 40 training images, 40 test images) in `dir`.
fn archive(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.tar.gz");
    write_archive(&path, &members(40));
    path
}

#[test]
fn sigint_mid_epoch_checkpoints_exits_130_and_resumes_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let archive = archive(dir.path());
    let straight = dir.path().join("straight");
    run_to_end(&archive, &straight, false);

    let out = dir.path().join("interrupted");
    let mut child = start(&archive, &out, false);
    let rx = lines(&mut child);
    wait_for(&rx, |l| {
        l.starts_with("epoch 2 step") && l.contains("    5/")
    });
    send(&child, "-INT");
    let rest: Vec<String> = rx.iter().collect();
    let (status, stderr) = finish(child);
    assert_eq!(status.code(), Some(130), "{stderr}\n{rest:?}");
    assert!(stderr.contains("Ctrl-C: finishing this step"), "{stderr}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("stopped early; continue with")),
        "{rest:?}"
    );
    let saved = SavedCheckpoint::latest(&out).unwrap();
    assert_eq!(saved.state.epoch, 1, "stopped inside epoch 2");
    assert!(saved.state.batches_into_epoch >= 5, "{:?}", saved.state);

    run_to_end(&archive, &out, true);
    assert_eq!(
        final_weights(&straight),
        final_weights(&out),
        "interrupted + resumed differs from straight"
    );
}

#[test]
fn sigkill_at_a_random_moment_leaves_only_loadable_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let archive = archive(dir.path());
    let straight = dir.path().join("straight");
    run_to_end(&archive, &straight, false);

    // A moment in epoch 2 or 3, or right at an epoch's end (while its checkpoint is written).
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    let (epoch, step) = match (2 + nanos % 2, (nanos / 7) % 26) {
        (2, 0) => (2, 1), // epoch 1's checkpoint may still be half-written: not a resume test
        moment => moment,
    };
    println!(
        "SIGKILL after epoch {epoch}, step {step} (0: at epoch {}'s end)",
        epoch - 1
    );
    let out = dir.path().join("killed");
    let mut child = start(&archive, &out, false);
    let rx = lines(&mut child);
    if step == 0 {
        wait_for(&rx, |l| l.starts_with(&format!("epoch {}/", epoch - 1)));
    } else {
        let mark = format!("{step:>5}/");
        wait_for(&rx, |l| {
            l.starts_with(&format!("epoch {epoch} step")) && l.contains(&mark)
        });
    }
    send(&child, "-KILL");
    let (status, _) = finish(child);
    assert_eq!(status.code(), None, "killed by a signal");

    // Every checkpoint listed loads; nothing else in the folder looks like one.
    let listed = list_checkpoints(&out).unwrap();
    assert!(!listed.is_empty(), "epoch 1's checkpoint was complete");
    for saved in &listed {
        saved
            .load_into(saved.state.config.model.init(&Device::flex()))
            .unwrap();
    }
    run_to_end(&archive, &out, true);
    let unfinished: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp-"))
        .collect();
    assert!(
        unfinished.is_empty(),
        "the resumed run removed {unfinished:?}"
    );
    assert_eq!(
        final_weights(&straight),
        final_weights(&out),
        "killed + resumed differs from straight"
    );
}
