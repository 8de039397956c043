//! Train the PyTorch CIFAR-10 tutorial's network on Burn, chapters three to six in one file.
//!
//! ```text
//! cargo run --release --example cifar10_train
//! ```
//!
//! Like the tutorial's `download=True`, CIFAR-10 is fetched (170 MB, checksum verified) into
//! `--data-dir` (default `data/`) when it is not there; `--archive FILE` reads a copy you have
//! (offline), `--no-download` makes a missing archive an error instead.
//!
//! Defaults are the tutorial's: `SeedConvNet` (`MyConvModel`), `CrossEntropyLoss`,
//! `SGD(lr=0.01)`, batch 64, 20 epochs, `ToTensor()` only. Each epoch prints one line with the
//! training loss (sum and mean), the test loss and accuracy, the time and images/s; every
//! `--log-every` steps a `step, loss, elapsed` line. On a terminal a progress bar shows the
//! pass's steps, loss, images/s and time left. For scripts: `--quiet` prints nothing but
//! errors, `--json` one JSON object per epoch on stdout (the rest goes to stderr).
//!
//! Expected accuracy: **64.47%** on the test set after 20 epochs, in 498.5 s of training on a
//! 2-core Intel Xeon (the tutorial's PyTorch code: 64.53% in 773.1 s on the same machine; later
//! re-runs 6–8 minutes, see docs/results.md). The tutorial's plain `SGD(lr=0.01)` learns slowly
//! at first: about 26% after one epoch, 50% after six.
//!
//! Quick check (a 2,000-image subset, two epochs, about 45 s unoptimised):
//!
//! ```text
//! cargo run --release --example cifar10_train -- --archive cifar-10-binary.tar.gz --limit 2000 --epochs 2 --out runs/quick
//! ```
//!
//! The run folder (`--out`) receives `config.json`, TensorBoard event files
//! (`tensorboard --logdir runs`), `metrics.csv`, `loss.svg`, `accuracy.svg`, checkpoints
//! after every epoch in `checkpoints/`, and, at the end, the confusion matrix, per-class
//! accuracy and `samples.png`. Ctrl-C finishes the current step, writes a checkpoint and
//! exits with status 130 (a second Ctrl-C quits at once); `--resume runs/tutorial` continues
//! from the newest checkpoint.
//!
//! Other networks and your own images: `--model vgg11|vgg16|resnet18|airbench94|linear`, and
//! `--image-folder DIR` trains on `DIR/train/<class>/*` and `DIR/test/<class>/*` (PNG/JPEG,
//! any size; grayscale folders load as one channel), the model's input fitted to the images:
//!
//! ```text
//! cargo run --release --example cifar10_train -- --image-folder my_images --model resnet18 --epochs 5
//! ```
//!
//! With `--features onnx`, `--export-onnx` writes the final model as `model.onnx` into the run
//! folder (checked in onnxruntime by `examples/export_onnx.rs` and `scripts/check_onnx.py`).
//!
//! Several GPUs of one machine, data-parallel (PyTorch's `DistributedDataParallel`):
//! `--devices wgpu:0,wgpu:1`; `--devices flex,flex` runs the same code path on a CPU.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// mimalloc keeps freed memory for reuse: with the system allocator every large tensor goes
/// back to the kernel when freed and page-faults in again at the next op (measured: bf16
/// training steps 1.4x faster with mimalloc, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use torchlet::data::{Cifar10, Download, load_image_folder};
use torchlet::model::{CpuKernels, ModelConfig};
use torchlet::train::{
    EpochSummary, LrSchedule, Observer, OptimizerConfig, Phase, Progress, RunStart,
    SavedCheckpoint, StepLog, TrainConfig, Trainer, parse_device_list, select_device,
    select_devices,
};

/// Train the PyTorch CIFAR-10 tutorial's network on Burn.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Model: conv (the tutorial's MyConvModel), linear (per-image flatten + Linear), vgg11,
    /// vgg16, resnet18 or airbench94; each is fitted to the images' shape and classes.
    #[arg(long)]
    model: Option<String>,
    /// Number of epochs (the tutorial: 20). With --resume: the new total.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per batch (the tutorial: 64).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate (the tutorial: 0.01; the peak for --schedule one-cycle).
    #[arg(long)]
    lr: Option<f64>,
    /// Optimizer: sgd (the tutorial), sgd-momentum (0.9), adam or adamw.
    #[arg(long)]
    optimizer: Option<String>,
    /// SGD momentum (PyTorch's dampening 0).
    #[arg(long)]
    momentum: Option<f64>,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    nesterov: bool,
    /// Learning-rate schedule: constant (the tutorial), step, cosine or one-cycle.
    #[arg(long)]
    schedule: Option<String>,
    /// Random crop (padding 4) and horizontal flip on the training images.
    #[arg(long)]
    augment: bool,
    /// Train on the first N training images (and test on the first N test images).
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the weights, the shuffle and the augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// Folder holding cifar-10-binary.tar.gz or cifar-10-batches-bin/ (and where --download puts it).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// The official cifar-10-binary.tar.gz (or an extracted cifar-10-batches-bin/).
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Train on your own images instead of CIFAR-10: DIR/train/<class>/* and DIR/test/<class>/*
    /// (PNG or JPEG, all of one size; grayscale folders load as one channel).
    #[arg(long, value_name = "DIR")]
    image_folder: Option<PathBuf>,
    /// Do not download CIFAR-10 when it is not in --data-dir: stop with an error instead
    /// (by default it is fetched, 170 MB, checksum verified, as the tutorial's download=True).
    #[arg(long, conflicts_with = "download")]
    no_download: bool,
    /// Download CIFAR-10 into --data-dir when it is not there (the default).
    #[arg(long)]
    download: bool,
    /// Where to download cifar-10-binary.tar.gz from: a mirror (the official size and md5
    /// are still checked).
    #[arg(long, value_name = "URL", default_value = torchlet::data::download::CIFAR10_URL)]
    download_url: String,
    /// Print nothing but errors: no progress bar, no step or epoch lines.
    #[arg(long, conflicts_with = "json")]
    quiet: bool,
    /// One JSON object per epoch on stdout (the numbers of metrics.csv); everything else on
    /// stderr, no progress bar.
    #[arg(long)]
    json: bool,
    /// Run folder (default: runs/<model>, or the folder given to --resume).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Device: auto (a GPU when one works, else the CPU), flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Train data-parallel on several devices, e.g. wgpu:0,wgpu:1 (or flex,flex to try it on
    /// a CPU): every batch is split over them, each step the same as on one device.
    #[arg(long, value_name = "LIST", conflicts_with = "device")]
    devices: Option<String>,
    /// Continue a run from its newest checkpoint (a run folder or a checkpoint folder).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Print the loss every N steps (the tutorial: 100); 0 turns it off.
    #[arg(long)]
    log_every: Option<usize>,
    /// Background threads preparing batches.
    #[arg(long)]
    workers: Option<usize>,
    /// Number of recent checkpoints kept (the best one is kept as well).
    #[arg(long)]
    keep_last: Option<usize>,
    /// Run every convolution on Burn's own conv2d instead of torchlet's CPU kernels (for
    /// comparison: same results within float rounding, slower on Flex).
    #[arg(long)]
    burn_kernels: bool,
    /// Precision of the CPU convolutions' products: f32, or bf16 (like PyTorch's bf16
    /// autocast; used where the CPU has AVX512-BF16, f32 elsewhere).
    #[arg(long)]
    precision: Option<torchlet::model::Precision>,
    /// At the end, write the final model as ONNX to RUN/model.onnx (needs the `onnx`
    /// feature; check it in onnxruntime with examples/export_onnx.rs).
    #[arg(long)]
    export_onnx: bool,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let printer = Arc::new(Printer::new(Output::of(&args)));

    // The data first: without it there is nothing to do, and the message says what to pass.
    let data_path = match &args.image_folder {
        Some(_) => None,
        None => locate_data(&args)?,
    };

    // The configuration: the checkpoint's when resuming, the tutorial's otherwise, then the flags.
    let resumed = args
        .resume
        .as_deref()
        .map(SavedCheckpoint::find)
        .transpose()
        .context("cannot resume")?;
    let mut config = match &resumed {
        Some(c) => c.state.config.clone(),
        None => TrainConfig::tutorial(),
    };
    apply_flags(&args, &mut config)?;
    if args.export_onnx && !cfg!(feature = "onnx") {
        bail!("--export-onnx needs the onnx feature: cargo run --release --features onnx ...");
    }
    let out = match (&args.out, &args.resume) {
        (Some(out), _) => out.clone(),
        (None, Some(resume)) => run_folder_of(resume),
        (None, None) => PathBuf::from("runs").join(config.model.kind().name()),
    };

    let devices = match &args.devices {
        Some(list) => select_devices(&parse_device_list(list)?)?,
        None => vec![select_device(args.device.parse()?)?],
    };
    let names: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
    printer.line(&format!("Using device: {}", names.join(", ")));

    let (train, test) = if let Some(dir) = &args.image_folder {
        let load = |split: &str| {
            let path = dir.join(split);
            load_image_folder(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let (train, test) = (load("train")?, load("test")?);
        printer.line(&format!(
            "image folder {}: {} training and {} test images of {:?}, classes {:?}",
            dir.display(),
            train.len(),
            test.len(),
            train.shape().dims(),
            train.classes()
        ));
        (train, test)
    } else if data_path.is_none() {
        printer.line(&format!(
            "CIFAR-10 is not in {}: downloading it (170 MB; --archive FILE to use a copy you have) ...",
            args.data_dir.display()
        ));
        let archive = Download::cifar10()
            .with_url(&args.download_url)
            .fetch(&args.data_dir)
            .with_context(|| format!("cannot download CIFAR-10 from {}", args.download_url))?;
        let cifar = Cifar10::open(&archive)
            .with_context(|| format!("cannot read {}", archive.display()))?;
        (cifar.train, cifar.test)
    } else {
        let path = data_path.context("no CIFAR-10 data")?;
        let cifar =
            Cifar10::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        (cifar.train, cifar.test)
    };

    let mut trainer = Trainer::new(config, &out)
        .devices(devices)
        .observer(printer.clone());
    if let Some(resume) = &args.resume {
        trainer = trainer.resume_from(resume);
    }
    let stop = trainer.stop_handle();
    let presses = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if presses.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!(
                "\nCtrl-C: finishing this step and writing a checkpoint (press again to quit now)"
            );
            stop.stop();
        } else {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;

    let started = std::time::Instant::now();
    let report = trainer.fit(train, test);
    printer.finish();
    let report = report?;
    let wall = started.elapsed().as_secs_f64();

    let say = |text: String| printer.line(&text);
    match peak_memory_mib() {
        Some(mib) => say(format!(
            "training took {wall:.1} s; peak memory (RSS) {mib:.1} MiB"
        )),
        None => say(format!("training took {wall:.1} s")),
    }
    if let Some(last) = &report.last_checkpoint {
        say(format!("last checkpoint: {}", last.display()));
    }
    if let Some(best) = &report.best_checkpoint {
        say(format!("best checkpoint: {}", best.display()));
    }
    if report.stopped_early {
        say(format!(
            "stopped early; continue with: cargo run --release --example cifar10_train -- --resume {}",
            out.display()
        ));
        // The shell's code for "interrupted by Ctrl-C" (128 + SIGINT), after the checkpoint.
        std::process::exit(130);
    }
    if args.export_onnx {
        let last = report
            .last_checkpoint
            .as_ref()
            .context("no checkpoint to export")?;
        say(format!(
            "ONNX model: {}",
            export_onnx(last, &out)?.display()
        ));
    }
    if let Some(matrix) = &report.confusion {
        say("per-class test accuracy of the final model:".into());
        for (name, acc) in matrix.class_names().iter().zip(matrix.per_class_accuracy()) {
            say(format!("  {name:>10}: {:5.1}%", 100.0 * acc));
        }
        say(format!(
            "run folder: {} (tensorboard --logdir {})",
            out.display(),
            out.display()
        ));
    }
    Ok(())
}

/// Writes the model of checkpoint `last` to `out/model.onnx`.
#[cfg(feature = "onnx")]
fn export_onnx(last: &Path, out: &Path) -> Result<PathBuf> {
    use torchlet::model::ImageClassifier;
    let model = SavedCheckpoint::open(last)?.load_model(&torchlet::burn::tensor::Device::flex())?;
    let input = model
        .input_shape()
        .unwrap_or(torchlet::model::DEFAULT_INPUT);
    let path = out.join("model.onnx");
    torchlet::model::onnx::export_onnx(&model, input, &path)?;
    Ok(path)
}

#[cfg(not(feature = "onnx"))]
fn export_onnx(_last: &Path, _out: &Path) -> Result<PathBuf> {
    bail!("--export-onnx needs the onnx feature")
}

/// The process's peak resident memory (`VmHWM` in /proc/self/status), where the OS reports it.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Finds the data without reading it; `None` means "download it" (unless --no-download).
fn locate_data(args: &Args) -> Result<Option<PathBuf>> {
    if let Some(archive) = &args.archive {
        if !archive.exists() {
            bail!("--archive {}: no such file or folder", archive.display());
        }
        return Ok(Some(archive.clone()));
    }
    let dir = &args.data_dir;
    for candidate in [
        dir.join("cifar-10-binary.tar.gz"),
        dir.join("cifar-10-batches-bin"),
    ] {
        if candidate.exists() {
            return Ok(Some(candidate));
        }
    }
    if !args.no_download {
        return Ok(None);
    }
    bail!(
        "CIFAR-10 not found (and --no-download): looked for {}/cifar-10-binary.tar.gz and \
         {}/cifar-10-batches-bin/.\n\
         Pass one of:\n  \
         --archive /path/to/cifar-10-binary.tar.gz   (the official binary archive)\n  \
         --data-dir DIR                              (a folder holding it)\n  \
         or drop --no-download to fetch it (170 MB) into {}",
        dir.display(),
        dir.display(),
        dir.display()
    )
}

/// The run folder of a `--resume` path (a run folder, or a checkpoint folder inside one).
fn run_folder_of(resume: &Path) -> PathBuf {
    if resume.join("state.json").is_file()
        && let Some(run) = resume.parent().and_then(Path::parent)
    {
        return run.to_path_buf();
    }
    resume.to_path_buf()
}

fn apply_flags(args: &Args, config: &mut TrainConfig) -> Result<()> {
    if let Some(model) = &args.model {
        let wanted: ModelConfig = model.parse()?;
        if wanted.kind() != config.model.kind() {
            config.model = wanted;
        }
    }
    if let ModelConfig::Conv(conv) = &mut config.model {
        conv.cpu_kernels = args.burn_kernels.then_some(CpuKernels::Burn);
    }
    if args.burn_kernels {
        // The layers of `torchlet::nn` (the model zoo, your own networks) too.
        torchlet::model::cpu::set_layer_kernels(CpuKernels::Burn);
    }
    if let Some(name) = &args.optimizer {
        let lr = config.optimizer.lr();
        config.optimizer = name.parse::<OptimizerConfig>()?.with_lr(lr);
    }
    if let Some(lr) = args.lr {
        config.optimizer = config.optimizer.clone().with_lr(lr);
    }
    if args.momentum.is_some() || args.nesterov || args.weight_decay.is_some() {
        match &mut config.optimizer {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                nesterov,
                ..
            } => {
                if let Some(m) = args.momentum {
                    *momentum = m;
                }
                if let Some(wd) = args.weight_decay {
                    *weight_decay = wd;
                }
                *nesterov |= args.nesterov;
            }
            OptimizerConfig::Adam { weight_decay, .. }
            | OptimizerConfig::Adamw { weight_decay, .. } => {
                if args.momentum.is_some() || args.nesterov {
                    bail!("--momentum and --nesterov apply to SGD only");
                }
                if let Some(wd) = args.weight_decay {
                    *weight_decay = wd;
                }
            }
        }
    }
    if let Some(schedule) = &args.schedule {
        config.schedule = schedule.parse::<LrSchedule>()?;
    }
    if let Some(epochs) = args.epochs {
        config.epochs = epochs;
    }
    if let Some(batch_size) = args.batch_size {
        config.batch_size = batch_size;
    }
    if args.augment {
        config.augment = true;
    }
    if args.limit.is_some() {
        config.limit = args.limit;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(n) = args.log_every {
        config.log_every = n;
    }
    if let Some(n) = args.workers {
        config.num_workers = n;
    }
    if let Some(n) = args.keep_last {
        config.keep_last = n;
    }
    if let Some(p) = args.precision {
        config.precision = p;
    }
    Ok(())
}

/// Where the run's lines go: `--quiet`, `--json` or the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    /// Lines on stdout, a progress bar on stderr when it is a terminal.
    Human,
    /// Nothing but errors.
    Quiet,
    /// One JSON object per epoch on stdout, the other lines on stderr.
    Json,
}

impl Output {
    fn of(args: &Args) -> Self {
        if args.quiet {
            Output::Quiet
        } else if args.json {
            Output::Json
        } else {
            Output::Human
        }
    }
}

/// Prints the run's events as `Output` says, with a progress bar (`indicatif`) on stderr when
/// it is a terminal.
struct Printer {
    output: Output,
    /// The bar, when one is drawn.
    bar: Option<ProgressBar>,
    /// The pass the bar shows: (epoch, phase).
    pass: Mutex<Option<(usize, Phase)>>,
    /// Training and test images, for the images per step of a pass.
    images: Mutex<[usize; 2]>,
}

impl Printer {
    fn new(output: Output) -> Self {
        let terminal = output == Output::Human && std::io::stderr().is_terminal();
        Self {
            output,
            bar: terminal
                .then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())),
            pass: Mutex::new(None),
            images: Mutex::new([0, 0]),
        }
    }

    /// Prints a human line where the output mode puts them, hiding the bar while it does.
    fn line(&self, text: &str) {
        match self.output {
            Output::Quiet => {}
            Output::Json => eprintln!("{text}"),
            Output::Human => match &self.bar {
                Some(bar) => bar.suspend(|| println!("{text}")),
                None => println!("{text}"),
            },
        }
    }

    /// Clears the bar at the end of the run.
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Images per step of the pass `p` belongs to.
    fn images_per_step(&self, p: &Progress) -> f64 {
        let images = self.images.lock().map_or(0, |n| match p.phase {
            Phase::Train => n[0],
            Phase::Test => n[1],
        });
        images as f64 / p.total.max(1) as f64
    }

    /// Restarts the bar for a new pass: its length, label and images/s per step.
    fn start_pass(&self, bar: &ProgressBar, p: &Progress) {
        let per_step = self.images_per_step(p);
        let phase = match p.phase {
            Phase::Train => "train",
            Phase::Test => "test ",
        };
        let template = "{prefix} [{bar:30}] {pos}/{len} {msg}, {img_s} img/s, {eta} left";
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
            .with_key(
                "img_s",
                move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let rate = state.per_sec() * per_step;
                    let _ = std::fmt::Write::write_fmt(w, format_args!("{rate:.0}"));
                },
            );
        bar.set_style(style);
        bar.set_length(p.total as u64);
        bar.reset();
        bar.set_prefix(format!("epoch {}/{} {phase}", p.epoch, p.epochs));
    }
}

/// An epoch's summary as one line of JSON with numbers as JSON numbers (the checkpoint files
/// store them as exact strings; a value that is not finite stays a string, e.g. `"NaN"`).
fn epoch_json(summary: &EpochSummary) -> serde_json::Result<String> {
    let mut value = serde_json::to_value(summary)?;
    if let Some(fields) = value.as_object_mut() {
        for field in fields.values_mut() {
            let number = field
                .as_str()
                .and_then(|text| text.parse::<f64>().ok())
                .and_then(serde_json::Number::from_f64);
            if let Some(number) = number {
                *field = serde_json::Value::Number(number);
            }
        }
    }
    serde_json::to_string(&value)
}

impl Observer for Printer {
    fn run_started(&self, start: &RunStart) {
        if let Ok(mut images) = self.images.lock() {
            *images = [start.train_images, start.test_images];
        }
        self.line(&format!(
            "model {} ({} parameters), {} training / {} test images, {} steps per epoch, epochs {}..={}, run folder {}",
            start.model,
            start.num_params,
            start.train_images,
            start.test_images,
            start.steps_per_epoch,
            start.first_epoch,
            start.epochs,
            start.out_dir.display()
        ));
        if let Some(from) = &start.resumed_from {
            self.line(&format!("resuming from {}", from.display()));
        }
    }

    fn progress(&self, p: &Progress) {
        let Some(bar) = &self.bar else { return };
        if let Ok(mut pass) = self.pass.lock()
            && *pass != Some((p.epoch, p.phase))
        {
            *pass = Some((p.epoch, p.phase));
            self.start_pass(bar, p);
        }
        bar.set_position(p.done as u64);
        bar.set_message(format!("loss {:.4}", p.mean_loss));
    }

    fn step(&self, step: &StepLog) {
        self.line(&step.to_string());
    }

    fn epoch(&self, summary: &EpochSummary) {
        match self.output {
            Output::Json => match epoch_json(summary) {
                Ok(json) => println!("{json}"),
                Err(e) => eprintln!("cannot write epoch {} as JSON: {e}", summary.epoch),
            },
            _ => self.line(&summary.to_string()),
        }
    }

    fn message(&self, text: &str) {
        self.line(text);
    }
}
