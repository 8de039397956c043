//! bf16 convolutions (forward, and the input gradient as the forward of `dy`): bf16 inputs and
//! weights into the products, `f32` accumulation and outputs, as `torch.autocast("cpu",
//! torch.bfloat16)` does for a convolution.
//!
//! The operands are packed once per call into pairs of bf16 along the input channels: slot
//! `(n, j, y, x)` of a `[n, ⌈c / 2⌉, h, w]` buffer of 32-bit slots holds channel `2j` in its
//! low half and `2j + 1` in its high half (an odd channel count is padded with a zero
//! channel). The weights are packed the same way. A convolution over `c` channels of `f32` is
//! then a convolution over `⌈c / 2⌉` channels of slots, which the forward driver
//! ([`forward_chunk`]) runs unchanged on a [`ShiftTile`] whose "multiply" is the pairs' dot
//! product: `acc += a.hi · b.hi; acc += a.lo · b.lo` (`vdpbf16ps`, AVX512-BF16). The product
//! of two bf16 is exact in `f32`, so that is two exactly rounded additions; the portable tile
//! computes exactly the same (with the instruction's denormals-are-zero), so the emulated path
//! gives the same bits on every CPU and tests the same rounding.
//!
//! Hand-written because Burn 0.22.1's Flex backend has no bf16 convolution (its `bf16`
//! tensors convert to `f32` and back around an `f32` one).

use super::*;

use std::sync::OnceLock;

use crate::precision::{Precision, precision};

/// `x` rounded to bf16 (to nearest, ties to even; a NaN stays a NaN), as its 16 bits.
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        // Quiet, and never rounded into an infinity.
        return ((bits >> 16) as u16) | 0x40;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// `x` rounded to bf16, as an `f32` (the value the bf16 products see).
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits(u32::from(bf16_bits(x)) << 16)
}

/// The two bf16 of a slot as `f32` (low, high), denormals read as zero (as `vdpbf16ps` does).
#[inline(always)]
fn halves(slot: f32) -> (f32, f32) {
    let bits = slot.to_bits();
    let daz = |b: u32| {
        if b & 0x7f80_0000 == 0 {
            b & 0x8000_0000
        } else {
            b
        }
    };
    (
        f32::from_bits(daz(bits << 16)),
        f32::from_bits(daz(bits & 0xffff_0000)),
    )
}

/// Packs `n` images of maps `[c, h, w]` into bf16 pairs along the channels: `[n, ⌈c / 2⌉, h,
/// w]` slots (see the module). Unpooled maps are unpooled on the way.
pub(crate) fn pack_pairs(maps: Maps<'_>, n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let (plane, pairs) = (h * w, c.div_ceil(2));
    let mut out = vec![0.0f32; n * pairs * plane];
    if plane == 0 || pairs == 0 {
        return out;
    }
    let put = |slots: &mut [f32], values: &[f32], shift: u32| {
        for (s, v) in slots.iter_mut().zip(values) {
            let bits = s.to_bits() | (u32::from(bf16_bits(*v)) << shift);
            *s = f32::from_bits(bits);
        }
    };
    out.par_chunks_mut(pairs * plane)
        .enumerate()
        .for_each(|(i, image)| match maps {
            Maps::Dense(v) => {
                let src = &v[i * c * plane..(i + 1) * c * plane];
                for (ch, values) in src.chunks_exact(plane).enumerate() {
                    let slots = &mut image[(ch / 2) * plane..][..plane];
                    put(slots, values, 16 * (ch as u32 & 1));
                }
            }
            Maps::Unpooled(..) => maps.for_each(c, h, w, i, |values| match values {
                Values::Row(ch, y, row) => {
                    let slots = &mut image[(ch / 2 * h + y) * w..][..w];
                    put(slots, row, 16 * (ch as u32 & 1));
                }
                Values::Point(ch, y, x, v) => {
                    let at = (ch / 2 * h + y) * w + x;
                    put(&mut image[at..at + 1], &[v], 16 * (ch as u32 & 1));
                }
            }),
        });
    out
}

/// Plain Rust bf16 tile, any CPU: 4 × 8, the same rounding as `vdpbf16ps`.
pub(crate) struct PortableBf16Tile;

impl ShiftTile for PortableBf16Tile {
    const MR: usize = 4;
    const NR: usize = 8;
    #[inline(always)]
    fn run_shift_a(a: &[f32], aoff: Offsets<'_>, b: &[f32], ldb: usize, acc: &mut [f32]) {
        for (k, off) in aoff.list.iter().enumerate() {
            let bk = &b[k * ldb..k * ldb + Self::NR];
            for (i, ai) in a[*off..*off + Self::MR].iter().enumerate() {
                let (alo, ahi) = halves(*ai);
                let row = &mut acc[i * Self::NR..(i + 1) * Self::NR];
                for (c, bj) in row.iter_mut().zip(bk) {
                    let (blo, bhi) = halves(*bj);
                    *c = alo.mul_add(blo, ahi.mul_add(bhi, *c));
                }
            }
        }
    }
}

/// AVX512-BF16 tile: 8 × 32 (two vectors of 16 `f32` accumulators per row, each multiply a
/// `vdpbf16ps` of 16 pairs).
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx512Bf16Tile;

#[cfg(target_arch = "x86_64")]
impl ShiftTile for Avx512Bf16Tile {
    const MR: usize = 8;
    const NR: usize = 32;
    #[inline(always)]
    fn run_shift_a(a: &[f32], aoff: Offsets<'_>, b: &[f32], ldb: usize, acc: &mut [f32]) {
        assert!(shift_a_in_bounds(Self::MR, Self::NR, a, aoff, b, ldb, acc));
        // SAFETY: this tile runs only after `Bf16Isa::detect` found the CPU features; the
        // bounds of every read and write were checked just above.
        #[allow(unsafe_code)]
        unsafe {
            avx512bf16_shift_a(a.as_ptr(), aoff.list, b.as_ptr(), ldb, acc.as_mut_ptr())
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn avx512bf16_shift_a(
    a: *const f32,
    aoff: &[usize],
    b: *const f32,
    ldb: usize,
    acc: *mut f32,
) {
    use std::arch::x86_64::*;
    // 16 pairs of bf16 in the 16 slots of an `f32` vector: the same 512 bits.
    #[inline(always)]
    fn pairs(v: __m512) -> __m512bh {
        // SAFETY: both are plain 512-bit vectors; every bit pattern is valid for either.
        #[allow(unsafe_code)]
        unsafe {
            std::mem::transmute::<__m512, __m512bh>(v)
        }
    }
    // SAFETY (whole body): the caller checked `shift_a_in_bounds`.
    unsafe {
        let mut c = [[_mm512_setzero_ps(); 2]; 8];
        for (i, ci) in c.iter_mut().enumerate() {
            ci[0] = _mm512_loadu_ps(acc.add(i * 32));
            ci[1] = _mm512_loadu_ps(acc.add(i * 32 + 16));
        }
        for (k, off) in aoff.iter().enumerate() {
            let bk = b.add(k * ldb);
            let b0 = pairs(_mm512_loadu_ps(bk));
            let b1 = pairs(_mm512_loadu_ps(bk.add(16)));
            let ak = a.add(*off);
            for (i, ci) in c.iter_mut().enumerate() {
                let ai = pairs(_mm512_set1_ps(*ak.add(i)));
                ci[0] = _mm512_dpbf16_ps(ci[0], ai, b0);
                ci[1] = _mm512_dpbf16_ps(ci[1], ai, b1);
            }
        }
        for (i, ci) in c.iter().enumerate() {
            _mm512_storeu_ps(acc.add(i * 32), ci[0]);
            _mm512_storeu_ps(acc.add(i * 32 + 16), ci[1]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn forward_avx512bf16(g: &ConvGeometry, x: Maps<'_>, w: &[f32], b: Option<&[f32]>, out: Out<'_>) {
    #[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
    fn inner(g: &ConvGeometry, x: Maps<'_>, w: &[f32], b: Option<&[f32]>, out: Out<'_>) {
        forward_chunk::<Avx512Bf16Tile>(g, x, w, b, out)
    }
    // SAFETY: only reachable through `Bf16Isa::detect`, which checked these CPU features.
    #[allow(unsafe_code)]
    unsafe {
        inner(g, x, w, b, out)
    }
}

fn forward_portable_bf16(
    g: &ConvGeometry,
    x: Maps<'_>,
    w: &[f32],
    b: Option<&[f32]>,
    out: Out<'_>,
) {
    forward_chunk::<PortableBf16Tile>(g, x, w, b, out)
}

/// The instruction set of the bf16 kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Isa {
    /// AVX512-BF16 (`vdpbf16ps`): 8 × 32 tiles.
    Avx512Bf16,
    /// Plain Rust with the same rounding, any CPU: for tests and reference, slower than fp32.
    Emulated,
}

impl Bf16Isa {
    /// The bf16 instruction set this CPU has (`None` without one: fp32 is faster there than
    /// the emulation); `TORCHLET_CPU_ISA` below `avx512` rules AVX512-BF16 out too.
    pub fn detect() -> Option<Bf16Isa> {
        static FOUND: OnceLock<Option<Bf16Isa>> = OnceLock::new();
        *FOUND.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            if Isa::detect() == Isa::Avx512 && std::is_x86_feature_detected!("avx512bf16") {
                return Some(Bf16Isa::Avx512Bf16);
            }
            None
        })
    }

    /// The instruction sets the bf16 kernels can run with on this CPU, best first.
    pub fn supported() -> Vec<Bf16Isa> {
        Bf16Isa::detect()
            .into_iter()
            .chain([Bf16Isa::Emulated])
            .collect()
    }
}

/// The bf16 kernels the convolutions run on now: `Some` when [`precision`] is bf16 and the
/// CPU has them. Asking for bf16 on a CPU without is logged once.
pub fn bf16_active() -> Option<Bf16Isa> {
    if precision() != Precision::Bf16 {
        return None;
    }
    let found = Bf16Isa::detect();
    if found.is_none() {
        static SAID: OnceLock<()> = OnceLock::new();
        SAID.get_or_init(|| {
            tracing::warn!("bf16 asked for, but this CPU has no AVX512-BF16: computing in f32")
        });
    }
    found
}

/// What [`Precision`] `p` computes in on this CPU, in words (for a run's first line):
/// `bf16 (AVX512-BF16)`, `f32`, or `f32 (bf16 asked for; this CPU has no AVX512-BF16)`.
pub fn describe(p: Precision) -> String {
    match (p, Bf16Isa::detect()) {
        (Precision::F32, _) => "f32".into(),
        (Precision::Bf16, Some(Bf16Isa::Avx512Bf16)) => "bf16 (AVX512-BF16)".into(),
        (Precision::Bf16, _) => "f32 (bf16 asked for; this CPU has no AVX512-BF16)".into(),
    }
}

/// Forward convolution with bf16 products (see the module): `x` dense or unpooled
/// `[batch, c_in, h, w]`, `w` `[c_out, c_in, k, k]`, `out` as for the fp32 forward.
pub(crate) fn forward_bf16_on(
    isa: Bf16Isa,
    g: &ConvGeometry,
    x: Maps<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    out: Out<'_>,
) {
    let xq = pack_pairs(x, g.batch, g.c_in, g.height, g.width);
    let wq = pack_pairs(Maps::Dense(w), g.c_out, g.c_in, g.kernel, g.kernel);
    let g2 = ConvGeometry {
        c_in: g.c_in.div_ceil(2),
        ..*g
    };
    let x2 = Maps::Dense(&xq);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Bf16Isa::Avx512Bf16 => {
            forward_generic::<Avx512Bf16Tile>(&g2, x2, &wq, bias, out, forward_avx512bf16)
        }
        _ => forward_generic::<PortableBf16Tile>(&g2, x2, &wq, bias, out, forward_portable_bf16),
    }
}

/// The input gradient with bf16 products: the bf16 forward of `dy` with the kernel flipped.
pub(crate) fn input_grad_bf16_on(
    isa: Bf16Isa,
    g: &ConvGeometry,
    dy: Maps<'_>,
    w: &[f32],
    dx: &mut [f32],
) {
    let wt = flipped(g, w);
    forward_bf16_on(isa, &g.transposed(), dy, &wt, None, Out::Conv(dx));
}

/// [`conv2d_forward`] with bf16 products on the kernels of `isa` (one of
/// [`Bf16Isa::supported`]).
pub fn conv2d_forward_bf16(
    isa: Bf16Isa,
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
    forward_bf16_on(isa, g, Maps::Dense(x), w, bias, Out::Conv(y));
    Some(())
}

/// [`conv2d_input_grad`] with bf16 products on the kernels of `isa`.
pub fn conv2d_input_grad_bf16(
    isa: Bf16Isa,
    g: &ConvGeometry,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) -> Option<()> {
    check(g, dx.len(), w.len(), dy.len())?;
    if g.pad >= g.kernel {
        return None;
    }
    input_grad_bf16_on(isa, g, Maps::Dense(dy), w, dx);
    Some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::tests::{max_diff, naive_forward, values};
    use super::*;

    fn rounded(v: &[f32]) -> Vec<f32> {
        v.iter().copied().map(round_bf16).collect()
    }

    /// Geometries of every kind the driver has: odd channel counts (a zero channel pads the
    /// last pair), rows narrower than a tile, small maps in groups, airbench94's 2 × 2 and
    /// 3 × 3 layers on odd maps, and a wide 5 × 5 layer.
    const GEOMETRIES: [ConvGeometry; 5] = [
        ConvGeometry {
            batch: 3,
            c_in: 3,
            c_out: 5,
            height: 7,
            width: 9,
            kernel: 5,
            pad: 2,
        },
        ConvGeometry {
            batch: 2,
            c_in: 3,
            c_out: 24,
            height: 9,
            width: 9,
            kernel: 2,
            pad: 0,
        },
        ConvGeometry {
            batch: 2,
            c_in: 33,
            c_out: 40,
            height: 7,
            width: 7,
            kernel: 3,
            pad: 1,
        },
        ConvGeometry {
            batch: 19,
            c_in: 16,
            c_out: 40,
            height: 3,
            width: 3,
            kernel: 3,
            pad: 1,
        },
        ConvGeometry {
            batch: 4,
            c_in: 32,
            c_out: 64,
            height: 8,
            width: 8,
            kernel: 5,
            pad: 2,
        },
    ];

    /// The reference is PyTorch's rounding:
    /// ```python
    /// v = [1.0, 1.00390625, 1.01171875, 3.4028234663852886e+38, -0.0, 1e-40, -2.5, 0.1]
    /// torch.tensor(v).bfloat16().view(torch.int16)
    /// # 0x3f80, 0x3f80, 0x3f82, 0x7f80, -0x8000, 0x1, -0x3fe0, 0x3dcd
    /// ```
    #[test]
    fn rounding_is_pytorchs_nearest_even() {
        let v = [
            1.0,
            1.003_906_3,
            1.011_718_8,
            f32::MAX,
            -0.0,
            1e-40,
            -2.5,
            0.1,
        ];
        let want = [
            0x3f80u16, 0x3f80, 0x3f82, 0x7f80, 0x8000, 0x0001, 0xc020, 0x3dcd,
        ];
        let got: Vec<u16> = v.iter().copied().map(bf16_bits).collect();
        assert_eq!(got, want);
        assert!(round_bf16(f32::NAN).is_nan());
        assert!(round_bf16(-f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn pairs_pack_two_channels_per_slot_and_unpool() {
        // One image, 3 channels of 2 × 2: slots [2, 2, 2], the last pair's high half zero.
        let x: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        let q = pack_pairs(Maps::Dense(&x), 1, 3, 2, 2);
        let got: Vec<(f32, f32)> = q.iter().map(|s| halves(*s)).collect();
        let want = [
            (1., 5.),
            (2., 6.),
            (3., 7.),
            (4., 8.),
            (9., 0.),
            (10., 0.),
            (11., 0.),
            (12., 0.),
        ];
        assert_eq!(got, want);
        // Unpooled: the value lands at its window's position, zeros elsewhere.
        let (vals, idx) = ([2.0f32, -3.0], [3u8, 1]);
        let q = pack_pairs(Maps::Unpooled(&vals, &idx), 1, 2, 2, 2);
        let got: Vec<(f32, f32)> = q.iter().map(|s| halves(*s)).collect();
        assert_eq!(got, [(0., 0.), (0., -3.), (0., 0.), (2., 0.)]);
    }

    /// Every product sees the operands rounded to bf16, and nothing else is rounded: the
    /// result is the f64 convolution of the rounded operands up to f32 accumulation, and within
    /// bf16's error bound (2⁻⁸ of Σ|x·w|) of the unrounded one.
    #[test]
    fn forward_is_the_convolution_of_rounded_operands() {
        let mut seed = 21;
        for g in GEOMETRIES {
            let x = values(g.batch * g.in_image(), &mut seed);
            let w = values(g.c_out * g.k_dim(), &mut seed);
            let b = values(g.c_out, &mut seed);
            let exact = naive_forward(&g, &rounded(&x), &rounded(&w), &b);
            let unrounded = naive_forward(&g, &x, &w, &b);
            let abs = |v: &[f32]| v.iter().map(|e| e.abs()).collect::<Vec<_>>();
            let bound = naive_forward(&g, &abs(&x), &abs(&w), &vec![0.0; g.c_out]);
            let mut first: Option<Vec<f32>> = None;
            for isa in Bf16Isa::supported() {
                let mut y = vec![f32::NAN; g.batch * g.out_image()];
                conv2d_forward_bf16(isa, &g, &x, &w, Some(&b), &mut y).unwrap();
                let diff = max_diff(&y, &exact);
                assert!(
                    diff < 1e-5,
                    "{isa:?} {g:?}: {diff} from the rounded operands"
                );
                for ((y, u), s) in y.iter().zip(&unrounded).zip(&bound) {
                    assert!(
                        (y - u).abs() <= s / 256.0 + 1e-6,
                        "{isa:?} {g:?}: {y} vs {u}"
                    );
                }
                // The same bits on every instruction set.
                match &first {
                    None => first = Some(y),
                    Some(f) => assert_eq!(&y, f, "{isa:?} {g:?}"),
                }
            }
        }
    }

    #[test]
    fn input_grad_is_the_fp32_one_of_rounded_operands() {
        let mut seed = 22;
        for g in GEOMETRIES {
            let dy = values(g.batch * g.out_image(), &mut seed);
            let w = values(g.c_out * g.k_dim(), &mut seed);
            let mut want = vec![f32::NAN; g.batch * g.in_image()];
            conv2d_input_grad(&g, &rounded(&dy), &rounded(&w), &mut want).unwrap();
            for isa in Bf16Isa::supported() {
                let mut dx = vec![f32::NAN; want.len()];
                conv2d_input_grad_bf16(isa, &g, &dy, &w, &mut dx).unwrap();
                // Two f32 summation orders over up to 1,600 terms.
                let diff = max_diff(&dx, &want);
                assert!(diff < 1e-4, "{isa:?} {g:?}: {diff}");
            }
        }
    }

    /// The pooled forward pools the bf16 convolution; the input gradient of unpooled maps is
    /// that of the dense maps they stand for.
    #[test]
    fn pooling_and_unpooling_round_the_same_way() {
        let mut seed = 23;
        for g in [GEOMETRIES[2], GEOMETRIES[4]] {
            let x = values(g.batch * g.in_image(), &mut seed);
            let w = values(g.c_out * g.k_dim(), &mut seed);
            let (ph, pw) = pooled_size(&g);
            let pooled = g.batch * g.c_out * ph * pw;
            for isa in Bf16Isa::supported() {
                let mut y = vec![f32::NAN; g.batch * g.out_image()];
                forward_bf16_on(isa, &g, Maps::Dense(&x), &w, None, Out::Conv(&mut y));
                let (mut yp, mut idx) = (vec![f32::NAN; pooled], vec![9u8; pooled]);
                let out = Out::Pooled(&mut yp, &mut idx);
                forward_bf16_on(isa, &g, Maps::Dense(&x), &w, None, out);
                let (oh, ow) = (g.out_height(), g.out_width());
                let mut dense = vec![0.0f32; y.len()];
                for (q, (v, k)) in yp.iter().zip(&idx).enumerate() {
                    let (plane, py, px) = (q / (ph * pw), q / pw % ph, q % pw);
                    let (oy, ox) = (2 * py + usize::from(*k / 2), 2 * px + usize::from(*k % 2));
                    let at = plane * oh * ow + oy * ow + ox;
                    assert_eq!(*v, y[at], "{isa:?} {g:?}: the window's maximum");
                    dense[at] = *v;
                }
                let (mut dx, mut dx_dense) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
                input_grad_bf16_on(isa, &g, Maps::Unpooled(&yp, &idx), &w, &mut dx);
                input_grad_bf16_on(isa, &g, Maps::Dense(&dense), &w, &mut dx_dense);
                assert_eq!(dx, dx_dense, "{isa:?} {g:?}");
            }
        }
    }

    #[test]
    fn weight_grad_is_the_fp32_one_of_rounded_operands() {
        let mut seed = 24;
        for g in GEOMETRIES {
            let x = values(g.batch * g.in_image(), &mut seed);
            let dy = values(g.batch * g.out_image(), &mut seed);
            let mut want = vec![f32::NAN; g.c_out * g.k_dim()];
            conv2d_weight_grad(&g, &rounded(&x), &rounded(&dy), &mut want).unwrap();
            let mut first: Option<Vec<f32>> = None;
            for isa in Bf16Isa::supported() {
                let mut dw = vec![f32::NAN; want.len()];
                conv2d_weight_grad_bf16(isa, &g, &x, &dy, &mut dw).unwrap();
                let diff = max_diff(&dw, &want);
                assert!(diff < 1e-4, "{isa:?} {g:?}: {diff}");
                match &first {
                    None => first = Some(dw),
                    Some(f) => assert_eq!(&dw, f, "{isa:?} {g:?}"),
                }
            }
        }
    }

    /// Behind a pooling: the weight gradient of unpooled maps is that of the dense maps.
    #[test]
    fn weight_grad_of_unpooled_maps_is_the_dense_one() {
        let mut seed = 25;
        for g in [GEOMETRIES[2], GEOMETRIES[3]] {
            let x = values(g.batch * g.in_image(), &mut seed);
            let (ph, pw) = pooled_size(&g);
            let vals = values(g.batch * g.c_out * ph * pw, &mut seed);
            let idx: Vec<u8> = (0..vals.len()).map(|i| (i * 7 % 4) as u8).collect();
            let (oh, ow) = (g.out_height(), g.out_width());
            let mut dense = vec![0.0f32; g.batch * g.out_image()];
            for (q, (v, k)) in vals.iter().zip(&idx).enumerate() {
                let (plane, py, px) = (q / (ph * pw), q / pw % ph, q % pw);
                let (oy, ox) = (2 * py + usize::from(*k / 2), 2 * px + usize::from(*k % 2));
                dense[plane * oh * ow + oy * ow + ox] = *v;
            }
            for isa in Bf16Isa::supported() {
                let mut dw = vec![f32::NAN; g.c_out * g.k_dim()];
                weight_grad_bf16_on(isa, &g, &x, Maps::Unpooled(&vals, &idx), &mut dw);
                let mut want = vec![f32::NAN; dw.len()];
                conv2d_weight_grad_bf16(isa, &g, &x, &dense, &mut want).unwrap();
                assert_eq!(dw, want, "{isa:?} {g:?}");
            }
        }
    }

    #[test]
    fn precision_parses_and_wrong_lengths_are_refused() {
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("f32".parse::<Precision>(), Ok(Precision::F32));
        assert!("fp16".parse::<Precision>().unwrap_err().contains("fp16"));
        let g = GEOMETRIES[0];
        let (x, w) = (
            vec![0.0; g.batch * g.in_image()],
            vec![0.0; g.c_out * g.k_dim()],
        );
        let mut y = vec![7.0; g.batch * g.out_image() - 1];
        let isa = Bf16Isa::Emulated;
        assert!(conv2d_forward_bf16(isa, &g, &x, &w, None, &mut y).is_none());
        assert!(y.iter().all(|v| *v == 7.0));
        assert!(conv2d_forward_bf16(isa, &g, &x, &w, Some(&[0.0]), &mut y).is_none());
    }
}
