//! Your own network, trained like the built-in ones: the tutorial's chapters two to four for
//! a model that is not in the library.
//!
//! ```text
//! cargo run --release --example custom_model -- --archive ../shared/cifar10/cifar-10-binary.tar.gz
//! ```
//!
//! `MyNet` below is written with `torchlet::nn` (PyTorch's layer names) and trained through the
//! same `Trainer` as the built-in models — prints, TensorBoard, checkpoints, resume, Ctrl-C and
//! the final reports included. Then, as in PyTorch, a fresh `MyNet` is built, the best
//! checkpoint is loaded into it and it classifies one test image.
//!
//! Measured (one run, 2-core Intel Xeon, dev profile, Flex, `--limit 2000 --epochs 2`):
//! 21.90% test accuracy after epoch 1, 36.95% after epoch 2 (7.4 and 7.7 s per epoch, with a
//! build running alongside). The default (all 50,000 images, 5 epochs) is not recorded yet.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;

/// mimalloc keeps freed memory for reuse: with the system allocator every large tensor goes
/// back to the kernel when freed and page-faults in again at the next op (measured: bf16
/// training steps 1.4x faster with mimalloc, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result};
use clap::Parser;
use torchlet::burn::module::Module;
use torchlet::burn::tensor::{Device, Tensor};
use torchlet::data::Cifar10;
use torchlet::model::ImageClassifier;
use torchlet::model::nn::{
    BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Flatten, Linear, LinearConfig, MaxPool2d,
    MaxPool2dConfig, Padding, ReLU,
};
use torchlet::train::{
    EpochSummary, Observer, OptimizerConfig, SavedCheckpoint, TrainConfig, Trainer, classify,
    select_device,
};

/// The network: two conv → batch norm → ReLU → max-pool blocks, then a linear layer.
#[derive(Module, Debug)]
pub struct MyNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    pool: MaxPool2d,
    relu: ReLU,
    flatten: Flatten,
    fc: Linear,
}

impl MyNet {
    /// `MyNet()` for 3 × 32 × 32 images and 10 classes.
    pub fn new(device: &Device) -> Self {
        let conv = |c_in, c_out| {
            Conv2dConfig::new(c_in, c_out, [3, 3])
                .with_padding(Padding::Same)
                .init(device)
        };
        Self {
            conv1: conv(3, 32),
            bn1: BatchNorm2dConfig::new(32).init(device),
            conv2: conv(32, 64),
            bn2: BatchNorm2dConfig::new(64).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            relu: ReLU::new(),
            flatten: Flatten::new(),
            fc: LinearConfig::new(64 * 8 * 8, 10).init(device),
        }
    }
}

impl ImageClassifier for MyNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self
            .pool
            .forward(self.relu.forward(self.bn1.forward(self.conv1.forward(x)))); // [batch, 32, 16, 16]
        let x = self
            .pool
            .forward(self.relu.forward(self.bn2.forward(self.conv2.forward(x)))); // [batch, 64, 8, 8]
        self.fc.forward(self.flatten.forward(x)) // [batch, 10]
    }

    fn num_classes(&self) -> usize {
        10
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        Some([3, 32, 32])
    }
}

/// Train a network defined in this file on CIFAR-10, reload it and classify an image.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The official cifar-10-binary.tar.gz (or an extracted cifar-10-batches-bin/).
    #[arg(long)]
    archive: PathBuf,
    /// Number of epochs.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Train (and test) on the first N images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Run folder.
    #[arg(long, default_value = "runs/custom")]
    out: PathBuf,
    /// Device: auto, flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
}

/// One line per epoch.
struct Print;

impl Observer for Print {
    fn epoch(&self, summary: &EpochSummary) {
        println!("{summary}");
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cifar = Cifar10::open(&args.archive)
        .with_context(|| format!("cannot read {}", args.archive.display()))?;
    let device = select_device(args.device.parse()?)?;
    println!("Using device: {device}");

    // model = MyNet(); the usual loop, as for the built-in models.
    let config = TrainConfig {
        optimizer: OptimizerConfig::adam(1e-3),
        epochs: args.epochs,
        augment: true,
        limit: args.limit,
        log_every: 0,
        ..TrainConfig::tutorial()
    };
    let report = Trainer::new(config, &args.out)
        .device(device.clone())
        .observer(Arc::new(Print))
        .model(MyNet::new(&device.device))
        .fit(cifar.train, cifar.test.clone())?;

    // model = MyNet(); model.load_state_dict(torch.load(best)["model_state_dict"])
    let best = SavedCheckpoint::best(&args.out)?;
    let model = best.load_into(MyNet::new(&device.device))?;
    let image = cifar.test.image(0).context("the test set is empty")?;
    let truth = cifar.test.label(0).unwrap_or(0);
    let p = classify(
        &model,
        image,
        cifar.test.shape(),
        cifar.test.classes(),
        &device.device,
    )?;
    println!(
        "best checkpoint {} ({} parameters): test image 0 is a {}, predicted {} ({:.1}%)",
        best.path.display(),
        model.num_params(),
        cifar.test.classes()[truth],
        p.name,
        100.0 * p.probabilities[p.class]
    );
    if let Some(last) = report.history.last() {
        println!("final test accuracy {:.2}%", 100.0 * last.test_accuracy);
    }
    Ok(())
}
