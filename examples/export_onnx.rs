//! Export a model to ONNX, with the files `scripts/check_onnx.py` needs to check it in
//! onnxruntime: the same images, torchlet's logits for them, and their labels.
//!
//! ```text
//! cargo run --release --features onnx --example export_onnx -- --checkpoint runs/conv \
//!     --archive cifar-10-binary.tar.gz --out model.onnx
//! python3 scripts/check_onnx.py model.onnx
//! ```
//!
//! Expected: `model.onnx` plus `model.input.f32` (the first `--images` test images, as the
//! loader's `ToTensor` gives them, `[n, c, h, w]` little-endian f32), `model.logits.f32`
//! (torchlet's logits for them), `model.labels.u8` and `model.json` (shapes, accuracy); the
//! script then prints `onnxruntime: ... max |Δ| ... accuracy ... same as torchlet` and exits 0.
//!
//! `--checkpoint` takes a run folder (its best checkpoint) or one checkpoint folder;
//! `--model NAME` exports a freshly initialised network instead. Without `--archive` the
//! images are pseudo-random. Burn's exporter cannot lower GELU yet, so `airbench94` fails with
//! an error naming it.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use torchlet::burn::module::Module;
use torchlet::burn::tensor::{Device, Tensor, TensorData};
use torchlet::data::Cifar10;
use torchlet::model::{ImageClassifier, Model, ModelConfig, onnx};
use torchlet::train::SavedCheckpoint;

/// Export a checkpoint (or a fresh model) to ONNX with check files for onnxruntime.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A run folder (uses its best checkpoint) or a checkpoint folder.
    #[arg(long, conflicts_with = "model")]
    checkpoint: Option<PathBuf>,
    /// A freshly initialised network instead: linear, conv, vgg11, vgg16, resnet18.
    #[arg(long)]
    model: Option<String>,
    /// CIFAR-10 archive: the check images are its first test images.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Number of check images.
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// The ONNX file to write; the check files go next to it.
    #[arg(long, default_value = "model.onnx")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = Device::flex();
    let model = load_model(&args, &device)?;
    let input = model
        .input_shape()
        .unwrap_or(torchlet::model::DEFAULT_INPUT);
    onnx::export_onnx(&model, input, &args.out)?;
    println!("wrote {} ({})", args.out.display(), model.name());

    let (pixels, labels) = check_images(&args, input)?;
    let n = labels.len();
    let [c, h, w] = input;
    let images = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [n, c, h, w]), &device);
    let logits = model.valid().forward(images);
    let classes = logits.dims()[1];
    let logits: Vec<f32> = logits
        .into_data()
        .try_into_vec()
        .map_err(|e| anyhow::anyhow!("logits are not f32: {e:?}"))?;
    let correct = labels
        .iter()
        .zip(logits.chunks(classes))
        .filter(|(label, row)| usize::from(**label) == argmax(row))
        .count();
    let accuracy = correct as f64 / n.max(1) as f64;

    write_f32(&with_ext(&args.out, "input.f32"), &pixels)?;
    write_f32(&with_ext(&args.out, "logits.f32"), &logits)?;
    std::fs::write(with_ext(&args.out, "labels.u8"), &labels)?;
    let meta = serde_json::json!({
        "input_shape": [n, c, h, w], "classes": classes, "accuracy": accuracy,
        "labelled": args.archive.is_some(),
    });
    std::fs::write(with_ext(&args.out, "json"), meta.to_string())?;
    println!(
        "{n} check images, torchlet accuracy {:.2}%",
        100.0 * accuracy
    );
    Ok(())
}

/// The checkpoint's model, or a fresh one.
fn load_model(args: &Args, device: &Device) -> Result<Model> {
    if let Some(path) = &args.checkpoint {
        let checkpoint = if path.join("state.json").is_file() {
            SavedCheckpoint::open(path)?
        } else {
            SavedCheckpoint::best(path).or_else(|_| SavedCheckpoint::latest(path))?
        };
        return Ok(checkpoint.load_model(device)?);
    }
    let Some(name) = &args.model else {
        bail!("pass --checkpoint DIR or --model NAME");
    };
    let config: ModelConfig = name.parse()?;
    Ok(config.try_init(device)?)
}

/// The check images as `ToTensor` gives them (`[n, c, h, w]`, values in [0, 1]) and labels.
fn check_images(args: &Args, [c, h, w]: [usize; 3]) -> Result<(Vec<f32>, Vec<u8>)> {
    let Some(archive) = &args.archive else {
        // xorshift32: reproducible pseudo-random images, labels unused.
        let mut s = 0x9e37_79b9u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32
        };
        let pixels = (0..args.images * c * h * w).map(|_| next()).collect();
        return Ok((pixels, vec![0; args.images]));
    };
    let cifar =
        Cifar10::open(archive).with_context(|| format!("cannot read {}", archive.display()))?;
    let test = &cifar.test;
    if test.shape().dims() != [c, h, w] {
        bail!(
            "the model takes {:?} images, the archive holds {:?}",
            [c, h, w],
            test.shape().dims()
        );
    }
    let n = args.images.min(test.len());
    let pixels = test.pixels()[..n * c * h * w]
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let labels = test.labels()[..n].iter().map(|&l| l as u8).collect();
    Ok((pixels, labels))
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

/// `model.onnx` → `model.<ext>`.
fn with_ext(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
