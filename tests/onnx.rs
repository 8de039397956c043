//! ONNX export (`--features onnx`): every exportable built-in network, written by the
//! `export_onnx` example and run in real onnxruntime by `scripts/check_onnx.py`, gives
//! torchlet's logits within 1e-4; a trained conv net from `cifar10_train --export-onnx` gives
//! the same accuracy on real test images. onnxruntime comes from PyPI (`.ci/run` installs it).
#![cfg(feature = "onnx")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{example, example_named, real_archive};
use torchlet::burn::tensor::Device;
use torchlet::model::{Airbench94Config, ModelConfig, onnx};

/// Whether python3 can import onnxruntime; panics under CI, where `.ci/run` installs it.
fn onnxruntime_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI is set but python3 cannot import onnxruntime and numpy");
    }
    if !ok {
        eprintln!("SKIPPED: pip install onnxruntime numpy to run the onnxruntime check");
    }
    ok
}

/// Runs `scripts/check_onnx.py` on `model` and returns its output; fails the test if it fails.
fn check_in_onnxruntime(model: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_onnx.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(model)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}: {text}{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("same as torchlet"), "{text}");
    text
}

/// Runs the `export_onnx` example with `args`, asserting it succeeds.
fn export(args: &[&str]) {
    let out = Command::new(example_named("export_onnx"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export_onnx {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_exportable_network_matches_onnxruntime() {
    let check = onnxruntime_available();
    let dir = tempfile::tempdir().unwrap();
    for name in ["linear", "conv", "vgg11", "vgg16", "resnet18"] {
        let path = dir.path().join(format!("{name}.onnx"));
        export(&[
            "--model",
            name,
            "--images",
            "8",
            "--out",
            path.to_str().unwrap(),
        ]);
        let bytes = std::fs::read(&path).unwrap();
        // An ONNX ModelProto starts with field 1 (ir_version, a varint): byte 0x08.
        assert_eq!(bytes.first(), Some(&0x08), "{name}");
        if check {
            let line = check_in_onnxruntime(&path);
            assert!(line.contains("8 images"), "{line}");
        }
    }
}

#[test]
fn airbench94_gelu_is_an_export_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("airbench94.onnx");
    let model = Airbench94Config::new().init(&Device::flex());
    let err = onnx::export_onnx(&model, [3, 32, 32], &path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, onnx::OnnxError::Export { .. }), "{err:?}");
    assert!(msg.to_lowercase().contains("gelu"), "{msg}");
    assert!(msg.contains("airbench94"), "{msg}");
    assert!(!path.exists(), "a failed export must not leave a file");
}

#[test]
fn empty_input_shape_is_an_error() {
    let model = ModelConfig::default_for("linear".parse().unwrap()).init(&Device::flex());
    let err = onnx::onnx_bytes(&model, [3, 0, 32]).unwrap_err();
    assert!(
        matches!(err, onnx::OnnxError::EmptyInput([3, 0, 32])),
        "{err:?}"
    );
}

#[test]
fn unwritable_path_is_an_error_naming_it() {
    let model = ModelConfig::default_for("linear".parse().unwrap()).init(&Device::flex());
    let path = Path::new("/nonexistent-dir/model.onnx");
    let err = onnx::export_onnx(&model, [3, 32, 32], path).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-dir/model.onnx"),
        "{err}"
    );
}

#[test]
fn trained_conv_net_gives_onnxruntime_the_same_accuracy() {
    let Some(archive) = real_archive() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = Command::new(example())
        .args([
            "--archive",
            archive.to_str().unwrap(),
            "--limit",
            "1000",
            "--epochs",
            "1",
        ])
        .args(["--quiet", "--export-onnx", "--out", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run.join("model.onnx").is_file());

    let model = dir.path().join("trained.onnx");
    let (archive, run, model_str) = (
        archive.to_str().unwrap(),
        run.to_str().unwrap(),
        model.to_str().unwrap(),
    );
    export(&[
        "--checkpoint",
        run,
        "--archive",
        archive,
        "--images",
        "500",
        "--out",
        model_str,
    ]);
    if onnxruntime_available() {
        let line = check_in_onnxruntime(&model);
        assert!(
            line.contains("500 images") && line.contains("accuracy"),
            "{line}"
        );
    }
    // The run's own model.onnx: the conv net's 145,578 weights embedded.
    let bytes = std::fs::read(dir.path().join("run/model.onnx")).unwrap();
    assert_eq!(bytes.first(), Some(&0x08));
    assert!(bytes.len() > 145_578 * 4, "{} bytes", bytes.len());
}
