//! The input gradient from the windows' maxima (`input_grad_points`).

use super::*;

/// The weights `[c_out, c_in, k, k]` channels-last, `[c_out][k][k][c_in]`, 64-byte aligned:
/// the operand of [`input_grad_points`].
pub(crate) fn point_rows(g: &ConvGeometry, w: &[f32]) -> Aligned {
    let (k, c_in) = (g.kernel, g.c_in);
    let mut rows = Aligned::zeros(w.len());
    for (dst, src) in rows
        .get_mut()
        .chunks_exact_mut(g.k_dim().max(1))
        .zip(w.chunks_exact(g.k_dim().max(1)))
    {
        for (tap, taps) in dst.chunks_exact_mut(c_in.max(1)).enumerate() {
            for (ci, v) in taps.iter_mut().enumerate() {
                *v = src[ci * k * k + tap];
            }
        }
    }
    rows
}

/// The input gradient behind a 2×2 max-pooling of consecutive images, from the windows'
/// maxima alone (where [`points_fit`]): each window's maximum `(oy, ox)` of channel `co`
/// adds `v · w[co, :, kh, kw]` to the input at `(oy + kh − p, ox + kw − p)` — a quarter of
/// the dense products. A window's output channels are grouped by the position of their
/// maximum, so each group adds into the same input rows: [`Tile::run_points`] sums a kernel
/// row's `POINT_TAPS × NR` values over the group in registers and adds them into a
/// channels-last copy of the image's gradient once. `w_points` is [`point_rows`]; `dx`
/// (`[images, c_in, h, w]`) is overwritten.
#[inline(always)]
pub(crate) fn input_grad_points<T: Tile>(
    g: &ConvGeometry,
    vals: &[f32],
    idx: &[u8],
    w_points: &[f32],
    dx: &mut [f32],
) {
    let (nr, k, c_in, c_out) = (T::NR, g.kernel, g.c_in, g.c_out);
    let (h, w, pad) = (g.height, g.width, g.pad);
    let wp = w + 2 * pad;
    let (ph, pw) = pooled_size(g);
    let windows = ph * pw;
    let per = c_out * windows;
    // The padded image's gradient, channels last: `dxn[(y·wp + x)·c_in + ci]`.
    let mut dxn_buf = Aligned::zeros((h + 2 * pad) * wp * c_in);
    let dxn = dxn_buf.get_mut();
    // Window `p`'s output channels grouped by the position of their maximum:
    // `starts[p·c_out..]` (each channel's weights in `w_points`) and `points` (its pooled
    // gradient), position `kk`'s group ending at `ends[p·4 + kk]`.
    let (mut starts, mut points) = (vec![0usize; per], vec![0.0f32; per]);
    let mut ends = vec![0usize; windows * 4];
    for (i, dxi) in dx.chunks_exact_mut(g.in_image()).enumerate() {
        let (iv, ii) = (&vals[i * per..(i + 1) * per], &idx[i * per..(i + 1) * per]);
        for p in 0..windows {
            let mut count = [0usize; 4];
            for co in 0..c_out {
                count[usize::from(ii[co * windows + p] & 3)] += 1;
            }
            let mut next = [0usize; 4];
            let mut end = p * c_out;
            for kk in 0..4 {
                next[kk] = end;
                end += count[kk];
                ends[p * 4 + kk] = end;
            }
            for co in 0..c_out {
                let kk = usize::from(ii[co * windows + p] & 3);
                starts[next[kk]] = co * k * k * c_in;
                points[next[kk]] = iv[co * windows + p];
                next[kk] += 1;
            }
        }
        dxn.fill(0.0);
        let all = Offsets::new(&starts);
        // One kernel row at a time, so its weights (`c_out × k × c_in` values) stay in L1.
        for kh in 0..k {
            for p in 0..windows {
                let (py, px) = (p / pw, p % pw);
                let mut from = p * c_out;
                for kk in 0..4 {
                    let to = ends[p * 4 + kk];
                    if to > from {
                        let (oy, ox) = (2 * py + kk / 2, 2 * px + kk % 2);
                        let at = ((oy + kh) * wp + ox) * c_in;
                        for b in 0..c_in / nr {
                            let a = &w_points[kh * k * c_in + b * nr..];
                            let acc = &mut dxn[at + b * nr..];
                            let group = all.part(from..to);
                            T::run_points(a, c_in, group, &points[from..to], acc, c_in);
                        }
                    }
                    from = to;
                }
            }
        }
        // Out of the border, channels first.
        for (ci, plane) in dxi.chunks_exact_mut(h * w).enumerate() {
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                let at = ((y + pad) * wp + pad) * c_in + ci;
                for (ix, v) in row.iter_mut().enumerate() {
                    *v = dxn[at + ix * c_in];
                }
            }
        }
    }
}
