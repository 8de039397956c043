//! Hostile input: weight files that would run code or claim huge tensors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use torchlet::burn;
use torchlet::model::interop::InteropError;
use torchlet::model::{LinearBaselineConfig, load_pytorch, load_safetensors};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reliability")
        .join(name)
}

// ---------------------------------------------------------------- untrusted weights

/// The file scripts/hostile_fixtures.py's pickles would create if their code ran.
const MARKER: &str = "/tmp/torchlet-pickle-ran-code";

#[test]
fn a_pth_whose_pickle_runs_code_is_rejected_without_running_it() {
    // Made by scripts/hostile_fixtures.py with real PyTorch:
    //   class RunsCode:
    //       def __reduce__(self): return (os.system, ("touch /tmp/torchlet-pickle-ran-code",))
    //   torch.save({"fc.weight": RunsCode(), "fc.bias": torch.zeros(10)}, "pickle_runs_code.pth")
    // (and the same with `eval`); torch.load(weights_only=False) creates the marker.
    let _ = std::fs::remove_file(MARKER);
    for name in ["pickle_runs_code.pth", "pickle_eval.pth"] {
        let path = fixture(name);
        let model = LinearBaselineConfig::new().init(&Device::flex());
        let err = load_pytorch(model, &path).expect_err(name);
        let text = err.to_string();
        println!("{name}: {text}");
        assert!(text.contains(name), "the error names the file: {text}");
        assert!(
            matches!(
                err,
                InteropError::ReadPytorch { .. }
                    | InteropError::Mismatch { .. }
                    | InteropError::Apply { .. }
            ),
            "{text}"
        );
        assert!(
            !Path::new(MARKER).exists(),
            "{name}: loading ran the pickle's code"
        );
    }
}

/// A safetensors file: 8-byte little-endian header length, the JSON header, the data.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn a_safetensors_header_claiming_huge_tensors_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            // 10^12 × 3072 floats (12 exabytes) in a 64-byte file.
            "huge_shape.safetensors",
            safetensors_bytes(
                r#"{"fc.weight":{"dtype":"F32","shape":[1000000000000,3072],"data_offsets":[0,12288000000000000]},"fc.bias":{"dtype":"F32","shape":[10],"data_offsets":[0,40]}}"#,
                &[0u8; 64],
            ),
        ),
        (
            // Offsets past the end of the file.
            "offsets_past_the_end.safetensors",
            safetensors_bytes(
                r#"{"fc.weight":{"dtype":"F32","shape":[10,3072],"data_offsets":[0,122880]},"fc.bias":{"dtype":"F32","shape":[10],"data_offsets":[122880,122920]}}"#,
                &[0u8; 16],
            ),
        ),
        (
            // A header length of 2^63 bytes.
            "huge_header.safetensors",
            [(1u64 << 63).to_le_bytes().to_vec(), b"{}".to_vec()].concat(),
        ),
        (
            // Shape and offsets that disagree.
            "shape_and_offsets_disagree.safetensors",
            safetensors_bytes(
                r#"{"fc.weight":{"dtype":"F32","shape":[10,3072],"data_offsets":[0,8]},"fc.bias":{"dtype":"F32","shape":[10],"data_offsets":[8,48]}}"#,
                &[0u8; 48],
            ),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let model = LinearBaselineConfig::new().init(&Device::flex());
        let err = load_safetensors(model, &path).expect_err(name);
        let text = err.to_string();
        println!("{name}: {text}");
        assert!(text.contains(name), "the error names the file: {text}");
    }
}
