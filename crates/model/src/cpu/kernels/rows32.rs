//! Kernels for output rows exactly 32 wide (the first layer): the fused forward + pooling
//! (AVX-512, AVX2) and the weight gradient (AVX-512) with a row in the lanes of the vectors.

use super::*;

/// A fused convolution + 2×2 max-pooling of one pair of output rows exactly 32 wide, for 4
/// output channels: `(padded image, top output row, weight rows [k_dim][ldn], first channel,
/// its 4 biases, pooled output, window positions, offset of the first channel's pooled row,
/// pooled plane size)`. Pooled values and window positions are written as in
/// [`Out::Pooled`].
pub(crate) type Pool32Fn =
    fn(&Padded, usize, &[f32], usize, usize, &[f32; 4], &mut [f32], &mut [u8], usize, usize);

/// Whether every read and write of a [`Pool32Fn`] call stays inside its slices: rows `oy`,
/// `oy + 1` of the padded image (32 values from each tap's offset), 4 columns of weight rows
/// from `co0`, and 16 pooled values of 4 channels from `at`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pool_pair32_in_bounds(
    xp: &Padded,
    oy: usize,
    w_rows: &[f32],
    ldn: usize,
    co0: usize,
    y: &[f32],
    idx: &[u8],
    at: usize,
    plane: usize,
) -> bool {
    let k_dim = xp.offsets.len();
    let max_off = xp.offsets.last().copied().unwrap_or(0);
    max_off + (oy + 1) * xp.pw + 32 <= xp.data.len()
        && (k_dim == 0 || (k_dim - 1) * ldn + co0 + 4 <= w_rows.len())
        && at + 3 * plane + 16 <= y.len().min(idx.len())
}

/// [`Pool32Fn`] on AVX-512: each output row lies in the lanes of two vectors (the reverse of
/// the [`Tile`] layout), so the pooling and the stores of a pooled row — 16 values per
/// channel — are whole-vector operations. Made for a first layer: with few input channels
/// the general tile spends more time moving its outputs than multiplying.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pool_pair32_avx512(
    xp: &Padded,
    oy: usize,
    w_rows: &[f32],
    ldn: usize,
    co0: usize,
    bias: &[f32; 4],
    y: &mut [f32],
    idx: &mut [u8],
    at: usize,
    plane: usize,
) {
    assert!(pool_pair32_in_bounds(
        xp, oy, w_rows, ldn, co0, y, idx, at, plane
    ));
    // SAFETY: only reachable through `Isa::supported`, which found AVX-512F; the bounds of every
    // read and write were checked just above.
    #[allow(unsafe_code)]
    unsafe {
        avx512_pool_pair32(
            xp.data.as_ptr().add(oy * xp.pw),
            xp.pw,
            &xp.offsets,
            w_rows.as_ptr().add(co0),
            ldn,
            bias,
            y.as_mut_ptr().add(at),
            idx.as_mut_ptr().add(at),
            plane,
        )
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_pool_pair32(
    x: *const f32,
    pw: usize,
    offsets: &[usize],
    w: *const f32,
    ldn: usize,
    bias: &[f32; 4],
    y: *mut f32,
    idx: *mut u8,
    plane: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller checked the bounds (`pool_pair32_avx512`).
    unsafe {
        // c[channel][row][half]: outputs (oy + row, 16·half + lane).
        let mut c = [[[_mm512_setzero_ps(); 2]; 2]; 4];
        for (ci, b) in c.iter_mut().zip(bias) {
            let b = _mm512_set1_ps(*b);
            *ci = [[b, b], [b, b]];
        }
        for (k, off) in offsets.iter().enumerate() {
            let r0 = x.add(*off);
            let r1 = r0.add(pw);
            let a = [
                [_mm512_loadu_ps(r0), _mm512_loadu_ps(r0.add(16))],
                [_mm512_loadu_ps(r1), _mm512_loadu_ps(r1.add(16))],
            ];
            let wk = w.add(k * ldn);
            for (i, ci) in c.iter_mut().enumerate() {
                let wi = _mm512_set1_ps(*wk.add(i));
                for (cr, ar) in ci.iter_mut().zip(&a) {
                    cr[0] = _mm512_fmadd_ps(wi, ar[0], cr[0]);
                    cr[1] = _mm512_fmadd_ps(wi, ar[1], cr[1]);
                }
            }
        }
        // Window px of a row pair: columns 2px (even lanes) and 2px + 1 (odd lanes) of both
        // rows, in row-major order; first maximum wins, NaN wins.
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        for (i, ci) in c.iter().enumerate() {
            let v = [
                _mm512_permutex2var_ps(ci[0][0], even, ci[0][1]),
                _mm512_permutex2var_ps(ci[0][0], odd, ci[0][1]),
                _mm512_permutex2var_ps(ci[1][0], even, ci[1][1]),
                _mm512_permutex2var_ps(ci[1][0], odd, ci[1][1]),
            ];
            let mut best = v[0];
            let mut which = _mm512_setzero_si512();
            for (k, vk) in v.iter().enumerate().skip(1) {
                let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(*vk, best);
                let v_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(*vk, *vk);
                let best_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
                let take = greater | (v_nan & !best_nan);
                best = _mm512_mask_blend_ps(take, best, *vk);
                which = _mm512_mask_blend_epi32(take, which, _mm512_set1_epi32(k as i32));
            }
            _mm512_storeu_ps(y.add(i * plane), best);
            _mm_storeu_si128(
                idx.add(i * plane).cast::<__m128i>(),
                _mm512_cvtepi32_epi8(which),
            );
        }
    }
}

/// Weight-gradient partial sums for output rows exactly 32 wide, 4 output channels × 4 taps:
/// `(padded image, offsets of the 4 taps in it, dense output gradient [c_out][oh][32] of one
/// image, first channel, oh, 16 lane sums per (channel, tap) to add to)`.
/// `sums[(c·4 + t)·16 + lane]` += `Σ_{oy, ox ≡ lane mod 16} dy[co0 + c, oy, ox] ·
/// x[taps[t] + oy·pw + ox]`.
pub(crate) type Wgrad32Fn = fn(&Padded, &[usize; 4], &[f32], usize, usize, &mut [f32]);

/// [`Wgrad32Fn`] on AVX-512: positions in the lanes, so the output gradient is read as whole
/// rows and never transposed. Made for a first layer (see [`pool_pair32_avx512`]).
#[cfg(target_arch = "x86_64")]
pub(crate) fn wgrad32_avx512(
    xp: &Padded,
    taps: &[usize; 4],
    dy: &[f32],
    co0: usize,
    rows: usize,
    sums: &mut [f32],
) {
    let plane = rows * 32;
    let max_tap = taps.iter().copied().max().unwrap_or(0);
    assert!(
        rows > 0
            && max_tap + (rows - 1) * xp.pw + 32 <= xp.data.len()
            && (co0 + 4) * plane <= dy.len()
            && sums.len() >= 256
    );
    // SAFETY: only reachable through `Isa::supported`, which found AVX-512F; the bounds of every
    // read and write were checked just above.
    #[allow(unsafe_code)]
    unsafe {
        avx512_wgrad32(
            xp.data.as_ptr(),
            xp.pw,
            taps,
            dy.as_ptr().add(co0 * plane),
            plane,
            rows,
            sums.as_mut_ptr(),
        )
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_wgrad32(
    x: *const f32,
    pw: usize,
    taps: &[usize; 4],
    dy: *const f32,
    plane: usize,
    rows: usize,
    sums: *mut f32,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller checked the bounds (`wgrad32_avx512`).
    unsafe {
        // c[channel][tap]
        let mut c = [[_mm512_setzero_ps(); 4]; 4];
        for (i, ci) in c.iter_mut().enumerate() {
            for (t, ct) in ci.iter_mut().enumerate() {
                *ct = _mm512_loadu_ps(sums.add((i * 4 + t) * 16));
            }
        }
        for oy in 0..rows {
            for half in [0, 16] {
                let at = oy * pw + half;
                let xs = [
                    _mm512_loadu_ps(x.add(taps[0] + at)),
                    _mm512_loadu_ps(x.add(taps[1] + at)),
                    _mm512_loadu_ps(x.add(taps[2] + at)),
                    _mm512_loadu_ps(x.add(taps[3] + at)),
                ];
                for (i, ci) in c.iter_mut().enumerate() {
                    let d = _mm512_loadu_ps(dy.add(i * plane + oy * 32 + half));
                    for (ct, xt) in ci.iter_mut().zip(&xs) {
                        *ct = _mm512_fmadd_ps(d, *xt, *ct);
                    }
                }
            }
        }
        for (i, ci) in c.iter().enumerate() {
            for (t, ct) in ci.iter().enumerate() {
                _mm512_storeu_ps(sums.add((i * 4 + t) * 16), *ct);
            }
        }
    }
}

/// [`Pool32Fn`] on AVX2 + FMA: as [`pool_pair32_avx512`], with 8-lane vectors, so each call
/// of the micro-kernel covers 2 channels and half a row pair (16 registers are few).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pool_pair32_avx2(
    xp: &Padded,
    oy: usize,
    w_rows: &[f32],
    ldn: usize,
    co0: usize,
    bias: &[f32; 4],
    y: &mut [f32],
    idx: &mut [u8],
    at: usize,
    plane: usize,
) {
    assert!(pool_pair32_in_bounds(
        xp, oy, w_rows, ldn, co0, y, idx, at, plane
    ));
    for c in [0, 2] {
        for half in [0, 16] {
            // SAFETY: only reachable through `Isa::supported`, which found AVX2 and FMA; the
            // bounds of every read and write were checked just above (channels c, c + 1 of 4,
            // positions half..half + 16 of 32).
            #[allow(unsafe_code)]
            unsafe {
                avx2_pool_pair16(
                    xp.data.as_ptr().add(oy * xp.pw + half),
                    xp.pw,
                    &xp.offsets,
                    w_rows.as_ptr().add(co0 + c),
                    ldn,
                    [bias[c], bias[c + 1]],
                    y.as_mut_ptr().add(at + c * plane + half / 2),
                    idx.as_mut_ptr().add(at + c * plane + half / 2),
                    plane,
                )
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_pool_pair16(
    x: *const f32,
    pw: usize,
    offsets: &[usize],
    w: *const f32,
    ldn: usize,
    bias: [f32; 2],
    y: *mut f32,
    idx: *mut u8,
    plane: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller checked the bounds (`pool_pair32_avx2`).
    unsafe {
        // c[channel][row][half]: outputs (oy + row, 8·half + lane).
        let mut c = [[[_mm256_setzero_ps(); 2]; 2]; 2];
        for (ci, b) in c.iter_mut().zip(bias) {
            let b = _mm256_set1_ps(b);
            *ci = [[b, b], [b, b]];
        }
        for (k, off) in offsets.iter().enumerate() {
            let r0 = x.add(*off);
            let r1 = r0.add(pw);
            let a = [
                [_mm256_loadu_ps(r0), _mm256_loadu_ps(r0.add(8))],
                [_mm256_loadu_ps(r1), _mm256_loadu_ps(r1.add(8))],
            ];
            let wk = w.add(k * ldn);
            for (i, ci) in c.iter_mut().enumerate() {
                let wi = _mm256_set1_ps(*wk.add(i));
                for (cr, ar) in ci.iter_mut().zip(&a) {
                    cr[0] = _mm256_fmadd_ps(wi, ar[0], cr[0]);
                    cr[1] = _mm256_fmadd_ps(wi, ar[1], cr[1]);
                }
            }
        }
        // Even and odd columns of a row of 16, in order (the shuffle works per 128-bit half,
        // the permute puts the 64-bit pieces back in order).
        let even = |a: __m256, b: __m256| {
            let v = _mm256_castps_pd(_mm256_shuffle_ps::<0b10_00_10_00>(a, b));
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(v))
        };
        let odd = |a: __m256, b: __m256| {
            let v = _mm256_castps_pd(_mm256_shuffle_ps::<0b11_01_11_01>(a, b));
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(v))
        };
        for (i, ci) in c.iter().enumerate() {
            let v = [
                even(ci[0][0], ci[0][1]),
                odd(ci[0][0], ci[0][1]),
                even(ci[1][0], ci[1][1]),
                odd(ci[1][0], ci[1][1]),
            ];
            // First maximum in row-major window order wins; NaN wins.
            let mut best = v[0];
            let mut which = _mm256_setzero_si256();
            for (k, vk) in v.iter().enumerate().skip(1) {
                let greater = _mm256_cmp_ps::<_CMP_GT_OQ>(*vk, best);
                let v_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(*vk, *vk);
                let best_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(best, best);
                let take = _mm256_or_ps(greater, _mm256_andnot_ps(best_nan, v_nan));
                best = _mm256_blendv_ps(best, *vk, take);
                let k = _mm256_set1_epi32(k as i32);
                which = _mm256_blendv_epi8(which, k, _mm256_castps_si256(take));
            }
            _mm256_storeu_ps(y.add(i * plane), best);
            let words = _mm_packs_epi32(
                _mm256_castsi256_si128(which),
                _mm256_extracti128_si256::<1>(which),
            );
            _mm_storel_epi64(
                idx.add(i * plane).cast::<__m128i>(),
                _mm_packus_epi16(words, words),
            );
        }
    }
}

/// Whether the kernels for output rows exactly 32 wide ([`Pool32Fn`], [`Wgrad32Fn`]) fit `g`.
pub(crate) fn rows32(g: &ConvGeometry) -> bool {
    g.out_width() == 32 && g.c_out.is_multiple_of(4)
}

/// The [`Pool32Fn`] that computes a whole image of `out`, where `T` has one and it fits.
pub(crate) fn pool32_for<T: ShiftTile>(g: &ConvGeometry, out: &Out<'_>) -> Option<Pool32Fn> {
    match out {
        Out::Pooled(..) if rows32(g) => T::POOL32,
        _ => None,
    }
}
