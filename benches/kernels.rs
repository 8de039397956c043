//! torchlet's CPU kernels one layer at a time: the tutorial's three `conv 5×5 → max-pool 2`
//! blocks at batch 64, forward (fused with the pooling), weight gradient and input gradient,
//! in ms and GFLOP/s (the dense convolution's `2·batch·c_out·c_in·25·h·w` operations per
//! pass, so the gradients computed from the windows' maxima alone show above the machine's
//! peak: they do a quarter of those). The first layer's input gradient is listed for
//! completeness only: training never computes it (the images need no gradient), and with 3
//! output channels the dense kernel it runs on is slow.
//!
//! ```text
//! cargo bench --bench kernels                          # rayon's threads (all CPUs)
//! RAYON_NUM_THREADS=1 cargo bench --bench kernels      # one core
//! TORCHLET_CPU_ISA=avx2 cargo bench --bench kernels    # another instruction set
//! ```
//!
//! Best of 30 (`TORCHLET_BENCH_ITERS`) after one warm-up call. Under `cargo test --benches`
//! each case runs once as a smoke test.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use torchlet::model::cpu::kernels::{
    ConvGeometry, Isa, conv2d_forward, conv2d_input_grad, conv2d_pool2_backward,
    conv2d_pool2_forward, conv2d_weight_grad, pooled_size,
};

/// Best time of `iters` calls of `f` after one warm-up call, in ms; `None` if a call failed.
fn best(iters: usize, mut f: impl FnMut() -> Option<()>) -> Option<f64> {
    f()?;
    let mut best = f64::MAX;
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Some(best * 1e3)
}

/// Deterministic values in [-0.5, 0.5).
fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + salt) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let iters = match (full, std::env::var("TORCHLET_BENCH_ITERS")) {
        (false, _) => 1,
        (true, Ok(n)) => n.parse().unwrap_or(30).max(1),
        (true, Err(_)) => 30,
    };
    println!(
        "RAYON_NUM_THREADS={}, {} CPUs; instruction set {:?}; batch 64, best of {iters}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        Isa::detect()
    );
    println!(
        "{:<28} {:>17} {:>17} {:>17}",
        "layer", "forward + pool", "weight gradient", "input gradient"
    );
    for (c_in, c_out, side) in [(3, 32, 32), (32, 32, 16), (32, 64, 8)] {
        let g = ConvGeometry {
            batch: 64,
            c_in,
            c_out,
            height: side,
            width: side,
            kernel: 5,
            pad: 2,
        };
        let x = values(g.batch * c_in * side * side, 1);
        let w = values(c_out * c_in * 25, 2);
        let b = values(c_out, 3);
        let (ph, pw) = pooled_size(&g);
        let pooled = g.batch * c_out * ph * pw;
        let (mut y, mut idx) = (vec![0.0; pooled], vec![0u8; pooled]);
        let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
        let forward = best(iters, || {
            conv2d_pool2_forward(&g, &x, &w, Some(&b), &mut y, &mut idx)
        });
        let dy = values(pooled, 4);
        let weight_grad = best(iters, || {
            conv2d_pool2_backward(&g, &x, &w, &dy, &idx, None, Some(&mut dw), None)
        });
        let input_grad = best(iters, || {
            conv2d_pool2_backward(&g, &x, &w, &dy, &idx, Some(&mut dx), None, None)
        });
        let gflop = 2.0 * (g.batch * c_out * c_in * 25 * side * side) as f64 / 1e9;
        let cell = |ms: Option<f64>| match ms {
            Some(ms) => format!("{ms:6.2} ms {:4.0} GF/s", gflop / ms * 1e3),
            None => "refused".to_string(),
        };
        println!(
            "{:<28} {:>17} {:>17} {:>17}",
            format!("conv {c_in}→{c_out}, {side}×{side}"),
            cell(forward),
            cell(weight_grad),
            cell(input_grad)
        );
    }
    plain_layers(iters);
}

/// airbench94's convolutions at batch 256: the three `conv 3×3 → max-pool 2` pairs fused, its
/// 2×2 whitening layer, and each distinct 3×3 `padding="same"` convolution on its input
/// size; then VGG-11's convolutions at batch 128.
fn plain_layers(iters: usize) {
    println!(
        "{:<28} {:>17} {:>17} {:>17}",
        "airbench94 layer, batch 256", "forward", "weight gradient", "input gradient"
    );
    for (c_in, c_out, side) in [(24, 64, 31), (64, 256, 15), (256, 256, 7)] {
        pooled_layer(iters, c_in, c_out, side);
    }
    let airbench = [
        (3, 24, 32, 2, 0),
        (24, 64, 31, 3, 1),
        (64, 64, 15, 3, 1),
        (64, 256, 15, 3, 1),
        (256, 256, 7, 3, 1),
        (256, 256, 3, 3, 1),
    ];
    dense_layers(iters, 256, &airbench);
    println!(
        "{:<28} {:>17} {:>17} {:>17}",
        "VGG-11 layer, batch 128", "forward", "weight gradient", "input gradient"
    );
    let vgg = [
        (3, 64, 32, 3, 1),
        (64, 128, 16, 3, 1),
        (128, 256, 8, 3, 1),
        (256, 256, 8, 3, 1),
        (256, 512, 4, 3, 1),
        (512, 512, 4, 3, 1),
        (512, 512, 2, 3, 1),
    ];
    dense_layers(iters, 128, &vgg);
}

/// One row per `(c_in, c_out, side, kernel, pad)` convolution at `batch`.
fn dense_layers(iters: usize, batch: usize, layers: &[(usize, usize, usize, usize, usize)]) {
    for &(c_in, c_out, side, kernel, pad) in layers {
        let g = ConvGeometry {
            batch,
            c_in,
            c_out,
            height: side,
            width: side,
            kernel,
            pad,
        };
        let x = values(g.batch * c_in * side * side, 1);
        let w = values(c_out * c_in * kernel * kernel, 2);
        let b = values(c_out, 3);
        let out = g.batch * c_out * g.out_height() * g.out_width();
        let (mut y, dy) = (vec![0.0; out], values(out, 4));
        let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
        let forward = best(iters, || conv2d_forward(&g, &x, &w, Some(&b), &mut y));
        let weight_grad = best(iters, || conv2d_weight_grad(&g, &x, &dy, &mut dw));
        let input_grad = best(iters, || conv2d_input_grad(&g, &dy, &w, &mut dx));
        let gflop = 2.0 * (out * c_in * kernel * kernel) as f64 / 1e9;
        let cell = |ms: Option<f64>| match ms {
            Some(ms) => format!("{ms:6.2} ms {:4.0} GF/s", gflop / ms * 1e3),
            None => "refused".to_string(),
        };
        println!(
            "{:<28} {:>17} {:>17} {:>17}",
            format!("conv {c_in}→{c_out} k{kernel}, {side}×{side}"),
            cell(forward),
            cell(weight_grad),
            cell(input_grad)
        );
    }
}

/// One of airbench94's `conv 3×3 → max-pool 2` pairs at batch 256, fused.
fn pooled_layer(iters: usize, c_in: usize, c_out: usize, side: usize) {
    let g = ConvGeometry {
        batch: 256,
        c_in,
        c_out,
        height: side,
        width: side,
        kernel: 3,
        pad: 1,
    };
    let x = values(g.batch * c_in * side * side, 1);
    let w = values(c_out * c_in * 9, 2);
    let (ph, pw) = pooled_size(&g);
    let pooled = g.batch * c_out * ph * pw;
    let (mut y, mut idx) = (vec![0.0; pooled], vec![0u8; pooled]);
    let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
    let forward = best(iters, || {
        conv2d_pool2_forward(&g, &x, &w, None, &mut y, &mut idx)
    });
    let dy = values(pooled, 4);
    let weight_grad = best(iters, || {
        conv2d_pool2_backward(&g, &x, &w, &dy, &idx, None, Some(&mut dw), None)
    });
    let input_grad = best(iters, || {
        conv2d_pool2_backward(&g, &x, &w, &dy, &idx, Some(&mut dx), None, None)
    });
    let gflop = 2.0 * (g.batch * c_out * c_in * 9 * side * side) as f64 / 1e9;
    let cell = |ms: Option<f64>| match ms {
        Some(ms) => format!("{ms:6.2} ms {:4.0} GF/s", gflop / ms * 1e3),
        None => "refused".to_string(),
    };
    println!(
        "{:<28} {:>17} {:>17} {:>17}",
        format!("conv {c_in}→{c_out} + pool, {side}×{side}"),
        cell(forward),
        cell(weight_grad),
        cell(input_grad)
    );
}
