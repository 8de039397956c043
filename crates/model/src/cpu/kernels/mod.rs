//! Convolution kernels on plain `f32` slices: stride 1, no dilation, one group, square kernel,
//! any zero padding, NCHW layout; forward (optionally fused with 2×2 max-pooling), input
//! gradient and weight gradient.
//!
//! All of them are implicit GEMMs on one register-tiled micro-kernel (`Tile`); no im2col
//! buffer is built. Each image is copied once into a zero-padded buffer, where the input of
//! kernel tap `r = (ci, kh, kw)` for output `(oy, ox)` is `padded[offset[r] + oy·pw + ox]`:
//!
//! * forward: `y[co, p] = b[co] + Σ_r w[co, r] · x_p[r]`, `MR` consecutive outputs of one row
//!   broadcast against 64-byte-aligned rows of `NR` output channels of the weights; the 2×2
//!   max-pooling reads the finished register tiles, so the fused op never writes the
//!   convolution's output;
//! * input gradient: the forward of `dy` with the kernel flipped and its channel axes swapped,
//!   padded by `k − 1 − pad`;
//! * weight gradient: `dwᵀ[r, co] = Σ_n Σ_p x_{n,p}[r] · dy_n[co, p]`, `MR` taps' input rows
//!   broadcast against aligned rows of `dyᵀ`.
//!
//! Behind a max-pooling, the output gradient is read as "unpooled" (`Maps::Unpooled`):
//! the pooled gradient and the window position of each maximum, never materialised. Where the
//! input channels are a multiple of the tile's width and the kernel is 5 × 5 (the tutorial's
//! second and third layers), the weight and input gradients visit only those maxima — one
//! output in four, a quarter of the products — on a channels-last copy of the image
//! (`weight_grad_points`, `input_grad_points`, one small kernel `Tile::run_points`).
//!
//! Where the output rows are exactly 32 wide (the tutorial's first layer, 3 input channels,
//! a 75-step reduction), the fused forward (AVX-512 and AVX2) and the weight gradient
//! (AVX-512) turn the tile around: a row's 32 outputs lie in the lanes of the vectors, so the
//! pooling is a lane shuffle and a pooled row is one vector store per channel, instead of
//! one scalar store per channel and position (`Pool32Fn`, `Wgrad32Fn`).
//!
//! The micro-kernel keeps an `MR × NR` tile of outputs in registers: `std::arch` AVX-512
//! (8 × 32) or AVX2 + FMA (4 × 16 forward, 6 × 16 weight gradient), plain Rust (4 × 8)
//! elsewhere; the code around it is
//! compiled once per instruction set (`#[target_feature]`) and chosen at run time
//! ([`Isa::detect`]). Images of a batch are split into small tasks over rayon's threads; every
//! buffer is padded to whole tiles, so the inner loop has no edge cases.
//!
//! On small maps (VGG's 4 × 4 and 2 × 2 with 512 channels, airbench's 7 × 7 and 3 × 3) one
//! image is too little work per weight: there several images of a task share each pass over
//! a block of weight rows (forward and input gradient), each weight-gradient accumulator tile
//! takes a group of images per load, and where output rows are narrower than a tile, tiles
//! run along the padded grid across row ends (`forward.rs`, `tiling`).
//!
//! With [`Precision::Bf16`] ([`set_precision`], `TORCHLET_CPU_PRECISION=bf16`) and a CPU
//! with AVX512-BF16, the forward and both gradients take bf16 operands into the products
//! and accumulate in `f32` (`bf16.rs`: the operands packed as pairs of bf16 in 32-bit slots,
//! so the forward driver runs unchanged on a `vdpbf16ps` tile; `bf16_wgrad.rs`: the weight
//! gradient as one GEMM per tap over position pairs). The maxima-only gradients behind a
//! pooling stay `f32` (a quarter of the products already), as does the three-block stack.
//!
//! [`conv_pool_stack_forward`] and [`conv_pool_stack_backward`] run a stack of fused
//! conv → pool blocks (the tutorial's three) a few images at a time through every block, so
//! the threads meet once per pass rather than once per layer.
//!
//! Where things are: `geometry.rs` (the call's shape), `tile.rs` (the micro-kernel interface
//! and the portable tile), `simd.rs` (the AVX-512 and AVX2 tiles), `rows32.rs` (the 32-wide
//! first-layer kernels), `buffers.rs` (padded images, gradient views, outputs), `forward.rs`,
//! `weight_grad.rs`, `input_grad.rs` (the ops), `weights.rs` (weight layouts), `dispatch.rs`
//! (instruction sets and the choice among them), `stack.rs` (the three-block stack),
//! `bf16.rs` and `bf16_wgrad.rs` (bf16 products), and here the entry points with their
//! length checks.

use rayon::prelude::*;

mod stack;

pub use stack::{Block, conv_pool_stack_backward, conv_pool_stack_forward};

mod bf16;
mod bf16_wgrad;
mod buffers;
mod dispatch;
mod forward;
mod geometry;
mod input_grad;
mod rows32;
mod simd;
mod tile;
mod weight_grad;
mod weights;

pub use crate::precision::{Precision, precision, set_precision};
pub(crate) use bf16::*;
pub use bf16::{
    Bf16Isa, bf16_active, bf16_bits, conv2d_forward_bf16, conv2d_input_grad_bf16, describe,
    round_bf16,
};
pub use bf16_wgrad::conv2d_weight_grad_bf16;
pub(crate) use bf16_wgrad::*;
pub(crate) use buffers::*;
pub use dispatch::*;
pub(crate) use forward::*;
pub use geometry::*;
pub(crate) use input_grad::*;
pub(crate) use rows32::*;
pub(crate) use simd::*;
pub(crate) use tile::*;
pub(crate) use weight_grad::*;
pub(crate) use weights::*;

/// Checks slice lengths against the geometry; `None` when they disagree.
pub(crate) fn check(g: &ConvGeometry, x: usize, w: usize, y: usize) -> Option<()> {
    (g.is_valid()
        && x == g.batch * g.in_image()
        && w == g.c_out * g.k_dim()
        && y == g.batch * g.out_image())
    .then_some(())
}

/// Forward convolution: `y = conv(x, w) + bias`.
///
/// `x`: `[batch, c_in, h, w]`, `w`: `[c_out, c_in, k, k]`, `bias`: `[c_out]`,
/// `y`: `[batch, c_out, oh, ow]`. Returns `None` (and leaves `y` alone) when a length does not
/// match the geometry.
pub fn conv2d_forward(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Option<()> {
    check(g, x.len(), w.len(), y.len())?;
    if bias.is_some_and(|b| b.len() != g.c_out) {
        return None;
    }
    forward_dispatch(g, Maps::Dense(x), w, bias, Out::Conv(y));
    Some(())
}

/// Gradient of the input: `dx = conv(dy, flip(w)ᵀ)` padded by `k − 1 − pad`.
///
/// `dy`: `[batch, c_out, oh, ow]`, `w`: `[c_out, c_in, k, k]`, `dx`: `[batch, c_in, h, w]`.
pub fn conv2d_input_grad(g: &ConvGeometry, dy: &[f32], w: &[f32], dx: &mut [f32]) -> Option<()> {
    check(g, dx.len(), w.len(), dy.len())?;
    input_grad(g, Maps::Dense(dy), w, dx)
}

/// `dx` from `dy` (dense or unpooled): the forward of `dy` with the kernel flipped, in the
/// [`precision`] asked for (the maxima-only path behind a pooling stays fp32: it does a
/// quarter of the products).
pub(crate) fn input_grad(g: &ConvGeometry, dy: Maps<'_>, w: &[f32], dx: &mut [f32]) -> Option<()> {
    let isa = Isa::detect();
    if let Some(bf16) = bf16_active()
        && g.pad < g.kernel
        && !(matches!(dy, Maps::Unpooled(..))
            && points_fit(g, true, isa.chunk_kernels().weight_grad_tile.1))
    {
        input_grad_bf16_on(bf16, g, dy, w, dx);
        return Some(());
    }
    input_grad_on(isa, g, dy, w, dx)
}

/// [`input_grad`] on the kernels of `isa`, which must be one of [`Isa::supported`].
pub(crate) fn input_grad_on(
    isa: Isa,
    g: &ConvGeometry,
    dy: Maps<'_>,
    w: &[f32],
    dx: &mut [f32],
) -> Option<()> {
    if g.pad >= g.kernel {
        return None;
    }
    let k = isa.chunk_kernels();
    if let Maps::Unpooled(vals, idx) = dy
        && points_fit(g, true, k.weight_grad_tile.1)
    {
        let rows = point_rows(g, w);
        let images = chunk_len(g.batch);
        let pooled = g.c_out * (g.out_height() / 2) * (g.out_width() / 2);
        dx.par_chunks_mut(images * g.in_image())
            .zip(vals.par_chunks(images * pooled))
            .zip(idx.par_chunks(images * pooled))
            .for_each(|((dxc, vc), ic)| (k.input_grad)(g, vc, ic, rows.get(), dxc));
        return Some(());
    }
    let wt = flipped(g, w);
    let t = g.transposed();
    forward_on(isa, &t, dy, &wt, None, Out::Conv(dx));
    Some(())
}

/// Gradient of the weights: `dw[co, ci, kh, kw] = Σ_n Σ_p dy[n, co, p] · x_n[ci, p + (kh, kw) − pad]`.
///
/// `x`: `[batch, c_in, h, w]`, `dy`: `[batch, c_out, oh, ow]`, `dw`: `[c_out, c_in, k, k]`.
pub fn conv2d_weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) -> Option<()> {
    check(g, x.len(), dw.len(), dy.len())?;
    weight_grad_dispatch(g, x, Maps::Dense(dy), dw);
    Some(())
}

/// Gradient of the bias: `db[co] = Σ_n Σ_p dy[n, co, p]`.
pub fn conv2d_bias_grad(g: &ConvGeometry, dy: &[f32], db: &mut [f32]) -> Option<()> {
    let (image, plane) = (g.out_image(), g.out_plane());
    if dy.len() != g.batch * image || db.len() != g.c_out {
        return None;
    }
    if image == 0 {
        db.fill(0.0);
        return Some(());
    }
    let sums = dy
        .par_chunks(chunk_len(g.batch) * image)
        .map(|images| {
            let mut sums = vec![0.0f32; g.c_out];
            for one in images.chunks_exact(image) {
                for (s, p) in sums.iter_mut().zip(one.chunks_exact(plane)) {
                    *s += p.iter().sum::<f32>();
                }
            }
            sums
        })
        .collect::<Vec<_>>()
        .into_iter()
        // Summed in chunk order: the same bits whatever the thread scheduling.
        .fold(vec![0.0f32; g.c_out], |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        });
    db.copy_from_slice(&sums);
    Some(())
}

/// Shape of the 2×2 max-pooling of the convolution's output: `(oh / 2, ow / 2)`.
pub fn pooled_size(g: &ConvGeometry) -> (usize, usize) {
    (g.out_height() / 2, g.out_width() / 2)
}

/// Forward convolution followed by 2×2 max-pooling (stride 2, floor), fused: the convolution's
/// output only ever exists one image at a time.
///
/// `y`: `[batch, c_out, oh / 2, ow / 2]`; `idx` (as long as `y`) receives which position of
/// each window won (`0..4`, row-major), for [`conv2d_pool2_backward`].
pub fn conv2d_pool2_forward(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    idx: &mut [u8],
) -> Option<()> {
    let (ph, pw) = pooled_size(g);
    let pooled = g.batch * g.c_out * ph * pw;
    if !g.is_valid() || x.len() != g.batch * g.in_image() || w.len() != g.c_out * g.k_dim() {
        return None;
    }
    if y.len() != pooled || idx.len() != pooled || bias.is_some_and(|b| b.len() != g.c_out) {
        return None;
    }
    forward_dispatch(g, Maps::Dense(x), w, bias, Out::Pooled(y, idx));
    Some(())
}

/// The three gradients of [`conv2d_pool2_forward`] from the gradient of its pooled output
/// `dy` (`[batch, c_out, oh / 2, ow / 2]`) and the window positions `idx` it recorded; each
/// gradient is computed only when asked for. The convolution's own output gradient (`dy`
/// routed through the pooling) is never materialised.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_pool2_backward(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    idx: &[u8],
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> Option<()> {
    let (ph, pw) = pooled_size(g);
    let pooled = g.batch * g.c_out * ph * pw;
    let dense = g.batch * g.out_image();
    check(g, x.len(), w.len(), dense)?;
    if dy.len() != pooled || idx.len() != pooled {
        return None;
    }
    let maps = Maps::Unpooled(dy, idx);
    if dx.as_ref().is_some_and(|dx| dx.len() != x.len())
        || dw.as_ref().is_some_and(|dw| dw.len() != w.len())
    {
        return None;
    }
    // The two gradients are independent: computed side by side, each thread finds work.
    let (dx_done, ()) = rayon::join(
        || dx.map_or(Some(()), |dx| input_grad(g, maps, w, dx)),
        || {
            if let Some(dw) = dw {
                weight_grad_dispatch(g, x, maps, dw);
            }
        },
    );
    dx_done?;
    if let Some(db) = db {
        // Unpooling only moves values: the sums per channel are those of `dy`.
        let g_pooled = ConvGeometry {
            height: ph,
            width: pw,
            kernel: 1,
            pad: 0,
            ..*g
        };
        conv2d_bias_grad(&g_pooled, dy, db)?;
    }
    Some(())
}

#[cfg(test)]
mod tests;
