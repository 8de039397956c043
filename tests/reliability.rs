//! Hostile input and real faults: weight files that would run code or claim huge tensors,
//! and two trainings in one process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use burn::tensor::Device;
use common::synthetic;
use torchlet::burn;
use torchlet::data::ImageShape;
use torchlet::model::interop::InteropError;
use torchlet::model::{LinearBaselineConfig, ModelConfig, load_pytorch, load_safetensors};
use torchlet::train::{
    DeviceChoice, Observer, OptimizerConfig, Phase, Progress, TrainConfig, TrainError, Trainer,
    select_device,
};

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

// ---------------------------------------------------------------- two trainings at once

/// Holds the run at its first training step until `release` is sent.
struct Gate {
    reached: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Observer for Gate {
    fn progress(&self, p: &Progress) {
        if p.phase == Phase::Train
            && p.done == 1
            && let Some(reached) = self.reached.lock().unwrap().take()
        {
            reached.send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
    }
}

fn small_run(out: &Path) -> Trainer {
    let config = TrainConfig {
        model: ModelConfig::Linear(LinearBaselineConfig::new().with_num_classes(4)),
        optimizer: OptimizerConfig::sgd(0.01),
        epochs: 1,
        batch_size: 8,
        log_every: 0,
        num_workers: 1,
        ..TrainConfig::tutorial()
    };
    Trainer::new(config, out)
        .device(select_device(DeviceChoice::Flex).unwrap())
        .final_reports(false)
}

#[test]
fn a_second_training_at_once_is_refused_unless_allowed() {
    // Two runs at once share the CPU's threads, and Burn's parallel sums then add in an order
    // that depends on timing (measured: a run beside another ended with other bits than
    // alone, with and without dropout). So a second concurrent run is an error by default.
    let _serial = common::serial();
    let data = synthetic(32, 4, ImageShape::CIFAR, 8);
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (reached_tx, reached) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gate = Arc::new(Gate {
        reached: Mutex::new(Some(reached_tx)),
        release: Mutex::new(release_rx),
    });
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            small_run(dirs[0].path())
                .observer(gate.clone())
                .fit(data.clone(), data.clone())
        });
        // The first run is inside its first step (or it failed: then say why, not hang).
        if reached.recv_timeout(Duration::from_secs(300)).is_err() {
            panic!("the first run never reached its step: {:?}", first.join());
        }
        let err = small_run(dirs[1].path())
            .fit(data.clone(), data.clone())
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TrainError::ConcurrentRun { .. }), "{text}");
        assert!(
            text.contains(&dirs[0].path().display().to_string()),
            "{text}"
        );
        assert!(
            text.contains(&dirs[1].path().display().to_string()),
            "{text}"
        );
        // Allowed explicitly, it trains beside the first.
        let beside = small_run(dirs[2].path())
            .allow_concurrent(true)
            .fit(data.clone(), data.clone())
            .unwrap();
        assert_eq!(beside.history.len(), 1);
        release.send(()).unwrap();
        first.join().unwrap().unwrap();
    });
    // The claim is released when a run ends, also when it ends in an error.
    let bad = TrainConfig {
        epochs: 0,
        ..TrainConfig::tutorial()
    };
    let err = Trainer::new(bad, dirs[3].path())
        .fit(data.clone(), data.clone())
        .unwrap_err();
    assert!(matches!(err, TrainError::InvalidValue { .. }), "{err}");
    small_run(dirs[1].path()).fit(data.clone(), data).unwrap();
}

// ---------------------------------------------------------------- images claiming huge sizes

/// CRC-32 (IEEE) of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG of `width × height` RGB pixels whose data is one empty compressed block.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn an_image_claiming_a_huge_size_is_an_error_not_an_allocation() {
    use torchlet::data::image_folder::{Channels, load_image_chw_as};
    let dir = tempfile::tempdir().unwrap();
    // A real 12 × 10 JPEG (scripts/jpeg_seeds.py) whose frame header now says 65,535 × 65,535
    // (12.9 GB of RGB pixels), and a PNG saying 100,000 × 100,000 (30 GB).
    let mut jpeg = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/image_decode/rgb12x10.jpg"),
    )
    .unwrap();
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let files = [
        ("huge.jpg", jpeg),
        ("huge.png", png_claiming(100_000, 100_000)),
    ];
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        for channels in [Channels::Auto, Channels::Rgb, Channels::Gray] {
            let err = load_image_chw_as(&path, channels).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.to_lowercase().contains("limit"), "{name}: {err}");
        }
    }
    // The same PNG at 2 × 2 decodes (its data is then too short: an error of another kind),
    // so it is the claimed size that the limit refuses.
    let small = dir.path().join("small.png");
    std::fs::write(&small, png_claiming(2, 2)).unwrap();
    let err = load_image_chw_as(&small, Channels::Rgb)
        .unwrap_err()
        .to_string();
    assert!(!err.to_lowercase().contains("limit"), "{err}");
}

/// An 882-byte progressive JPEG (found by the `image_decode` fuzz target) whose header claims
/// 65,292 × 244 pixels: decoding it took 8 s under AddressSanitizer.
fn slow_jpeg() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/image_decode/slow-progressive-65292x244.jpg"),
    )
    .unwrap()
}

#[test]
fn a_small_file_claiming_many_pixels_is_refused_under_a_lower_limit_before_decoding() {
    use torchlet::data::DataError;
    use torchlet::data::image_folder::{ImageFolder, MAX_IMAGE_PIXELS};
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("cat");
    std::fs::create_dir(&class).unwrap();
    let path = class.join("slow.jpg");
    std::fs::write(&path, slow_jpeg()).unwrap();
    // 65,292 × 244 = 15,931,248 pixels: inside the default limit, refused under 2^20.
    const { assert!(65_292 * 244 <= MAX_IMAGE_PIXELS) };
    let folder = ImageFolder::new(dir.path()).max_pixels(1 << 20);
    for err in [
        folder.decode_file(&path).unwrap_err(),
        folder.load().unwrap_err(),
    ] {
        match &err {
            DataError::ImageTooLarge {
                path: p,
                width: 65_292,
                height: 244,
                limit: 1_048_576,
            } => assert_eq!(p, &path),
            other => panic!("expected ImageTooLarge, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("slow.jpg") && msg.contains("limit"), "{msg}");
    }
    // The limit counts pixels exactly: 65,292 × 244 is allowed at that limit, one less refuses.
    let at = ImageFolder::new(dir.path()).max_pixels(65_292 * 244);
    assert!(!matches!(
        at.decode_file(&path),
        Err(DataError::ImageTooLarge { .. })
    ));
    let below = ImageFolder::new(dir.path()).max_pixels(65_292 * 244 - 1);
    assert!(matches!(
        below.decode_file(&path),
        Err(DataError::ImageTooLarge { .. })
    ));
}

#[test]
fn the_pixel_limit_is_checked_on_every_file_before_any_is_decoded() {
    use torchlet::data::DataError;
    use torchlet::data::image_folder::ImageFolder;
    // Two classes of valid 4 × 4 PNGs; the last file of the last class claims 100,000².
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..3 {
            image::RgbImage::from_pixel(4, 4, image::Rgb([i, 2, 3]))
                .save(dir.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let folder = ImageFolder::new(dir.path());
    assert_eq!(folder.load().unwrap().len(), 6);
    assert!(matches!(
        folder.clone().max_pixels(15).load(),
        Err(DataError::ImageTooLarge {
            width: 4,
            height: 4,
            limit: 15,
            ..
        })
    ));
    assert_eq!(folder.clone().max_pixels(16).load().unwrap().len(), 6);
    let huge = dir.path().join("b").join("9.png");
    std::fs::write(&huge, png_claiming(100_000, 100_000)).unwrap();
    match folder.load() {
        Err(DataError::ImageTooLarge { path, .. }) => assert_eq!(path, huge),
        other => panic!(
            "expected ImageTooLarge for {}, got {other:?}",
            huge.display()
        ),
    }
}

#[test]
fn an_image_to_classify_is_held_to_the_same_pixel_limit() {
    use torchlet::train::load_image;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.png");
    std::fs::write(&path, png_claiming(100_000, 100_000)).unwrap();
    let err = load_image(&path, ImageShape::CIFAR)
        .unwrap_err()
        .to_string();
    assert!(err.contains("huge.png") && err.contains("limit"), "{err}");
    // A real image of another size is still resized to the model's.
    let small = dir.path().join("small.png");
    image::RgbImage::from_pixel(7, 5, image::Rgb([10, 20, 30]))
        .save(&small)
        .unwrap();
    let chw = load_image(&small, ImageShape::CIFAR).unwrap();
    assert_eq!(chw.len(), 3 * 32 * 32);
    assert!(chw[..1024].iter().all(|&v| v == 10) && chw[2048..].iter().all(|&v| v == 30));
}

// ---------------------------------------------------------------- untrusted configurations

#[test]
fn a_checkpoint_asking_for_a_huge_model_is_refused_before_building_it() {
    // A real checkpoint whose state.json is edited to ask for a linear layer of
    // 3 × 65,536 × 65,536 inputs and 4 classes (51.5 billion weights, 206 GB): --resume
    // would build it.
    let _serial = common::serial();
    let data = synthetic(16, 4, ImageShape::CIFAR, 3);
    let out = tempfile::tempdir().unwrap();
    small_run(out.path()).fit(data.clone(), data).unwrap();
    let folder = out.path().join("checkpoints/epoch-0001");
    let state_path = folder.join("state.json");
    let text = std::fs::read_to_string(&state_path).unwrap();
    let needle = "\"input\":[3,32,32]";
    let compact: String = text.split_whitespace().collect();
    assert!(compact.contains(needle), "{compact}");
    std::fs::write(
        &state_path,
        compact.replace(needle, "\"input\":[3,65536,65536]"),
    )
    .unwrap();

    let err = torchlet::train::SavedCheckpoint::find(&folder).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TrainError::BadCheckpoint { .. }), "{text}");
    assert!(text.contains(&state_path.display().to_string()), "{text}");
    assert!(text.contains("51539607556 parameters"), "{text}");
    // Looking for the run's newest checkpoint skips it (with a warning) as unreadable, so
    // resuming the run finds none, and builds nothing.
    assert!(
        torchlet::train::list_checkpoints(out.path())
            .unwrap()
            .is_empty()
    );
    let err = small_run(out.path())
        .resume_from(out.path())
        .fit(
            synthetic(16, 4, ImageShape::CIFAR, 3),
            synthetic(16, 4, ImageShape::CIFAR, 3),
        )
        .unwrap_err();
    assert!(matches!(err, TrainError::NoCheckpoint(_)), "{err}");
}
