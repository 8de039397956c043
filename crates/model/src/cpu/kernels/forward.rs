//! The forward pass (optionally fused with 2×2 max-pooling) of one image and of a chunk.

use super::*;

/// Forward convolution of image `i` of `x` (maps `c_in × h × w`), written as `out` says.
///
/// `w_rows` holds the weights as `[k_dim][ldn]` rows (`ldn` = `c_out` rounded up to `T::NR`,
/// 64-byte aligned); `cbuf` holds `ldn / NR × oh × ⌈ow / MR⌉` tiles.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_image<T: Tile>(
    g: &ConvGeometry,
    x: Maps<'_>,
    i: usize,
    w_rows: &[f32],
    ldn: usize,
    bias: Option<&[f32]>,
    mut out: Out<'_>,
    xp: &mut Padded,
    cbuf: &mut [f32],
) {
    let (mr, nr) = (T::MR, T::NR);
    let (oh, ow) = (g.out_height(), g.out_width());
    let plane = oh * ow;
    let k_dim = g.k_dim();
    // Tiles of MR consecutive outputs of one output row: (oy, ox0..ox0 + MR), read from the
    // padded image at grid position oy·pw + ox0, so no junk column is computed when MR
    // divides the output width. Tile rows are stored at (oy·ow_pad + ox)·NR.
    let ow_pad = round_up(ow, mr);
    let row_tiles = ow_pad / mr;
    xp.fill(g, x, i);
    if let Some(pool32) = pool32_for::<T>(g, &out)
        && let Out::Pooled(yi, ii) = &mut out
    {
        let plane = (oh / 2) * (ow / 2);
        for py in 0..oh / 2 {
            for co in (0..g.c_out).step_by(4) {
                let mut b4 = [0.0f32; 4];
                if let Some(b) = bias {
                    b4.copy_from_slice(&b[co..co + 4]);
                }
                let at = co * plane + py * (ow / 2);
                pool32(xp, 2 * py, w_rows, ldn, co, &b4, yi, ii, at, plane);
            }
        }
        return;
    }
    for (nt, tiles) in cbuf.chunks_exact_mut(oh * ow_pad * nr).enumerate() {
        let co0 = nt * nr;
        let mut bias_row = [0.0f32; MAX_LANES];
        if let Some(b) = bias {
            for (v, bj) in bias_row.iter_mut().zip(b.iter().skip(co0)) {
                *v = *bj;
            }
        }
        for row in tiles.chunks_exact_mut(nr) {
            row.copy_from_slice(&bias_row[..nr]);
        }
        // Equal blocks of at most KC reduction steps: the block of weight rows stays in L1
        // while every grid tile streams past it.
        let blocks = k_dim.div_ceil(KC).max(1);
        let step = k_dim.div_ceil(blocks);
        let mut k0 = 0;
        while k0 < k_dim {
            let kc = step.min(k_dim - k0);
            let aoff = Offsets::new(&xp.offsets[k0..k0 + kc]);
            let b = &w_rows[k0 * ldn + co0..];
            for (t, tile) in tiles.chunks_exact_mut(mr * nr).enumerate() {
                let (oy, ox0) = (t / row_tiles, (t % row_tiles) * mr);
                T::run_shift_a(&xp.data[oy * xp.pw + ox0..], aoff, b, ldn, tile);
            }
            k0 += kc;
        }
        let channels = nr.min(g.c_out.saturating_sub(co0));
        match &mut out {
            // Tile row (oy, ox) → output (co, oy, ox) for ox < ow.
            Out::Conv(yi) => {
                for (q, row) in tiles.chunks_exact(nr).enumerate() {
                    let (oy, ox) = (q / ow_pad, q % ow_pad);
                    if ox < ow {
                        for (j, v) in row[..channels].iter().enumerate() {
                            yi[(co0 + j) * plane + oy * ow + ox] = *v;
                        }
                    }
                }
            }
            // 2×2 max-pooling straight from the grid rows (all channels of a position are
            // one contiguous row there), first maximum in row-major order; NaN wins.
            Out::Pooled(yi, ii) => {
                let (ph, pw) = (oh / 2, ow / 2);
                let mut best = [0.0f32; MAX_LANES];
                let mut which = [0u8; MAX_LANES];
                for py in 0..ph {
                    for px in 0..pw {
                        let q = 2 * py * ow_pad + 2 * px;
                        let window = [q, q + 1, q + ow_pad, q + ow_pad + 1];
                        best[..nr].copy_from_slice(&tiles[q * nr..(q + 1) * nr]);
                        which[..nr].fill(0);
                        for (k, qk) in window.iter().enumerate().skip(1) {
                            let row = &tiles[qk * nr..(qk + 1) * nr];
                            let lanes = best[..nr].iter_mut().zip(&mut which[..nr]).zip(row);
                            for ((b, w), v) in lanes {
                                // Branch-free so it vectorises.
                                let take = (*v > *b) | (v.is_nan() & !b.is_nan());
                                *b = if take { *v } else { *b };
                                *w = if take { k as u8 } else { *w };
                            }
                        }
                        for j in 0..channels {
                            let at = ((co0 + j) * ph + py) * pw + px;
                            yi[at] = best[j];
                            ii[at] = which[j];
                        }
                    }
                }
            }
        }
    }
}

/// Forward convolution (optionally max-pooled) of consecutive images `x`
/// (`[images, c_in, h, w]`).
#[inline(always)]
pub(crate) fn forward_chunk<T: Tile>(
    g: &ConvGeometry,
    x: Maps<'_>,
    w_rows: &[f32],
    bias: Option<&[f32]>,
    out: Out<'_>,
) {
    let (mr, nr) = (T::MR, T::NR);
    let ldn = round_up(g.c_out, nr);
    let mut xp = Padded::new(g, mr);
    // The tiles of one image, unless the kernel for rows 32 wide does the whole image.
    let whole_image = pool32_for::<T>(g, &out).is_some();
    let tiles = if whole_image {
        0
    } else {
        ldn * g.out_height() * round_up(g.out_width(), mr)
    };
    let mut cbuf = vec![0.0f32; tiles];
    match out {
        Out::Conv(y) => {
            for (i, yi) in y.chunks_exact_mut(g.out_image()).enumerate() {
                let out = Out::Conv(yi);
                forward_image::<T>(g, x, i, w_rows, ldn, bias, out, &mut xp, &mut cbuf);
            }
        }
        Out::Pooled(y, idx) => {
            let pooled = g.c_out * (g.out_height() / 2) * (g.out_width() / 2);
            let outs = y.chunks_exact_mut(pooled).zip(idx.chunks_exact_mut(pooled));
            for (i, (yi, ii)) in outs.enumerate() {
                let out = Out::Pooled(yi, ii);
                forward_image::<T>(g, x, i, w_rows, ldn, bias, out, &mut xp, &mut cbuf);
            }
        }
    }
}
