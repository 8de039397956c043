//! The weight gradient with bf16 products: `dw[co, ci, kh, kw] = Σ_q dy[q, co] · x[q + kh·pw
//! + kw, ci]` over the positions `q` of the zero-padded grid (`ph × pw` per image, the output
//! gradient zero off the `oh × ow` outputs), one GEMM per kernel tap on channels-last copies.
//!
//! The reduction runs over positions, so the bf16 pairs pair neighbouring positions: slot
//! `(s, co)` of the packed output gradient holds `(dy[2s, co], dy[2s + 1, co])`. A tap's
//! offset `kh·pw + kw` is even or odd, so the input is packed twice, pairs starting at even
//! and at odd positions: `(x[2s + parity, ci], x[2s + 1 + parity, ci])`. Every tap then reads
//! whole slots, and the images of a pass lie one after the other, so one reduction runs
//! through all of them (the padding rows between them meet zero gradients). Each tile is
//! `acc[co, ci] += Σ_s dy_s[co] · x_s[ci]`, a [`ShiftTile`] call with the output channels
//! broadcast (`MR`) and the input channels in vectors (`NR`).

use super::*;

/// Padded positions per pass of the reduction: a few images of small maps, one or two of
/// large ones; the packed copies (positions × channels) stay within a few megabytes.
const PASS_POSITIONS: usize = 4096;

/// Packed operands of one pass.
struct Packed {
    /// Output gradient, `[slots][lda]` (`lda` = `c_out` rounded up to `MR`).
    dy: Vec<f32>,
    /// Input from even and from odd positions, `[slots][ldc]` (`ldc` = `c_in` rounded up
    /// to `NR`).
    x: [Aligned; 2],
    /// Slots of the reduction (the pass's positions, halved, rounded up).
    slots: usize,
}

/// ORs the bf16 of `v` into half `half` (0 low, 1 high) of `slot`.
#[inline(always)]
fn put(slot: &mut f32, v: f32, half: usize) {
    *slot = f32::from_bits(slot.to_bits() | (u32::from(bf16_bits(v)) << (16 * half)));
}

/// Packs images `first..first + n` of `x` and `dy` for one pass.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pack(
    g: &ConvGeometry,
    x: &[f32],
    dy: Maps<'_>,
    first: usize,
    n: usize,
    lda: usize,
    ldc: usize,
    p: &mut Packed,
) {
    let (ph, pw) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
    let image = ph * pw;
    p.dy.fill(0.0);
    let [x0, x1] = &mut p.x;
    x0.get_mut().fill(0.0);
    x1.get_mut().fill(0.0);
    let plane = g.height * g.width;
    for j in 0..n {
        let src = &x[(first + j) * g.in_image()..][..g.in_image()];
        for (ci, channel) in src.chunks_exact(plane.max(1)).enumerate() {
            for (iy, row) in channel.chunks_exact(g.width.max(1)).enumerate() {
                let q0 = j * image + (iy + g.pad) * pw + g.pad;
                for (ix, v) in row.iter().enumerate() {
                    let q = q0 + ix;
                    put(&mut p.x[0].get_mut()[(q / 2) * ldc + ci], *v, q % 2);
                    if q > 0 {
                        put(
                            &mut p.x[1].get_mut()[((q - 1) / 2) * ldc + ci],
                            *v,
                            (q - 1) % 2,
                        );
                    }
                }
            }
        }
        let (oh, ow) = (g.out_height(), g.out_width());
        let base = j * image;
        let d = &mut p.dy;
        dy.for_each(g.c_out, oh, ow, first + j, |values| match values {
            Values::Row(co, oy, row) => {
                for (ox, v) in row.iter().enumerate() {
                    let q = base + oy * pw + ox;
                    put(&mut d[(q / 2) * lda + co], *v, q % 2);
                }
            }
            Values::Point(co, oy, ox, v) => {
                let q = base + oy * pw + ox;
                put(&mut d[(q / 2) * lda + co], v, q % 2);
            }
        });
    }
    p.slots = (n * image).div_ceil(2);
}

/// The weight gradient of the images of `x` (a chunk), accumulated into `dwt`:
/// `[k·k][lda][ldc]`, tap-major.
#[inline(always)]
pub(crate) fn weight_grad_bf16_chunk<T: ShiftTile>(
    g: &ConvGeometry,
    x: &[f32],
    dy: Maps<'_>,
    dwt: &mut [f32],
) {
    let (mr, nr, k) = (T::MR, T::NR, g.kernel);
    let (lda, ldc) = (round_up(g.c_out, mr), round_up(g.c_in, nr));
    let (ph, pw) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
    let image = ph * pw;
    let images = x.len() / g.in_image().max(1);
    let per_pass = (PASS_POSITIONS / image.max(1)).clamp(1, images.max(1));
    // Reads reach the pass's slots plus the largest tap offset (halved) past them.
    let reach = (per_pass * image).div_ceil(2) + ((k - 1) * pw + k) / 2 + 1;
    let mut p = Packed {
        dy: vec![0.0; (reach + KC) * lda],
        x: [Aligned::zeros(reach * ldc), Aligned::zeros(reach * ldc)],
        slots: 0,
    };
    let offsets: Vec<usize> = (0..KC).map(|s| s * lda).collect();
    let mut first = 0;
    while first < images {
        let n = per_pass.min(images - first);
        pack(g, x, dy, first, n, lda, ldc, &mut p);
        for t in 0..k * k {
            let off = (t / k) * pw + t % k;
            let (parity, base) = (off % 2, off / 2);
            let tap = &mut dwt[t * lda * ldc..][..lda * ldc];
            let mut s0 = 0;
            while s0 < p.slots {
                let kc = KC.min(p.slots - s0);
                let aoff = Offsets::new(&offsets[..kc]);
                for ci0 in (0..ldc).step_by(nr) {
                    let b = &p.x[parity].get()[(base + s0) * ldc + ci0..];
                    for co0 in (0..lda).step_by(mr) {
                        let mut acc = [0.0f32; MAX_TILE];
                        for (i, row) in acc[..mr * nr].chunks_exact_mut(nr).enumerate() {
                            row.copy_from_slice(&tap[(co0 + i) * ldc + ci0..][..nr]);
                        }
                        T::run_shift_a(&p.dy[s0 * lda + co0..], aoff, b, ldc, &mut acc);
                        for (i, row) in acc[..mr * nr].chunks_exact(nr).enumerate() {
                            tap[(co0 + i) * ldc + ci0..][..nr].copy_from_slice(row);
                        }
                    }
                }
                s0 += kc;
            }
        }
        first += n;
    }
}

/// A bf16 weight-gradient chunk kernel compiled for one instruction set.
type Bf16WeightGradFn = fn(&ConvGeometry, &[f32], Maps<'_>, &mut [f32]);

#[cfg(target_arch = "x86_64")]
fn weight_grad_avx512bf16(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
    #[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
    fn inner(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
        weight_grad_bf16_chunk::<Avx512Bf16Tile>(g, x, dy, dwt)
    }
    // SAFETY: only reachable through `Bf16Isa::detect`, which checked these CPU features.
    #[allow(unsafe_code)]
    unsafe {
        inner(g, x, dy, dwt)
    }
}

fn weight_grad_portable_bf16(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
    weight_grad_bf16_chunk::<PortableBf16Tile>(g, x, dy, dwt)
}

/// The weight gradient with bf16 products on the kernels of `isa`: `x` `[batch, c_in, h, w]`,
/// `dy` dense or unpooled, `dw` `[c_out, c_in, k, k]` (overwritten).
pub(crate) fn weight_grad_bf16_on(
    isa: Bf16Isa,
    g: &ConvGeometry,
    x: &[f32],
    dy: Maps<'_>,
    dw: &mut [f32],
) {
    let (chunk, mr, nr): (Bf16WeightGradFn, usize, usize) = match isa {
        #[cfg(target_arch = "x86_64")]
        Bf16Isa::Avx512Bf16 => (
            weight_grad_avx512bf16,
            Avx512Bf16Tile::MR,
            Avx512Bf16Tile::NR,
        ),
        _ => (
            weight_grad_portable_bf16,
            PortableBf16Tile::MR,
            PortableBf16Tile::NR,
        ),
    };
    let (lda, ldc, taps) = (
        round_up(g.c_out, mr),
        round_up(g.c_in, nr),
        g.kernel * g.kernel,
    );
    let images = chunk_len(g.batch);
    let (oh, ow) = (g.out_height(), g.out_width());
    let len = taps * lda * ldc;
    let sum = x
        .par_chunks(images * g.in_image().max(1))
        .enumerate()
        .map(|(c, xc)| {
            let n = xc.len() / g.in_image().max(1);
            let mut dwt = vec![0.0f32; len];
            chunk(g, xc, dy.images(g.c_out, oh, ow, c * images, n), &mut dwt);
            dwt
        })
        .collect::<Vec<_>>()
        .into_iter()
        // Summed in chunk order: the same bits whatever the thread scheduling.
        .fold(vec![0.0f32; len], |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        });
    for (co, per_co) in dw.chunks_exact_mut(g.k_dim().max(1)).enumerate() {
        for (ci, per_ci) in per_co.chunks_exact_mut(taps).enumerate() {
            for (t, v) in per_ci.iter_mut().enumerate() {
                *v = sum[(t * lda + co) * ldc + ci];
            }
        }
    }
}

/// [`conv2d_weight_grad`] with bf16 products on the kernels of `isa` (one of
/// [`Bf16Isa::supported`]).
pub fn conv2d_weight_grad_bf16(
    isa: Bf16Isa,
    g: &ConvGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) -> Option<()> {
    check(g, x.len(), dw.len(), dy.len())?;
    weight_grad_bf16_on(isa, g, x, Maps::Dense(dy), dw);
    Some(())
}
