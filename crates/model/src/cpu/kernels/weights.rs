//! Weights in the layouts the kernels read: rows padded to the tile, flipped for the input
//! gradient, and the weight gradient transposed back.

use super::*;

/// Images per parallel task: a few tasks per rayon thread, so a thread slowed down by
/// something else on the machine does not hold the others up.
pub(crate) fn chunk_len(batch: usize) -> usize {
    batch
        .div_ceil(4 * rayon::current_num_threads().max(1))
        .max(1)
}

/// A forward chunk kernel compiled for one instruction set.
pub(crate) type ForwardFn = fn(&ConvGeometry, Maps<'_>, &[f32], Option<&[f32]>, Out<'_>);
/// A weight-gradient chunk kernel compiled for one instruction set.
pub(crate) type WeightGradFn = fn(&ConvGeometry, &[f32], Maps<'_>, &mut [f32]);
/// [`input_grad_points`] compiled for one instruction set: `(geometry, pooled gradient,
/// window positions, weights as [`point_rows`], dx)`.
pub(crate) type InputGradFn = fn(&ConvGeometry, &[f32], &[u8], &[f32], &mut [f32]);

/// Weights `[c_out, k_dim]` as 64-byte-aligned rows `[k_dim][ldn]`, `ldn` = `c_out` rounded
/// up to `nr`: `rows[r·ldn + co] = w[co, r]` (columns past `c_out` zero).
pub(crate) fn weight_rows(g: &ConvGeometry, w: &[f32], nr: usize) -> Aligned {
    let k_dim = g.k_dim();
    let ldn = round_up(g.c_out, nr);
    let mut rows = Aligned::zeros(k_dim * ldn);
    // Written in order, read across the `c_out` rows of `w` (whose lines stay in L1): the
    // other way round every write touched another cache line.
    for (k, row) in rows.get_mut().chunks_exact_mut(ldn.max(1)).enumerate() {
        for (co, v) in row[..g.c_out].iter_mut().enumerate() {
            *v = w[co * k_dim + k];
        }
    }
    rows
}

/// The weights of the input gradient's convolution (`g.transposed()`): the kernel flipped and
/// its channel axes swapped, `wt[ci, co, kh, kw] = w[co, ci, k−1−kh, k−1−kw]`.
pub(crate) fn flipped(g: &ConvGeometry, w: &[f32]) -> Vec<f32> {
    let k = g.kernel;
    let mut wt = vec![0.0f32; w.len()];
    for ci in 0..g.c_in {
        for co in 0..g.c_out {
            for kh in 0..k {
                for kw in 0..k {
                    wt[((ci * g.c_out + co) * k + kh) * k + kw] =
                        w[((co * g.c_in + ci) * k + (k - 1 - kh)) * k + (k - 1 - kw)];
                }
            }
        }
    }
    wt
}

/// [`weight_rows`] of the input gradient's convolution, `weight_rows(&g.transposed(),
/// &flipped(g, w), nr)`, built in one pass: `rows[(co, kh, kw)·ldn + ci] = w[co, ci, k−1−kh,
/// k−1−kw]`, written in order.
pub(crate) fn flipped_rows(g: &ConvGeometry, w: &[f32], nr: usize) -> Aligned {
    let (k, k_dim) = (g.kernel, g.c_out * g.kernel * g.kernel);
    let ldn = round_up(g.c_in, nr);
    let mut rows = Aligned::zeros(k_dim * ldn);
    for (r, row) in rows.get_mut().chunks_exact_mut(ldn.max(1)).enumerate() {
        let (co, kh, kw) = (r / (k * k), r / k % k, r % k);
        let tap = (k - 1 - kh) * k + (k - 1 - kw);
        for (ci, v) in row[..g.c_in].iter_mut().enumerate() {
            *v = w[(co * g.c_in + ci) * k * k + tap];
        }
    }
    rows
}

/// `dw[co, r] = dwt[r·ldn + co]`: the weight gradient out of the tiles' transposed layout.
pub(crate) fn untranspose(g: &ConvGeometry, dwt: &[f32], ldn: usize, dw: &mut [f32]) {
    for (co, row) in dw.chunks_exact_mut(g.k_dim().max(1)).enumerate() {
        for (r, v) in row.iter_mut().enumerate() {
            *v = dwt[r * ldn + co];
        }
    }
}
