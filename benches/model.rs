//! Model speed on the CPU: `SeedConvNet` inference (batch 1000 and 64) and one training step
//! (forward + CrossEntropy + backward + SGD, batch 64), and `LinearBaseline`'s training step,
//! in images/s, on Flex (and NdArray when built with `--features ndarray`).
//!
//! ```text
//! cargo bench --bench model [--features ndarray] [-- <text>... | !<text>...]
//! python3 benches/pytorch_model.py          # the same with PyTorch, same machine and threads
//! ```
//!
//! The model zoo's training steps run in f32 and, where the CPU has AVX512-BF16, also with
//! bf16 products (`flex bf16: ...` rows; PyTorch's counterpart is its bf16 autocast).
//!
//! Under `cargo test --benches` each case runs once as a smoke test.
#![allow(clippy::print_stdout)]

use std::time::Instant;

/// As in the examples: mimalloc reuses freed memory instead of returning each large tensor
/// to the kernel (bf16 training steps 1.4x faster than with the system allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use torchlet::burn::module::Module;
use torchlet::burn::nn::loss::CrossEntropyLossConfig;
use torchlet::burn::optim::{GradientsParams, SgdConfig};
use torchlet::burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use torchlet::model::zoo::{Airbench94Config, Resnet18Config, Vgg11Config};
use torchlet::model::{
    CpuKernels, LinearBaselineConfig, Model, ModelConfig, Precision, SeedConvNetConfig, cpu,
};

/// Runs `f` `iters` times after `warmup` runs; returns (best, median) seconds per call.
fn time(warmup: usize, iters: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..warmup {
        f();
    }
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    if std::env::var_os("TORCHLET_BENCH_TRACE").is_some() {
        let ms: Vec<String> = t.iter().map(|s| format!("{:.1}", s * 1e3)).collect();
        println!("  ms per iteration, in order: {}", ms.join(" "));
    }
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

fn batch(n: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let images = Tensor::<4>::random([n, 3, 32, 32], Distribution::Uniform(0.0, 1.0), device);
    let targets: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), device);
    (images, targets)
}

fn inference(config: &ModelConfig, device: &Device, n: usize, iters: usize) -> (f64, f64) {
    let model = config.init(device);
    let (images, _) = batch(n, device);
    time(1, iters, || {
        let logits = model.forward(images.clone());
        let _ = logits.into_data(); // wait for the result
    })
}

fn train_step(config: &ModelConfig, device: &Device, n: usize, iters: usize) -> (f64, f64) {
    let device = device.clone().autodiff();
    let mut model: Option<Model> = Some(config.init(&device));
    let mut optim = SgdConfig::new().init();
    let (images, targets) = batch(n, &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    time(2, iters, || {
        let Some(m) = model.take() else { return };
        let logits = m.forward(images.clone());
        let loss = loss_fn.forward(logits, targets.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let m = optim.step(0.01, m, grads);
        let _ = m.num_params();
        device.sync().ok();
        model = Some(m);
    })
}

/// Marks a case run with bf16 products.
const BF16: &str = "bf16 ";

/// A case name built at run time, kept for the whole (short) program.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench model -- <text>` runs only the cases whose name contains <text>;
    // `!<text>` leaves out those that contain it.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |label: &str| {
        filter.iter().all(|f| match f.strip_prefix('!') {
            Some(out) => !label.contains(out),
            None => label.contains(f.as_str()),
        })
    };
    // `TORCHLET_BENCH_ITERS=<n>` times more iterations (default 20) for steadier figures;
    // `TORCHLET_BENCH_TRACE=1` prints every iteration's time, in order (a slow minute on the
    // machine shows as a run of slow iterations).
    let iters = match (full, std::env::var("TORCHLET_BENCH_ITERS")) {
        (false, _) => 1,
        (true, Ok(n)) => n.parse().unwrap_or(20).max(1),
        (true, Err(_)) => 20,
    };
    #[allow(unused_mut)] // NdArray joins only with the `ndarray` feature.
    let mut devices: Vec<(&str, Device)> = vec![("flex", Device::flex())];
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    devices.push(("ndarray", Device::ndarray()));
    println!(
        "{} threads available (RAYON_NUM_THREADS={}); torchlet's CPU kernels: {:?}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
        torchlet::model::cpu::kernels::Isa::detect()
    );
    let bf16 = cpu::kernels::Bf16Isa::detect().is_some();
    println!(
        "bf16: {}",
        if bf16 {
            "this CPU has AVX512-BF16: the zoo also runs with bf16 products (flex bf16 rows)"
        } else {
            "this CPU has no AVX512-BF16 (nor AMX): no bf16 rows, f32 only"
        }
    );
    println!("{:<56} {:>14} {:>14}", "case", "best img/s", "median img/s");
    let conv: ModelConfig = SeedConvNetConfig::new().into();
    let conv_burn: ModelConfig = SeedConvNetConfig::new()
        .with_cpu_kernels(Some(CpuKernels::Burn))
        .into();
    let linear: ModelConfig = LinearBaselineConfig::new().into();
    let zoo: [(&str, ModelConfig, &[usize]); 3] = [
        ("Airbench94", Airbench94Config::new().into(), &[256, 1024]),
        ("Resnet18", Resnet18Config::new().into(), &[128]),
        ("Vgg11", Vgg11Config::new().into(), &[128]),
    ];
    for (name, device) in &devices {
        // NdArray's conv backward is very slow: fewer iterations there.
        let it = if *name == "ndarray" {
            iters.min(3)
        } else {
            iters
        };
        let mut cases = vec![
            ("SeedConvNet inference, batch 1000", &conv, 1000, false),
            ("SeedConvNet inference, batch 64", &conv, 64, false),
            ("SeedConvNet train step, batch 64", &conv, 64, true),
            ("LinearBaseline train step, batch 64", &linear, 64, true),
        ];
        // The model zoo: `torchlet::nn` layers, which pick torchlet's kernels by themselves.
        // (Flex only: NdArray takes minutes a step. A smoke run takes 8 images.)
        for (model, config, batches) in zoo.iter().filter(|_| *name == "flex") {
            for n in batches.iter().map(|&n| if full { n } else { n.min(8) }) {
                cases.push((
                    leak(format!("{model} train step, batch {n}")),
                    config,
                    n,
                    true,
                ));
                if *name == "flex" {
                    cases.push((
                        leak(format!("{model} (Burn conv) train step, batch {n}")),
                        config,
                        n,
                        true,
                    ));
                }
                if bf16 {
                    cases.push((
                        leak(format!("{BF16}{model} train step, batch {n}")),
                        config,
                        n,
                        true,
                    ));
                }
            }
        }
        if *name == "flex" {
            // Burn's own Conv2d on the same device, for comparison.
            cases.extend([
                (
                    "SeedConvNet (Burn conv) inference, batch 1000",
                    &conv_burn,
                    1000,
                    false,
                ),
                (
                    "SeedConvNet (Burn conv) inference, batch 64",
                    &conv_burn,
                    64,
                    false,
                ),
                (
                    "SeedConvNet (Burn conv) train step, batch 64",
                    &conv_burn,
                    64,
                    true,
                ),
            ]);
        }
        for (case, config, n, train) in cases {
            let (side, case, precision) = match case.strip_prefix(BF16) {
                Some(rest) => (format!("{name} bf16"), rest, Precision::Bf16),
                None => (name.to_string(), case, Precision::F32),
            };
            let label = format!("{side}: {case}");
            if !wanted(&label) {
                continue;
            }
            // Burn's conv2d in every `torchlet::nn` layer for the "(Burn conv)" cases.
            cpu::set_layer_kernels(if case.contains("(Burn conv)") {
                CpuKernels::Burn
            } else {
                CpuKernels::Auto
            });
            torchlet::model::set_precision(precision);
            let (best, median) = if train {
                train_step(config, device, n, it)
            } else {
                inference(config, device, n, it)
            };
            println!(
                "{:<56} {:>14.0} {:>14.0}",
                label,
                n as f64 / best,
                n as f64 / median
            );
        }
    }
}
