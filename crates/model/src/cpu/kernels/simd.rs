//! The AVX-512 and AVX2 + FMA tiles (`std::arch`), generated from one macro.

use super::*;

/// Instantiates an `std::arch` micro-kernel pair for one vector width: `$mr` rows, two vectors
/// of `$lanes` per row.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_tile {
    ($name:ident, $features:literal, $mr:literal, $lanes:literal, $vec:ty,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident,
     $shift_a:ident, $rows_a:ident, $points:ident, $pool32:expr, $wgrad32:expr) => {
        pub(crate) struct $name;

        impl ShiftTile for $name {
            const MR: usize = $mr;
            const NR: usize = 2 * $lanes;
            const POOL32: Option<Pool32Fn> = $pool32;
            #[inline(always)]
            fn run_shift_a(a: &[f32], aoff: Offsets<'_>, b: &[f32], ldb: usize, acc: &mut [f32]) {
                assert!(shift_a_in_bounds(Self::MR, Self::NR, a, aoff, b, ldb, acc));
                // SAFETY: these kernels run only after `Isa::supported` found the CPU features;
                // the bounds of every read and write were checked just above.
                #[allow(unsafe_code)]
                unsafe {
                    $shift_a(a.as_ptr(), aoff.list, b.as_ptr(), ldb, acc.as_mut_ptr())
                }
            }
        }

        impl Tile for $name {
            const WGRAD32: Option<Wgrad32Fn> = $wgrad32;
            #[inline(always)]
            fn run_rows_a(
                steps: Steps,
                a: &[f32],
                aoff: &[usize],
                b: &[f32],
                ldb: usize,
                acc: &mut [f32],
            ) {
                assert!(rows_a_in_bounds(
                    Self::MR,
                    Self::NR,
                    steps,
                    a,
                    aoff,
                    b,
                    ldb,
                    acc
                ));
                // SAFETY: as in `run_shift_a`.
                #[allow(unsafe_code)]
                unsafe {
                    $rows_a(steps, a.as_ptr(), aoff, b.as_ptr(), ldb, acc.as_mut_ptr())
                }
            }
            #[inline(always)]
            fn run_points(
                a: &[f32],
                stride: usize,
                starts: Offsets<'_>,
                vals: &[f32],
                acc: &mut [f32],
                acc_stride: usize,
            ) {
                assert!(points_in_bounds(
                    Self::NR,
                    a,
                    stride,
                    starts,
                    vals,
                    acc,
                    acc_stride
                ));
                // SAFETY: as in `run_shift_a`.
                #[allow(unsafe_code)]
                unsafe {
                    $points(
                        a.as_ptr(),
                        stride,
                        starts.list,
                        vals,
                        acc.as_mut_ptr(),
                        acc_stride,
                    )
                }
            }
        }

        #[allow(unsafe_code)]
        #[target_feature(enable = $features)]
        unsafe fn $points(
            a: *const f32,
            stride: usize,
            starts: &[usize],
            vals: &[f32],
            acc: *mut f32,
            acc_stride: usize,
        ) {
            use std::arch::x86_64::*;
            // SAFETY (whole body): the caller checked `points_in_bounds`.
            unsafe {
                let mut c: [[$vec; 2]; POINT_TAPS] = [[$zero(); 2]; POINT_TAPS];
                for (kw, ck) in c.iter_mut().enumerate() {
                    ck[0] = $load(acc.add(kw * acc_stride));
                    ck[1] = $load(acc.add(kw * acc_stride + $lanes));
                }
                for (s, v) in starts.iter().zip(vals) {
                    let vb = $set1(*v);
                    let at = a.add(*s);
                    for (kw, ck) in c.iter_mut().enumerate() {
                        ck[0] = $fmadd(vb, $load(at.add(kw * stride)), ck[0]);
                        ck[1] = $fmadd(vb, $load(at.add(kw * stride + $lanes)), ck[1]);
                    }
                }
                for (kw, ck) in c.iter().enumerate() {
                    $store(acc.add(kw * acc_stride), ck[0]);
                    $store(acc.add(kw * acc_stride + $lanes), ck[1]);
                }
            }
        }

        #[allow(unsafe_code)]
        #[target_feature(enable = $features)]
        unsafe fn $shift_a(
            a: *const f32,
            aoff: &[usize],
            b: *const f32,
            ldb: usize,
            acc: *mut f32,
        ) {
            use std::arch::x86_64::*;
            // SAFETY (whole body): the caller checked `shift_a_in_bounds`.
            unsafe {
                let mut c: [[$vec; 2]; $mr] = [[$zero(); 2]; $mr];
                for (i, ci) in c.iter_mut().enumerate() {
                    ci[0] = $load(acc.add(i * 2 * $lanes));
                    ci[1] = $load(acc.add(i * 2 * $lanes + $lanes));
                }
                for (k, off) in aoff.iter().enumerate() {
                    let bk = b.add(k * ldb);
                    let b0 = $load(bk);
                    let b1 = $load(bk.add($lanes));
                    let ak = a.add(*off);
                    for (i, ci) in c.iter_mut().enumerate() {
                        let ai = $set1(*ak.add(i));
                        ci[0] = $fmadd(ai, b0, ci[0]);
                        ci[1] = $fmadd(ai, b1, ci[1]);
                    }
                }
                for (i, ci) in c.iter().enumerate() {
                    $store(acc.add(i * 2 * $lanes), ci[0]);
                    $store(acc.add(i * 2 * $lanes + $lanes), ci[1]);
                }
            }
        }

        #[allow(unsafe_code)]
        #[target_feature(enable = $features)]
        unsafe fn $rows_a(
            steps: Steps,
            a: *const f32,
            aoff: &[usize],
            b: *const f32,
            ldb: usize,
            acc: *mut f32,
        ) {
            use std::arch::x86_64::*;
            // SAFETY (whole body): the caller checked `rows_a_in_bounds`.
            unsafe {
                let mut rows = [a; $mr];
                for (row, off) in rows.iter_mut().zip(aoff) {
                    *row = a.add(*off);
                }
                let mut c: [[$vec; 2]; $mr] = [[$zero(); 2]; $mr];
                for (i, ci) in c.iter_mut().enumerate() {
                    ci[0] = $load(acc.add(i * 2 * $lanes));
                    ci[1] = $load(acc.add(i * 2 * $lanes + $lanes));
                }
                let mut bk = b;
                for r in 0..steps.rows {
                    for k in r * steps.stride..r * steps.stride + steps.len {
                        let b0 = $load(bk);
                        let b1 = $load(bk.add($lanes));
                        for (ci, row) in c.iter_mut().zip(&rows) {
                            let ai = $set1(*row.add(k));
                            ci[0] = $fmadd(ai, b0, ci[0]);
                            ci[1] = $fmadd(ai, b1, ci[1]);
                        }
                        bk = bk.add(ldb);
                    }
                }
                for (i, ci) in c.iter().enumerate() {
                    $store(acc.add(i * 2 * $lanes), ci[0]);
                    $store(acc.add(i * 2 * $lanes + $lanes), ci[1]);
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
simd_tile!(
    Avx512Tile,
    "avx512f",
    8,
    16,
    __m512,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    avx512_shift_a,
    avx512_rows_a,
    avx512_points,
    Some(pool_pair32_avx512),
    Some(wgrad32_avx512)
);
#[cfg(target_arch = "x86_64")]
simd_tile!(
    Avx2Tile,
    "avx2,fma",
    6,
    8,
    __m256,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    avx2_shift_a,
    avx2_rows_a,
    avx2_points,
    None,
    // Measured slower than the general tile on AVX2 (6 loads per 8 FMAs with 16 registers).
    None
);
// The forward on AVX2 uses 4 × 16 tiles: 4 divides the output widths (32, 16, 8) where 6
// left 11–33% of each row's tiles as padding (measured: conv3's forward 1.1–1.6x faster,
// its input gradient 1.3–1.4x); the weight gradient keeps 6 × 16, faster there (its rows are
// taps).
#[cfg(target_arch = "x86_64")]
simd_tile!(
    Avx2FwdTile,
    "avx2,fma",
    4,
    8,
    __m256,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    avx2x4_shift_a,
    avx2x4_rows_a,
    avx2x4_points,
    Some(pool_pair32_avx2),
    None
);
