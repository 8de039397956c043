//! The weight gradient: dense, from the windows' maxima (`weight_grad_points`), and for
//! rows 32 wide.

use super::*;

/// Weight gradient of consecutive images, accumulated into `dwt`: `[k_dim, c_out]`, rows
/// padded to `T::MR`, columns to `T::NR`, or where [`weight_grad_points`] runs (see
/// [`points_fit`]) its own layout; [`weight_grad_out`] reads either.
#[inline(always)]
pub(crate) fn weight_grad_chunk<T: Tile>(
    g: &ConvGeometry,
    x: &[f32],
    dy: Maps<'_>,
    dwt: &mut [f32],
) {
    let (mr, nr) = (T::MR, T::NR);
    let (oh, ow) = (g.out_height(), g.out_width());
    let k_dim = g.k_dim();
    // The 32-lane weight gradient is made for a first layer (a few input channels); with
    // more input channels (conv2 of a 64 × 64 image) it disagrees with the definition, so
    // those geometries take the general path.
    if let Some(wgrad32) = T::WGRAD32
        && rows32(g)
        && g.c_in <= 4
    {
        weight_grad_rows32(g, x, dy, dwt, round_up(g.c_out, nr), nr, wgrad32);
        return;
    }
    if let Maps::Unpooled(vals, idx) = dy
        && points_fit(g, true, nr)
    {
        weight_grad_points::<T>(g, x, vals, idx, dwt);
        return;
    }
    // Small maps: several images per load of each accumulator tile (below).
    let group = (KC / (oh * ow).max(1)).clamp(1, 16);
    if group > 1 {
        weight_grad_grouped::<T>(g, x, dy, dwt, group);
        return;
    }
    let r_tiles = k_dim.div_ceil(mr);
    let ldn = round_up(g.c_out, nr);
    let mut xp = Padded::new(g, nr);
    // dyᵀ: [oh·ow, ldn]; padded channels stay zero.
    let dyt_len = oh * ow * ldn;
    let mut dyt = Aligned::zeros(dyt_len);
    let mut aoff = vec![0usize; mr];
    // Blocks of whole output rows, about KC reduction steps each.
    let rows_per_block = (KC / ow.max(1)).clamp(1, oh.max(1));
    for i in 0..x.len() / g.in_image() {
        xp.fill(g, Maps::Dense(x), i);
        let d = dyt.get_mut();
        dy.for_each(g.c_out, oh, ow, i, |values| match values {
            Values::Row(co, oy, row) => {
                for (ox, v) in row.iter().enumerate() {
                    d[(oy * ow + ox) * ldn + co] = *v;
                }
            }
            Values::Point(co, oy, ox, v) => d[(oy * ow + ox) * ldn + co] = v,
        });
        let mut oy0 = 0;
        while oy0 < oh {
            let rows = rows_per_block.min(oh - oy0);
            let steps = Steps {
                rows,
                len: ow,
                stride: xp.pw,
            };
            for nt in 0..ldn / nr {
                let n0 = nt * nr;
                let b = &dyt.get()[oy0 * ow * ldn + n0..dyt_len];
                for rt in 0..r_tiles {
                    for (i, off) in aoff.iter_mut().enumerate() {
                        *off = xp.offsets.get(rt * mr + i).copied().unwrap_or(xp.zeros);
                    }
                    let mut acc = [0.0f32; MAX_TILE];
                    for (i, row) in acc[..mr * nr].chunks_exact_mut(nr).enumerate() {
                        let at = (rt * mr + i) * ldn + n0;
                        row.copy_from_slice(&dwt[at..at + nr]);
                    }
                    T::run_rows_a(steps, &xp.data[oy0 * xp.pw..], &aoff, b, ldn, &mut acc);
                    for (i, row) in acc[..mr * nr].chunks_exact(nr).enumerate() {
                        let at = (rt * mr + i) * ldn + n0;
                        dwt[at..at + nr].copy_from_slice(row);
                    }
                }
            }
            oy0 += rows;
        }
        // Unpooled maps set one position in four: put the zeros back where they were.
        if let Maps::Unpooled(..) = dy {
            let d = dyt.get_mut();
            dy.for_each(g.c_out, oh, ow, i, |values| {
                if let Values::Point(co, oy, ox, _) = values {
                    d[(oy * ow + ox) * ldn + co] = 0.0;
                }
            });
        }
    }
}

/// [`weight_grad_chunk`] for maps of at most `KC / 2` outputs (VGG's 4 × 4, airbench's 7 × 7),
/// `group` images at a time: their padded images side by side in one buffer and their
/// output gradients on the padded grid (zero at the `pw − ow` junk positions of each row),
/// so that each `MR × NR` accumulator tile of `dwt` is loaded once and takes the whole group
/// in one reduction of `group · oh · pw` steps. One image at a time would read and write the
/// whole `dwt` (megabytes for 512 channels) per image, for a few dozen steps each.
#[inline(always)]
fn weight_grad_grouped<T: Tile>(
    g: &ConvGeometry,
    x: &[f32],
    dy: Maps<'_>,
    dwt: &mut [f32],
    group: usize,
) {
    let (mr, nr) = (T::MR, T::NR);
    let (oh, ow) = (g.out_height(), g.out_width());
    let r_tiles = g.k_dim().div_ceil(mr);
    let ldn = round_up(g.c_out, nr);
    let mut xp = Padded::new(g, nr);
    let (pw, image) = (xp.pw, g.c_in * xp.ph * xp.pw);
    let grid = oh * pw;
    // The group's padded images, `image` apart, then zeros as long as any read of a tap row
    // (the rows past `k_dim` of the last tile read there).
    let zeros = group * image;
    let mut stack = vec![0.0f32; 2 * zeros + grid + nr];
    // dyᵀ of each image on the grid: [group][oh·pw][ldn]; junk and padded channels zero.
    let dyt_len = group * grid * ldn;
    let mut dyt = Aligned::zeros(dyt_len);
    let mut aoff = vec![0usize; mr];
    let images = x.len() / g.in_image();
    let mut first = 0;
    while first < images {
        let n = group.min(images - first);
        let d = dyt.get_mut();
        for j in 0..n {
            xp.fill(g, Maps::Dense(x), first + j);
            stack[j * image..(j + 1) * image].copy_from_slice(&xp.data[..image]);
            let base = j * grid;
            dy.for_each(g.c_out, oh, ow, first + j, |values| match values {
                Values::Row(co, oy, row) => {
                    for (ox, v) in row.iter().enumerate() {
                        d[(base + oy * pw + ox) * ldn + co] = *v;
                    }
                }
                Values::Point(co, oy, ox, v) => d[(base + oy * pw + ox) * ldn + co] = v,
            });
        }
        let steps = Steps {
            rows: n,
            len: grid,
            stride: image,
        };
        for nt in 0..ldn / nr {
            let n0 = nt * nr;
            let b = &dyt.get()[n0..dyt_len];
            for rt in 0..r_tiles {
                for (i, off) in aoff.iter_mut().enumerate() {
                    *off = xp.offsets.get(rt * mr + i).copied().unwrap_or(zeros);
                }
                let mut acc = [0.0f32; MAX_TILE];
                for (i, row) in acc[..mr * nr].chunks_exact_mut(nr).enumerate() {
                    let at = (rt * mr + i) * ldn + n0;
                    row.copy_from_slice(&dwt[at..at + nr]);
                }
                T::run_rows_a(steps, &stack, &aoff, b, ldn, &mut acc);
                for (i, row) in acc[..mr * nr].chunks_exact(nr).enumerate() {
                    let at = (rt * mr + i) * ldn + n0;
                    dwt[at..at + nr].copy_from_slice(row);
                }
            }
        }
        // Unpooled maps set one position in four: put the zeros back where they were.
        if let Maps::Unpooled(..) = dy {
            let d = dyt.get_mut();
            for j in 0..n {
                let base = j * grid;
                dy.for_each(g.c_out, oh, ow, first + j, |values| {
                    if let Values::Point(co, oy, ox, _) = values {
                        d[(base + oy * pw + ox) * ldn + co] = 0.0;
                    }
                });
            }
        }
        first += n;
    }
}

/// Whether [`weight_grad_points`] computes the weight gradient of `g` with a weight-gradient
/// tile `nr` wide: behind a pooling (an `unpooled` output gradient), 5 × 5 kernels, input
/// channels a multiple of `nr`, at least one pooling window.
pub(crate) fn points_fit(g: &ConvGeometry, unpooled: bool, nr: usize) -> bool {
    unpooled
        && g.kernel == POINT_TAPS
        && g.c_in > 0
        && g.c_in.is_multiple_of(nr)
        && g.out_height() >= 2
        && g.out_width() >= 2
}

/// [`weight_grad_chunk`] behind a 2×2 max-pooling, from the windows' maxima alone: only one
/// output in four has a non-zero gradient, so `dw[co, ci, kh, kw] = Σ_n Σ_windows v ·
/// x[n, ci, oy + kh − p, ox + kw − p]` over each window's pooled gradient `v` and the
/// position `(oy, ox)` of its maximum — a quarter of the dense products. Each image is copied
/// channels-last inside its zero border, so one tap's input channels are consecutive, and
/// [`Tile::run_points`] keeps a kernel row's taps (`POINT_TAPS × NR` values) in registers
/// while it runs over the windows of one output channel.
///
/// Accumulates into `sums` in its own layout, `[c_out][k][c_in / NR][k][NR]` (kernel row,
/// block of input channels, kernel column, channel in the block), so the partial sums of
/// every task are added as they are and turned around once ([`weight_grad_out`]).
#[inline(always)]
pub(crate) fn weight_grad_points<T: Tile>(
    g: &ConvGeometry,
    x: &[f32],
    vals: &[f32],
    idx: &[u8],
    sums: &mut [f32],
) {
    let (nr, k, c_in) = (T::NR, g.kernel, g.c_in);
    let (h, w, pad) = (g.height, g.width, g.pad);
    let (hp, wp) = (h + 2 * pad, w + 2 * pad);
    let (ph, pw) = pooled_size(g);
    let blocks = c_in / nr;
    let images = x.len() / g.in_image();
    let per = g.c_out * ph * pw;
    // The input rows one pass over the output channels reads stay in L1 (at most 36 KiB):
    // bands of pooled rows where an image does not fit (the tutorial's second layer: 51 KiB
    // padded; 5 of its 8 pooled rows, then 3: 40 and 24 windows a kernel call), several
    // images where it does (its third: 18 KiB, 2 images, 32 windows a call).
    let image_len = hp * wp * c_in;
    let budget = 36 * 1024 / (wp * c_in * std::mem::size_of::<f32>()).max(1);
    let band = (budget.saturating_sub(k - 1) / 2).clamp(1, ph.max(1));
    let group = if band < ph {
        1
    } else {
        (budget / hp.max(1)).clamp(1, images.max(1))
    };
    // `group` padded images, channels last: `xn[i·image_len + (y·wp + x)·c_in + ci]`; the
    // border stays zero. Aligned: a kernel row's loads are whole cache lines when `nr` is a
    // multiple of 16, never split between two.
    let mut xn_buf = Aligned::zeros(group * image_len);
    let xn = xn_buf.get_mut();
    let (mut starts, mut points) = (Vec::new(), Vec::new());
    for first in (0..images).step_by(group) {
        let n = group.min(images - first);
        let chunk = &x[first * g.in_image()..(first + n) * g.in_image()];
        for (i, image) in chunk.chunks_exact(g.in_image()).enumerate() {
            for (ci, plane) in image.chunks_exact(h * w).enumerate() {
                for (y, row) in plane.chunks_exact(w).enumerate() {
                    let at = i * image_len + ((y + pad) * wp + pad) * c_in + ci;
                    for (ix, v) in row.iter().enumerate() {
                        xn[at + ix * c_in] = *v;
                    }
                }
            }
        }
        for py0 in (0..ph).step_by(band) {
            let py1 = (py0 + band).min(ph);
            for co in 0..g.c_out {
                // Each window's pooled gradient, and where its maximum reads its first tap:
                // output (oy, ox) reads the padded image from (oy, ox) on.
                starts.clear();
                points.clear();
                for i in 0..n {
                    let at = (first + i) * per + co * ph * pw;
                    let rows = vals[at..at + ph * pw].chunks_exact(pw);
                    let rows = rows.zip(idx[at..at + ph * pw].chunks_exact(pw));
                    for (py, (vrow, krow)) in rows.enumerate().take(py1).skip(py0) {
                        for (px, (v, kk)) in vrow.iter().zip(krow).enumerate() {
                            let kk = usize::from(*kk & 3);
                            let (oy, ox) = (2 * py + kk / 2, 2 * px + kk % 2);
                            starts.push(i * image_len + (oy * wp + ox) * c_in);
                            points.push(*v);
                        }
                    }
                }
                let starts = Offsets::new(&starts);
                for kh in 0..k {
                    for b in 0..blocks {
                        let a = &xn[kh * wp * c_in + b * nr..];
                        let at = ((co * k + kh) * blocks + b) * k * nr;
                        let acc = &mut sums[at..at + k * nr];
                        T::run_points(a, c_in, starts, &points, acc, nr);
                    }
                }
            }
        }
    }
}

/// The weight gradient `dw` (`[c_out, c_in, k, k]`) out of the sums of
/// [`weight_grad_chunk`] with a weight-gradient tile `nr` wide, for an output gradient that
/// was `unpooled` or not.
pub(crate) fn weight_grad_out(
    g: &ConvGeometry,
    unpooled: bool,
    nr: usize,
    sums: &[f32],
    dw: &mut [f32],
) {
    if !points_fit(g, unpooled, nr) {
        untranspose(g, sums, round_up(g.c_out, nr), dw);
        return;
    }
    // From `[c_out][k][c_in / nr][k][nr]` (see `weight_grad_points`), one output channel at a
    // time.
    let (k, k_dim) = (g.kernel, g.k_dim());
    for (dw_co, s_co) in dw.chunks_exact_mut(k_dim).zip(sums.chunks_exact(k_dim)) {
        for (kh, s_kh) in s_co.chunks_exact(k_dim / k).enumerate() {
            for (b, s_b) in s_kh.chunks_exact(k * nr).enumerate() {
                for (kw, lanes) in s_b.chunks_exact(nr).enumerate() {
                    for (j, v) in lanes.iter().enumerate() {
                        dw_co[((b * nr + j) * k + kh) * k + kw] = *v;
                    }
                }
            }
        }
    }
}

/// [`weight_grad_chunk`] for output rows exactly 32 wide, with the instruction set's
/// [`Wgrad32Fn`]: each image's output gradient made dense once (`[c_out][oh][32]`), lane sums
/// kept per (channel, tap) over the chunk, added into `dwt` at the end.
#[inline(always)]
pub(crate) fn weight_grad_rows32(
    g: &ConvGeometry,
    x: &[f32],
    dy: Maps<'_>,
    dwt: &mut [f32],
    ldn: usize,
    nr: usize,
    wgrad32: Wgrad32Fn,
) {
    let (oh, ow) = (g.out_height(), g.out_width());
    let k_dim = g.k_dim();
    let groups = k_dim.div_ceil(4);
    let mut xp = Padded::new(g, nr);
    let mut sums = vec![0.0f32; g.c_out / 4 * groups * 256];
    let mut dense = vec![0.0f32; g.c_out * oh * ow];
    for i in 0..x.len() / g.in_image() {
        xp.fill(g, Maps::Dense(x), i);
        if let Maps::Unpooled(..) = dy {
            dense.fill(0.0);
        }
        dy.for_each(g.c_out, oh, ow, i, |values| match values {
            Values::Row(co, oy, row) => {
                dense[(co * oh + oy) * ow..][..ow].copy_from_slice(row);
            }
            Values::Point(co, oy, ox, v) => dense[(co * oh + oy) * ow + ox] = v,
        });
        for (cg, tiles) in sums.chunks_exact_mut(groups * 256).enumerate() {
            for (tg, tile) in tiles.chunks_exact_mut(256).enumerate() {
                // Taps past the last read the zeros after the image.
                let tap = |t: usize| xp.offsets.get(tg * 4 + t).copied().unwrap_or(xp.zeros);
                let taps = [tap(0), tap(1), tap(2), tap(3)];
                wgrad32(&xp, &taps, &dense, cg * 4, oh, tile);
            }
        }
    }
    for (cg, tiles) in sums.chunks_exact(groups * 256).enumerate() {
        for (tg, tile) in tiles.chunks_exact(256).enumerate() {
            for (ct, lanes) in tile.chunks_exact(16).enumerate() {
                let (c, t) = (ct / 4, ct % 4);
                let r = tg * 4 + t;
                if r < k_dim {
                    dwt[r * ldn + cg * 4 + c] += lanes.iter().sum::<f32>();
                }
            }
        }
    }
}
