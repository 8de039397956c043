//! The CPU speed-run: airbench94's recipe (Keller Jordan, arXiv 2404.00498) on torchlet's
//! layers, the fastest known way to a good CIFAR-10 model, on an ordinary CPU.
//!
//! ```text
//! cargo run --release --example cifar10_speedrun -- --archive ../shared/cifar10/cifar-10-binary.tar.gz
//! cargo run --release --example cifar10_speedrun -- --archive ... --epochs 2   # a short run
//! ```
//!
//! The recipe, every piece a torchlet feature any model can use:
//!
//! * `Airbench94` (`torchlet::model::zoo`) with `recipe_init`: the 2 × 2 whitening
//!   convolution from the eigenvectors of the training patches (frozen; its bias trains for
//!   the first 3 epochs) and Dirac-initialised 3 × 3 convolutions; batch norm with its scale
//!   frozen at 1, eps 1e-12, running statistics at PyTorch momentum 0.4; GELU; logits × 1/9.
//! * Data: `Normalize` with CIFAR-10's statistics, `RandomTranslate(2)` (reflect-padded) and
//!   `AlternatingHorizontalFlip` (each image mirrored every other epoch).
//! * Loss: cross-entropy with label smoothing 0.2, summed over the batch.
//! * Nesterov SGD, momentum 0.85, batch 1024; learning rate 11.5 and weight decay 0.0153 per
//!   1,024 images in airbench's decoupled units (`lr = 11.5 / (1024 · (1 + 1 / (1 − 0.85)))`,
//!   `wd = 0.0153 · 1024 / (same)`, applied as `lr · wd_torch = wd`); batch norm biases at
//!   64 × the learning rate (Burn's `ModuleOptimizer::with_group`); the triangular schedule
//!   (0.2× → 1× at 23% of the steps → 0.07×); lookahead: every 5 steps the weights are reset
//!   to an EMA of themselves (decay `0.95⁵ · (step / total)³`), the EMA at the end.
//! * 9.9 epochs (484 steps); the test accuracy after each epoch, then with 6-view test-time
//!   augmentation (mirror and one-pixel shifts).
//!
//! One line per epoch, then the final accuracy with and without TTA, and the training time
//! (evaluation excluded). The recorded run (seed 0, 2 threads, a 2-core AMD EPYC with
//! AVX-512) ends with:
//!
//! ```text
//! epoch 10/10  train loss 0.9895  test accuracy 90.00%  training time 2382.9 s
//! final: 90.00% (90.76% with 6-view TTA, 93.1 s), training 2382.9 s for 484 steps
//! ```
//!
//! `--results FILE` writes them as JSON. Measured figures, next to PyTorch's, are in
//! `docs/results.md`; `benches/airbench_cpu.py` is the same recipe in PyTorch for the
//! side-by-side (`benches/speedrun_compare.sh` runs both).
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

/// mimalloc keeps freed memory for reuse: with the system allocator every large tensor goes
/// back to the kernel when freed and page-faults in again at the next op (measured: bf16
/// training steps 1.4x faster with mimalloc, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use torchlet::burn::module::{Module, ParamGroup};
use torchlet::burn::nn::loss::CrossEntropyLossConfig;
use torchlet::burn::optim::SgdConfig;
use torchlet::burn::optim::decay::WeightDecayConfig;
use torchlet::burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use torchlet::burn::optim::momentum::MomentumConfig;
use torchlet::burn::optim::{GradientsParams, ModuleOptimizer};
use torchlet::data::transform::{Compose, Transform};
use torchlet::data::{Cifar10, DataLoader, Split};
use torchlet::model::zoo::{Airbench94, Airbench94Config};
use torchlet::train::lookahead::airbench_decay;
use torchlet::train::optim::TriangleLr;
use torchlet::train::{Frozen, Lookahead, Tta, evaluate_tta, param_paths, select_device};

/// airbench94 on the CPU: CIFAR-10 to ~90% in one sitting.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The official cifar-10-binary.tar.gz (or an extracted cifar-10-batches-bin/).
    #[arg(long)]
    archive: PathBuf,
    /// Epochs (fractions allowed: 9.9 is airbench94's); fewer trade accuracy for time.
    #[arg(long, default_value_t = 9.9)]
    epochs: f64,
    /// Images per step.
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    /// Channels of the three blocks (airbench94: 64,256,256); narrower is faster.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 256, 256])]
    widths: Vec<usize>,
    /// Seed of the weights, the shuffle and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train and test on the first N images only (a smoke run).
    #[arg(long)]
    limit: Option<usize>,
    /// Device: auto, flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Precision of the CPU convolutions' products: f32, or bf16 (like PyTorch's bf16
    /// autocast; used where the CPU has AVX512-BF16, f32 elsewhere)
    #[arg(long, default_value = "f32")]
    precision: torchlet::model::Precision,
    /// Use Burn's own convolutions instead of torchlet's CPU kernels (for comparison).
    #[arg(long)]
    burn_kernels: bool,
    /// Write the per-epoch figures and the result as JSON here.
    #[arg(long)]
    results: Option<PathBuf>,
}

/// airbench94's hyper-parameters, in its own (decoupled, per-1024-images) units.
const LR: f64 = 11.5;
const MOMENTUM: f64 = 0.85;
const WEIGHT_DECAY: f64 = 0.0153;
const BIAS_SCALER: f64 = 64.0;
const LABEL_SMOOTHING: f32 = 0.2;
const WHITEN_BIAS_EPOCHS: usize = 3;
const LOOKAHEAD_EVERY: usize = 5;
const WHITEN_IMAGES: usize = 5000;

fn sgd(weight_decay: f64) -> SgdConfig {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: MOMENTUM,
            dampening: 0.0,
            nesterov: true,
        }))
        .with_weight_decay(Some(WeightDecayConfig {
            penalty: weight_decay as f32,
        }))
}

fn triangle(lr: f64, total: usize) -> TriangleLr {
    TriangleLr {
        lr,
        total: total as u64,
        start: 0.2,
        peak: 0.23,
        end: 0.07,
        step: 0,
    }
}

/// One epoch's line.
#[derive(serde::Serialize)]
struct EpochLine {
    epoch: usize,
    train_loss: f64,
    test_accuracy: f64,
    train_seconds: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(args.epochs > 0.0 && args.epochs.is_finite()) {
        bail!("--epochs must be a positive number, got {}", args.epochs);
    }
    let widths: [usize; 3] = args
        .widths
        .clone()
        .try_into()
        .map_err(|w| anyhow::anyhow!("--widths takes three numbers, got {w:?}"))?;
    if args.burn_kernels {
        torchlet::model::cpu::set_layer_kernels(torchlet::model::CpuKernels::Burn);
    }
    let cifar = Cifar10::open(&args.archive)
        .with_context(|| format!("cannot read {}", args.archive.display()))?;
    let selected = select_device(args.device.parse()?)?;
    torchlet::model::set_precision(args.precision);
    println!(
        "Using device: {selected}, precision {}",
        torchlet::model::cpu::kernels::describe(args.precision)
    );
    let device = selected.device.clone();
    let train_device = device.clone().autodiff();
    device.seed(args.seed);
    train_device.seed(args.seed);

    let normalize = Transform::normalize_cifar10();
    let train_data = cifar.split(Split::Train).clone();
    let test_data = cifar.split(Split::Test).clone();
    let limit = |n: usize| args.limit.map_or(n, |l| l.min(n));
    let (n_train, n_test) = (limit(train_data.len()), limit(test_data.len()));
    let train = DataLoader::builder(train_data.clone())
        .batch_size(args.batch_size)
        .shuffle(true)
        .seed(args.seed)
        .num_workers(1)
        .limit(n_train)
        .transform(Compose::new(vec![
            Transform::random_translate(2),
            Transform::AlternatingHorizontalFlip,
            Transform::ToTensor,
            normalize.clone(),
        ])?)
        .device(&train_device)
        .build()?;
    let plain = Compose::new(vec![Transform::ToTensor, normalize])?;
    let test = DataLoader::builder(test_data)
        .batch_size(1000)
        .limit(n_test)
        .transform(plain.clone())
        .device(&device)
        .build()?;
    // The whitening filters come from the first 5,000 training images, unaugmented.
    let whiten_images = DataLoader::builder(train_data)
        .batch_size(WHITEN_IMAGES.min(n_train))
        .limit(WHITEN_IMAGES.min(n_train))
        .transform(plain)
        .device(&train_device)
        .build()?
        .iter()
        .next()
        .context("no training images")?
        .images;

    let started = Instant::now();
    let config = Airbench94Config::new().with_widths(widths);
    let mut model: Airbench94 = config.try_init(&train_device)?.recipe_init(whiten_images)?;
    let init_seconds = started.elapsed().as_secs_f64();

    // Parameter groups: batch-norm biases at 64x the learning rate; whitening weight and
    // batch-norm scales frozen; the whitening bias frozen after 3 epochs.
    let paths = param_paths(&model);
    let is_norm_bias = |p: &str| p.contains(".norm") && p.ends_with(".beta");
    let bias_ids = paths
        .iter()
        .filter(|(p, _)| is_norm_bias(p))
        .map(|(_, id)| *id)
        .collect::<Vec<_>>();
    if bias_ids.is_empty() {
        bail!(
            "no batch-norm biases found among {} parameters",
            paths.len()
        );
    }
    let mut frozen = Frozen::by_path(&model, |p| p == "whiten.weight" || p.ends_with(".gamma"));
    let steps_per_epoch = train.len();
    let total_steps = (args.epochs * n_train as f64 / args.batch_size as f64).ceil() as usize;
    let epochs = total_steps.div_ceil(steps_per_epoch.max(1));
    let kilostep_scale = 1024.0 * (1.0 + 1.0 / (1.0 - MOMENTUM));
    let lr = LR / kilostep_scale;
    let wd = WEIGHT_DECAY * args.batch_size as f64 / kilostep_scale;
    let lr_bias = lr * BIAS_SCALER;
    let bias_group = ParamGroup::from_ids(bias_ids);
    let mut optim: ModuleOptimizer =
        sgd(wd / lr)
            .init()
            .with_group(bias_group.clone(), sgd(wd / lr_bias).build(), None);
    let mut schedule = ModuleLrScheduler::new(triangle(lr, total_steps))
        .with_group(bias_group, triangle(lr_bias, total_steps));
    let mut lookahead = Lookahead::new(&model);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing(Some(LABEL_SMOOTHING))
        .init(&train_device);
    println!(
        "airbench94 {widths:?}: {total_steps} steps of {} images ({:.2} epochs of {n_train}), \
         {} trainable tensors, frozen: {}",
        args.batch_size,
        total_steps as f64 * args.batch_size as f64 / n_train as f64,
        frozen.trainable().len(),
        frozen.frozen().join(", ")
    );

    let mut step = 0usize;
    let mut train_seconds = init_seconds;
    let mut lines = Vec::new();
    for epoch in 0..epochs {
        if epoch == WHITEN_BIAS_EPOCHS {
            frozen.freeze(|p| p == "whiten.bias");
        }
        let start = Instant::now();
        let (mut loss_sum, mut batches_done) = (0.0f64, 0usize);
        let mut batches = train.iter_epoch(epoch as u64);
        while let Some(batch) = batches.try_next() {
            let batch = batch?;
            let n = batch.targets.dims()[0];
            // loss = loss_fn(model(inputs), labels).sum()
            let logits = model.forward(batch.images);
            let loss = loss_fn.forward(logits, batch.targets).mul_scalar(n as f64);
            loss_sum += loss.clone().into_scalar::<f64>() / n as f64;
            batches_done += 1;
            let grads: GradientsParams = frozen.gradients(loss.backward(), &model);
            model = optim.step(schedule.step(), model, grads);
            step += 1;
            if step.is_multiple_of(LOOKAHEAD_EVERY) {
                model = lookahead.update(model, airbench_decay(step, total_steps));
            }
            if step >= total_steps {
                break;
            }
        }
        if step >= total_steps {
            model = lookahead.update(model, 1.0);
        }
        train_seconds += start.elapsed().as_secs_f64();
        let (_, accuracy) = evaluate_tta(&model.valid(), &test, Tta::None)?;
        let line = EpochLine {
            epoch: epoch + 1,
            train_loss: loss_sum / batches_done.max(1) as f64,
            test_accuracy: accuracy,
            train_seconds,
        };
        println!(
            "epoch {:>2}/{epochs}  train loss {:.4}  test accuracy {:.2}%  training time {:.1} s",
            line.epoch,
            line.train_loss,
            100.0 * line.test_accuracy,
            line.train_seconds
        );
        lines.push(line);
        if step >= total_steps {
            break;
        }
    }
    let eval_start = Instant::now();
    let (_, tta_accuracy) = evaluate_tta(&model.valid(), &test, Tta::MirrorTranslate)?;
    let tta_seconds = eval_start.elapsed().as_secs_f64();
    let plain_accuracy = lines.last().map_or(0.0, |l| l.test_accuracy);
    println!(
        "final: {:.2}% ({:.2}% with 6-view TTA, {tta_seconds:.1} s), training {train_seconds:.1} s \
         for {step} steps",
        100.0 * plain_accuracy,
        100.0 * tta_accuracy
    );
    if let Some(path) = &args.results {
        let json = serde_json::json!({
            "recipe": "airbench94", "widths": widths, "epochs": args.epochs, "seed": args.seed,
            "steps": step, "train_seconds": train_seconds, "tta_seconds": tta_seconds,
            "accuracy": plain_accuracy, "tta_accuracy": tta_accuracy, "history": lines,
            "device": selected.description,
            "precision": torchlet::model::cpu::kernels::describe(args.precision),
        });
        // A temporary name, then a rename: an interrupted run never leaves half a file.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    }
    Ok(())
}
