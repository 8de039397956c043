//! Classify images with a trained checkpoint: the class and every class's probability.
//!
//! ```text
//! cargo run --release --example predict -- --checkpoint runs/tutorial cat.png ship.jpg
//! ```
//!
//! `--checkpoint` takes a run folder (its best checkpoint by test accuracy is used) or one
//! checkpoint folder (`runs/tutorial/checkpoints/epoch-0020`). Images of any size are resized
//! to the size the model was trained on (32×32 for CIFAR-10; grayscale for one-channel models).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use torchlet::data::ImageShape;
use torchlet::model::ImageClassifier;
use torchlet::train::{SavedCheckpoint, classify, load_image, select_device};

/// Classify PNG/JPEG images with a checkpoint written by the cifar10_train example.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A run folder (uses its best checkpoint) or a checkpoint folder.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Device: auto, flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
    /// The images (PNG or JPEG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let checkpoint = if args.checkpoint.join("state.json").is_file() {
        SavedCheckpoint::open(&args.checkpoint)?
    } else {
        SavedCheckpoint::best(&args.checkpoint)
            .or_else(|_| SavedCheckpoint::latest(&args.checkpoint))?
    };
    let device = select_device(args.device.parse()?)?;
    let model = checkpoint.load_model(&device.device)?;
    let classes = &checkpoint.state.class_names;
    let [channels, height, width] = model.input_shape().unwrap_or(ImageShape::CIFAR.dims());
    let shape = ImageShape {
        channels,
        height,
        width,
    };
    println!(
        "checkpoint {} (epoch {}, test accuracy {}) on {device}",
        checkpoint.path.display(),
        checkpoint.state.epoch,
        checkpoint
            .state
            .test_accuracy
            .map_or("unknown".to_string(), |a| format!("{:.2}%", 100.0 * a))
    );
    for path in &args.images {
        let image =
            load_image(path, shape).with_context(|| format!("cannot read {}", path.display()))?;
        let prediction = classify(&model, &image, shape, classes, &device.device)?;
        println!(
            "{}: {} ({:.1}%)",
            path.display(),
            prediction.name,
            100.0 * prediction.probabilities[prediction.class]
        );
        let mut ranked: Vec<(usize, f32)> = prediction
            .probabilities
            .iter()
            .copied()
            .enumerate()
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (class, p) in ranked {
            let name = classes.get(class).map_or("?", String::as_str);
            println!("  {name:>10} {:6.2}%", 100.0 * p);
        }
    }
    Ok(())
}
