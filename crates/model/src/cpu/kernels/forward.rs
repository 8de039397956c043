//! The forward pass (optionally fused with 2×2 max-pooling) of one image and of a chunk.

use super::*;

/// Positions (tile rows) a group of images shares one pass over the weights with: small maps
/// (VGG's 4 × 4 with 512 channels) take several images per block of weight rows, so each
/// block, loaded once into L1, serves all of them instead of streaming the weights from
/// memory again for every image.
const GROUP_POSITIONS: usize = 256;

/// Images per group for `positions` tile rows per image (1 for maps of 16 × 16 and more).
fn group_len(positions: usize) -> usize {
    (GROUP_POSITIONS / positions.max(1)).clamp(1, 16)
}

/// How an image's outputs are cut into tiles of `mr` consecutive positions: along each output
/// row (`stride` = the row rounded up to `mr`), or along the padded grid, rows `pw` apart,
/// across row ends (`stride` = `pw`; the `pw − ow` positions at each row's end are computed
/// and dropped). The grid wastes less on narrow maps (a 4-wide row is half a tile of 8; the
/// 6-wide grid row of a 4 × 4 map with padding 1 is three quarters of one).
/// `(stride, positions)`: positions stored per image, a whole number of tiles.
fn tiling(g: &ConvGeometry, mr: usize) -> (usize, usize) {
    let (oh, ow) = (g.out_height(), g.out_width());
    let pw = g.width + 2 * g.pad;
    let rows = oh * round_up(ow, mr);
    let grid = round_up(oh * pw, mr);
    if grid < rows {
        (pw, grid)
    } else {
        (round_up(ow, mr), rows)
    }
}

/// Forward convolution of images `first..first + outs.len()` of `x` (maps `c_in × h × w`),
/// each written as its `outs` entry says.
///
/// `w_rows` holds the weights as `[k_dim][ldn]` rows (`ldn` = `c_out` rounded up to `T::NR`,
/// 64-byte aligned); `cbuf` holds one block of `oh × ⌈ow / MR⌉` tiles per image, `xps` one
/// padded buffer per image.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_images<T: ShiftTile>(
    g: &ConvGeometry,
    x: Maps<'_>,
    first: usize,
    w_rows: &[f32],
    ldn: usize,
    bias: Option<&[f32]>,
    outs: &mut [Out<'_>],
    xps: &mut [Padded],
    cbuf: &mut [f32],
) {
    let (mr, nr) = (T::MR, T::NR);
    let k_dim = g.k_dim();
    // Tiles of MR consecutive outputs (see `tiling`), read from the padded image at grid
    // position oy·pw + ox0: along a row, no junk column is computed when MR divides the
    // output width. Tile rows are stored at (oy·stride + ox)·NR.
    let (stride, positions) = tiling(g, mr);
    let pw = g.width + 2 * g.pad;
    let n = outs.len();
    for (j, xp) in xps[..n].iter_mut().enumerate() {
        xp.fill(g, x, first + j);
    }
    if let Some(pool32) = pool32_for::<T>(g, &outs[0]) {
        for (out, xp) in outs.iter_mut().zip(xps.iter()) {
            if let Out::Pooled(yi, ii) = out {
                pool32_image(g, pool32, xp, w_rows, ldn, bias, yi, ii);
            }
        }
        return;
    }
    let block = positions * nr;
    for nt in 0..ldn / nr {
        let co0 = nt * nr;
        let mut bias_row = [0.0f32; MAX_LANES];
        if let Some(b) = bias {
            for (v, bj) in bias_row.iter_mut().zip(b.iter().skip(co0)) {
                *v = *bj;
            }
        }
        for row in cbuf[..n * block].chunks_exact_mut(nr) {
            row.copy_from_slice(&bias_row[..nr]);
        }
        // Equal blocks of at most KC reduction steps: the block of weight rows stays in L1
        // while every grid tile of every image of the group streams past it.
        let blocks = k_dim.div_ceil(KC).max(1);
        let step = k_dim.div_ceil(blocks);
        let mut k0 = 0;
        while k0 < k_dim {
            let kc = step.min(k_dim - k0);
            let b = &w_rows[k0 * ldn + co0..];
            for (xp, tiles) in xps.iter().zip(cbuf.chunks_exact_mut(block)).take(n) {
                let aoff = Offsets::new(&xp.offsets[k0..k0 + kc]);
                for (t, tile) in tiles.chunks_exact_mut(mr * nr).enumerate() {
                    let (oy, ox0) = ((t * mr) / stride, (t * mr) % stride);
                    T::run_shift_a(&xp.data[oy * pw + ox0..], aoff, b, ldn, tile);
                }
            }
            k0 += kc;
        }
        let channels = nr.min(g.c_out.saturating_sub(co0));
        for (out, tiles) in outs.iter_mut().zip(cbuf.chunks_exact(block)) {
            write_block(g, out, co0, channels, nr, stride, tiles);
        }
    }
}

/// One image's pooled forward on the 32-wide first-layer kernel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pool32_image(
    g: &ConvGeometry,
    pool32: Pool32Fn,
    xp: &Padded,
    w_rows: &[f32],
    ldn: usize,
    bias: Option<&[f32]>,
    yi: &mut [f32],
    ii: &mut [u8],
) {
    let (oh, ow) = (g.out_height(), g.out_width());
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
}

/// Writes one block of `NR` output channels from `co0` (`channels` of them real) of one
/// image's finished tiles, whose rows are `stride` positions apart (see `tiling`).
#[inline(always)]
fn write_block(
    g: &ConvGeometry,
    out: &mut Out<'_>,
    co0: usize,
    channels: usize,
    nr: usize,
    stride: usize,
    tiles: &[f32],
) {
    let ow_pad = stride;
    let (oh, ow) = (g.out_height(), g.out_width());
    let plane = oh * ow;
    match out {
        // Tile row (oy, ox) → output (co, oy, ox) for ox < ow.
        Out::Conv(yi) => {
            for (q, row) in tiles.chunks_exact(nr).enumerate() {
                let (oy, ox) = (q / ow_pad, q % ow_pad);
                if ox < ow && oy < oh {
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

/// Forward convolution (optionally max-pooled) of consecutive images `x`
/// (`[images, c_in, h, w]`), a group of images at a time.
#[inline(always)]
pub(crate) fn forward_chunk<T: ShiftTile>(
    g: &ConvGeometry,
    x: Maps<'_>,
    w_rows: &[f32],
    bias: Option<&[f32]>,
    out: Out<'_>,
) {
    let (mr, nr) = (T::MR, T::NR);
    let ldn = round_up(g.c_out, nr);
    // The tiles of one image, unless the kernel for rows 32 wide does the whole image.
    let whole_image = pool32_for::<T>(g, &out).is_some();
    let (_, positions) = tiling(g, mr);
    let group = if whole_image { 1 } else { group_len(positions) };
    let mut xps: Vec<Padded> = (0..group).map(|_| Padded::new(g, mr)).collect();
    let block = if whole_image { 0 } else { positions * nr };
    let mut cbuf = vec![0.0f32; group * block];
    // Direct calls, not a closure: a closure's body is compiled without the enclosing
    // function's `#[target_feature]`s (measured: the padding copies and the pooling ran on
    // SSE2 inside the AVX-512 kernels).
    match out {
        Out::Conv(y) => {
            for (c, yc) in y.chunks_mut(group * g.out_image()).enumerate() {
                let mut outs: Vec<Out<'_>> =
                    yc.chunks_exact_mut(g.out_image()).map(Out::Conv).collect();
                let (xps, cbuf) = (&mut xps, &mut cbuf);
                forward_images::<T>(g, x, c * group, w_rows, ldn, bias, &mut outs, xps, cbuf);
            }
        }
        Out::Pooled(y, idx) => {
            let pooled = g.c_out * (g.out_height() / 2) * (g.out_width() / 2);
            let groups = y
                .chunks_mut(group * pooled)
                .zip(idx.chunks_mut(group * pooled));
            for (c, (yc, ic)) in groups.enumerate() {
                let mut outs: Vec<Out<'_>> = yc
                    .chunks_exact_mut(pooled)
                    .zip(ic.chunks_exact_mut(pooled))
                    .map(|(yi, ii)| Out::Pooled(yi, ii))
                    .collect();
                let (xps, cbuf) = (&mut xps, &mut cbuf);
                forward_images::<T>(g, x, c * group, w_rows, ldn, bias, &mut outs, xps, cbuf);
            }
        }
    }
}
