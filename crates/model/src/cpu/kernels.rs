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
//! [`conv_pool_stack_forward`] and [`conv_pool_stack_backward`] run a stack of fused
//! conv → pool blocks (the tutorial's three) a few images at a time through every block, so
//! the threads meet once per pass rather than once per layer.

use aligned_vec::{AVec, ConstAlign};
use rayon::prelude::*;

mod stack;

pub use stack::{Block, conv_pool_stack_backward, conv_pool_stack_forward};

/// Geometry of one convolution call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Side of the square kernel.
    pub kernel: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl ConvGeometry {
    /// Output height (`height + 2·pad − kernel + 1`).
    pub fn out_height(&self) -> usize {
        self.height + 2 * self.pad + 1 - self.kernel
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        self.width + 2 * self.pad + 1 - self.kernel
    }

    /// Whether the output is non-empty (the kernel fits the padded input).
    pub fn is_valid(&self) -> bool {
        self.kernel > 0
            && self.height + 2 * self.pad >= self.kernel
            && self.width + 2 * self.pad >= self.kernel
    }

    fn k_dim(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }

    fn in_image(&self) -> usize {
        self.c_in * self.height * self.width
    }

    fn out_plane(&self) -> usize {
        self.out_height() * self.out_width()
    }

    fn out_image(&self) -> usize {
        self.c_out * self.out_plane()
    }

    /// The geometry of the input gradient as a forward convolution of `dy`.
    fn transposed(&self) -> ConvGeometry {
        ConvGeometry {
            batch: self.batch,
            c_in: self.c_out,
            c_out: self.c_in,
            height: self.out_height(),
            width: self.out_width(),
            kernel: self.kernel,
            pad: self.kernel - 1 - self.pad,
        }
    }
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Reduction-step offsets into `a` and their maximum, found once per block of steps rather than
/// in the bounds check of every tile call.
#[derive(Debug, Clone, Copy)]
struct Offsets<'a> {
    list: &'a [usize],
    max: usize,
}

impl<'a> Offsets<'a> {
    fn new(list: &'a [usize]) -> Offsets<'a> {
        let max = list.iter().copied().max().unwrap_or(0);
        Offsets { list, max }
    }

    /// Part of the list, keeping the whole list's maximum as its bound (at least the part's own).
    fn part(self, range: std::ops::Range<usize>) -> Offsets<'a> {
        Offsets {
            list: &self.list[range],
            max: self.max,
        }
    }
}

/// A register-tiled micro-kernel over an `MR × NR` tile of outputs, in two forms that read
/// the image where it lies, so no im2col buffer is ever built:
///
/// * [`run_shift_a`](Tile::run_shift_a): `acc[i·NR + j] += Σ_k a[aoff.list[k] + i] · b[k·ldb + j]`
///   (reduction step `k` broadcasts `MR` consecutive values of `a` from its own offset);
/// * [`run_rows_a`](Tile::run_rows_a): `acc[i·NR + j] += Σ_k a[aoff[i] + k] · b[k·ldb + j]`
///   (row `i` of `a` starts at its own offset; `k` may skip columns of `a`, see [`Steps`]).
///
/// Either way `b` is read as whole rows of `NR` values, which callers keep 64-byte aligned:
/// the only vector loads are aligned, the broadcasts never split a cache line.
trait Tile {
    /// Rows of the tile (broadcast from `a`).
    const MR: usize;
    /// Columns of the tile (vector loads from `b`).
    const NR: usize;
    /// See the trait; `aoff.list.len()` reduction steps.
    fn run_shift_a(a: &[f32], aoff: Offsets<'_>, b: &[f32], ldb: usize, acc: &mut [f32]);
    /// The fused conv + pool kernel for output rows exactly 32 wide, where the instruction
    /// set has one (see [`Pool32Fn`]).
    const POOL32: Option<Pool32Fn> = None;
    /// The weight-gradient kernel for output rows exactly 32 wide, where the instruction set
    /// has one (see [`Wgrad32Fn`]).
    const WGRAD32: Option<Wgrad32Fn> = None;
    /// See the trait; `aoff.len() == MR`. The reduction runs over `steps.rows` runs of
    /// `steps.len` consecutive `k`, run `r` reading `a` from `r · steps.stride` on (so `k`
    /// indexes `b` densely but may skip columns of `a`).
    fn run_rows_a(steps: Steps, a: &[f32], aoff: &[usize], b: &[f32], ldb: usize, acc: &mut [f32]);
    /// `acc[kw·acc_stride + j] += Σ_p vals[p] · a[starts.list[p] + kw·stride + j]` for
    /// `kw < POINT_TAPS`, `j < NR`: a kernel row's taps of `NR` channels-last channels, summed
    /// over scattered points (the windows' maxima behind a max-pooling, see
    /// [`weight_grad_points`] and [`input_grad_points`]).
    fn run_points(
        a: &[f32],
        stride: usize,
        starts: Offsets<'_>,
        vals: &[f32],
        acc: &mut [f32],
        acc_stride: usize,
    );
}

/// Kernel width of [`Tile::run_points`]: the tutorial's 5 × 5 convolutions.
const POINT_TAPS: usize = 5;

/// Checks the bounds of a [`Tile::run_points`] call.
fn points_in_bounds(
    nr: usize,
    a: &[f32],
    stride: usize,
    starts: Offsets<'_>,
    vals: &[f32],
    acc: &[f32],
    acc_stride: usize,
) -> bool {
    starts.list.len() == vals.len()
        && acc.len() >= (POINT_TAPS - 1) * acc_stride + nr
        && (starts.list.is_empty() || a.len() >= starts.max + (POINT_TAPS - 1) * stride + nr)
}

/// The reduction of [`Tile::run_rows_a`]: `rows` runs of `len` steps, `stride` apart in `a`.
#[derive(Debug, Clone, Copy)]
struct Steps {
    rows: usize,
    len: usize,
    stride: usize,
}

impl Steps {
    /// How far into `a` the reads reach past an offset (0 for no steps).
    fn reach(&self) -> usize {
        if self.rows == 0 || self.len == 0 {
            0
        } else {
            (self.rows - 1) * self.stride + self.len
        }
    }
}

/// Plain Rust, any CPU: 4 × 8.
struct PortableTile;

impl Tile for PortableTile {
    const MR: usize = 4;
    const NR: usize = 8;
    #[inline(always)]
    fn run_shift_a(a: &[f32], aoff: Offsets<'_>, b: &[f32], ldb: usize, acc: &mut [f32]) {
        for (k, off) in aoff.list.iter().enumerate() {
            let bk = &b[k * ldb..k * ldb + Self::NR];
            for (i, ai) in a[*off..*off + Self::MR].iter().enumerate() {
                let row = &mut acc[i * Self::NR..(i + 1) * Self::NR];
                for (c, bj) in row.iter_mut().zip(bk) {
                    *c = ai.mul_add(*bj, *c);
                }
            }
        }
    }
    #[inline(always)]
    fn run_rows_a(steps: Steps, a: &[f32], aoff: &[usize], b: &[f32], ldb: usize, acc: &mut [f32]) {
        for r in 0..steps.rows {
            for k in 0..steps.len {
                let bk = &b[(r * steps.len + k) * ldb..][..Self::NR];
                for (i, off) in aoff.iter().enumerate() {
                    let ai = a[off + r * steps.stride + k];
                    let row = &mut acc[i * Self::NR..(i + 1) * Self::NR];
                    for (c, bj) in row.iter_mut().zip(bk) {
                        *c = ai.mul_add(*bj, *c);
                    }
                }
            }
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
        for (s, v) in starts.list.iter().zip(vals) {
            for kw in 0..POINT_TAPS {
                let x = &a[s + kw * stride..][..Self::NR];
                let row = &mut acc[kw * acc_stride..][..Self::NR];
                for (c, xj) in row.iter_mut().zip(x) {
                    *c = v.mul_add(*xj, *c);
                }
            }
        }
    }
}

/// Checks the bounds of a [`Tile::run_shift_a`] call.
fn shift_a_in_bounds(
    mr: usize,
    nr: usize,
    a: &[f32],
    aoff: Offsets<'_>,
    b: &[f32],
    ldb: usize,
    acc: &[f32],
) -> bool {
    let (kc, max_off) = (aoff.list.len(), aoff.max);
    acc.len() >= mr * nr && (kc == 0 || (a.len() >= max_off + mr && b.len() >= (kc - 1) * ldb + nr))
}

/// Checks the bounds of a [`Tile::run_rows_a`] call.
#[allow(clippy::too_many_arguments)]
fn rows_a_in_bounds(
    mr: usize,
    nr: usize,
    steps: Steps,
    a: &[f32],
    aoff: &[usize],
    b: &[f32],
    ldb: usize,
    acc: &[f32],
) -> bool {
    let max_off = aoff.iter().copied().max().unwrap_or(0);
    let kc = steps.rows * steps.len;
    aoff.len() == mr
        && acc.len() >= mr * nr
        && (kc == 0 || (a.len() >= max_off + steps.reach() && b.len() >= (kc - 1) * ldb + nr))
}

/// Instantiates an `std::arch` micro-kernel pair for one vector width: `$mr` rows, two vectors
/// of `$lanes` per row.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_tile {
    ($name:ident, $features:literal, $mr:literal, $lanes:literal, $vec:ty,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident,
     $shift_a:ident, $rows_a:ident, $points:ident, $pool32:expr, $wgrad32:expr) => {
        struct $name;

        impl Tile for $name {
            const MR: usize = $mr;
            const NR: usize = 2 * $lanes;
            const POOL32: Option<Pool32Fn> = $pool32;
            const WGRAD32: Option<Wgrad32Fn> = $wgrad32;
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

/// A fused convolution + 2×2 max-pooling of one pair of output rows exactly 32 wide, for 4
/// output channels: `(padded image, top output row, weight rows [k_dim][ldn], first channel,
/// its 4 biases, pooled output, window positions, offset of the first channel's pooled row,
/// pooled plane size)`. Pooled values and window positions are written as in
/// [`Out::Pooled`].
type Pool32Fn =
    fn(&Padded, usize, &[f32], usize, usize, &[f32; 4], &mut [f32], &mut [u8], usize, usize);

/// Whether every read and write of a [`Pool32Fn`] call stays inside its slices: rows `oy`,
/// `oy + 1` of the padded image (32 values from each tap's offset), 4 columns of weight rows
/// from `co0`, and 16 pooled values of 4 channels from `at`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn pool_pair32_in_bounds(
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
fn pool_pair32_avx512(
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
unsafe fn avx512_pool_pair32(
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
type Wgrad32Fn = fn(&Padded, &[usize; 4], &[f32], usize, usize, &mut [f32]);

/// [`Wgrad32Fn`] on AVX-512: positions in the lanes, so the output gradient is read as whole
/// rows and never transposed. Made for a first layer (see [`pool_pair32_avx512`]).
#[cfg(target_arch = "x86_64")]
fn wgrad32_avx512(
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
unsafe fn avx512_wgrad32(
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
fn pool_pair32_avx2(
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
unsafe fn avx2_pool_pair16(
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
fn rows32(g: &ConvGeometry) -> bool {
    g.out_width() == 32 && g.c_out.is_multiple_of(4)
}

/// The [`Pool32Fn`] that computes a whole image of `out`, where `T` has one and it fits.
fn pool32_for<T: Tile>(g: &ConvGeometry, out: &Out<'_>) -> Option<Pool32Fn> {
    match out {
        Out::Pooled(..) if rows32(g) => T::POOL32,
        _ => None,
    }
}

/// A zeroed `f32` buffer that begins on a 64-byte boundary (a cache line, one AVX-512 vector):
/// `aligned-vec`'s `AVec`.
struct Aligned(AVec<f32, ConstAlign<64>>);

impl Aligned {
    fn zeros(len: usize) -> Aligned {
        Aligned(AVec::from_iter(64, std::iter::repeat_n(0.0, len)))
    }

    fn get(&self) -> &[f32] {
        &self.0
    }

    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

/// A batch of feature maps `[images, c, h, w]`: stored densely, or as the 2×2 max-unpooling
/// of pooled values `[images, c, h / 2, w / 2]` and the window position each came from (the
/// gradient of a max-pooling, never materialised).
#[derive(Debug, Clone, Copy)]
enum Maps<'a> {
    Dense(&'a [f32]),
    Unpooled(&'a [f32], &'a [u8]),
}

impl<'a> Maps<'a> {
    /// Images `first..first + n` of maps `c × h × w`.
    fn images(self, c: usize, h: usize, w: usize, first: usize, n: usize) -> Maps<'a> {
        match self {
            Maps::Dense(v) => Maps::Dense(&v[first * c * h * w..(first + n) * c * h * w]),
            Maps::Unpooled(v, idx) => {
                let per = c * (h / 2) * (w / 2);
                let range = first * per..(first + n) * per;
                Maps::Unpooled(&v[range.clone()], &idx[range])
            }
        }
    }

    /// Hands every value of image `i` (maps `c × h × w`) that may be non-zero to `put`: whole
    /// rows of dense maps, single points of unpooled ones.
    #[inline(always)]
    fn for_each(self, c: usize, h: usize, w: usize, i: usize, mut put: impl FnMut(Values<'_>)) {
        match self {
            Maps::Dense(v) => {
                let image = &v[i * c * h * w..(i + 1) * c * h * w];
                for (ch, plane) in image.chunks_exact(h * w).enumerate() {
                    for (y, row) in plane.chunks_exact(w).enumerate() {
                        put(Values::Row(ch, y, row));
                    }
                }
            }
            Maps::Unpooled(v, idx) => {
                let (ph, pw) = (h / 2, w / 2);
                let per = c * ph * pw;
                let (vals, pos) = (&v[i * per..(i + 1) * per], &idx[i * per..(i + 1) * per]);
                if pw == 0 {
                    return;
                }
                // Nested loops, not divisions: this runs once per pooled value.
                let rows = vals.chunks_exact(pw).zip(pos.chunks_exact(pw));
                for (r, (vrow, prow)) in rows.enumerate() {
                    let (ch, py) = (r / ph, r % ph);
                    for (px, (value, k)) in vrow.iter().zip(prow).enumerate() {
                        let k = usize::from(*k & 3);
                        put(Values::Point(ch, 2 * py + k / 2, 2 * px + k % 2, *value));
                    }
                }
            }
        }
    }
}

/// What [`Maps::for_each`] hands out.
enum Values<'a> {
    /// Channel, row, and the row's values.
    Row(usize, usize, &'a [f32]),
    /// Channel, row, column, value.
    Point(usize, usize, usize, f32),
}

/// Reduction steps per block, so the rows of `b` a block reads stay in the L1 cache.
const KC: usize = 256;

/// An image padded with zeros and laid out so that every kernel tap is a shifted view of it.
///
/// The input of tap `r` for output `(oy, ox)` is `data[offsets[r] + oy·pw + ox]`: a run of
/// consecutive outputs of one row reads a run of consecutive values, so no im2col buffer is
/// needed.
struct Padded {
    ph: usize,
    pw: usize,
    /// `offsets[r]` for `r = (ci, kh, kw)`: `ci·ph·pw + kh·pw + kw`, increasing.
    offsets: Vec<usize>,
    /// Start of a run of zeros after the image, as long as any read of one tap row (for the
    /// padding rows of a weight-gradient tile).
    zeros: usize,
    /// The padded image, followed by zeros.
    data: Vec<f32>,
}

impl Padded {
    fn new(g: &ConvGeometry, nr: usize) -> Padded {
        let (ph, pw) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
        let grid = g.out_height() * pw;
        let k = g.kernel;
        let offsets: Vec<usize> = (0..g.c_in)
            .flat_map(|ci| {
                (0..k).flat_map(move |kh| (0..k).map(move |kw| (ci * ph + kh) * pw + kw))
            })
            .collect();
        let image = g.c_in * ph * pw;
        // Reads reach `offsets.max() + round_up(grid, nr)`; the zero run follows.
        let reach = offsets.last().copied().unwrap_or(0) + round_up(grid, nr) + nr;
        let zeros = image.max(reach);
        let data = vec![0.0f32; zeros + round_up(grid, nr) + KC + nr];
        Padded {
            ph,
            pw,
            offsets,
            zeros,
            data,
        }
    }

    /// Copies image `i` of `x` (maps `c_in × h × w`) inside the (always zero) border.
    #[inline(always)]
    fn fill(&mut self, g: &ConvGeometry, x: Maps<'_>, i: usize) {
        let (h, w, pad) = (g.height, g.width, g.pad);
        let (ph, pw) = (self.ph, self.pw);
        if let Maps::Unpooled(..) = x {
            for ci in 0..g.c_in {
                for iy in 0..h {
                    let at = (ci * ph + iy + pad) * pw + pad;
                    self.data[at..at + w].fill(0.0);
                }
            }
        }
        let data = &mut self.data;
        x.for_each(g.c_in, h, w, i, |values| match values {
            Values::Row(ci, iy, row) => {
                let at = (ci * ph + iy + pad) * pw + pad;
                data[at..at + w].copy_from_slice(row);
            }
            Values::Point(ci, iy, ix, v) => data[(ci * ph + iy + pad) * pw + ix + pad] = v,
        });
    }
}

/// Largest tile (`MR·NR`) of any [`Tile`].
const MAX_TILE: usize = 256;

/// Where a forward pass writes (for a batch, a chunk of it or one image): the convolution
/// itself, or its 2×2 max-pooling with the position of each maximum (`0..4`, row-major
/// within the window).
enum Out<'a> {
    /// `[images, c_out, oh, ow]`.
    Conv(&'a mut [f32]),
    /// `[images, c_out, oh / 2, ow / 2]` and as many window positions.
    Pooled(&'a mut [f32], &'a mut [u8]),
}

/// Widest tile (`NR`) of any [`Tile`].
const MAX_LANES: usize = 32;

/// Forward convolution of image `i` of `x` (maps `c_in × h × w`), written as `out` says.
///
/// `w_rows` holds the weights as `[k_dim][ldn]` rows (`ldn` = `c_out` rounded up to `T::NR`,
/// 64-byte aligned); `cbuf` holds `ldn / NR × oh × ⌈ow / MR⌉` tiles.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_image<T: Tile>(
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
fn forward_chunk<T: Tile>(
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

/// Weight gradient of consecutive images, accumulated into `dwt`: `[k_dim, c_out]`, rows
/// padded to `T::MR`, columns to `T::NR`, or where [`weight_grad_points`] runs (see
/// [`points_fit`]) its own layout; [`weight_grad_out`] reads either.
#[inline(always)]
fn weight_grad_chunk<T: Tile>(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
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

/// Whether [`weight_grad_points`] computes the weight gradient of `g` with a weight-gradient
/// tile `nr` wide: behind a pooling (an `unpooled` output gradient), 5 × 5 kernels, input
/// channels a multiple of `nr`, at least one pooling window.
fn points_fit(g: &ConvGeometry, unpooled: bool, nr: usize) -> bool {
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
fn weight_grad_points<T: Tile>(
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
fn weight_grad_out(g: &ConvGeometry, unpooled: bool, nr: usize, sums: &[f32], dw: &mut [f32]) {
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

/// The weights `[c_out, c_in, k, k]` channels-last, `[c_out][k][k][c_in]`, 64-byte aligned:
/// the operand of [`input_grad_points`].
fn point_rows(g: &ConvGeometry, w: &[f32]) -> Aligned {
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
fn input_grad_points<T: Tile>(
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

/// [`weight_grad_chunk`] for output rows exactly 32 wide, with the instruction set's
/// [`Wgrad32Fn`]: each image's output gradient made dense once (`[c_out][oh][32]`), lane sums
/// kept per (channel, tap) over the chunk, added into `dwt` at the end.
#[inline(always)]
fn weight_grad_rows32(
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

/// Images per parallel task: a few tasks per rayon thread, so a thread slowed down by
/// something else on the machine does not hold the others up.
fn chunk_len(batch: usize) -> usize {
    batch
        .div_ceil(4 * rayon::current_num_threads().max(1))
        .max(1)
}

/// A forward chunk kernel compiled for one instruction set.
type ForwardFn = fn(&ConvGeometry, Maps<'_>, &[f32], Option<&[f32]>, Out<'_>);
/// A weight-gradient chunk kernel compiled for one instruction set.
type WeightGradFn = fn(&ConvGeometry, &[f32], Maps<'_>, &mut [f32]);
/// [`input_grad_points`] compiled for one instruction set: `(geometry, pooled gradient,
/// window positions, weights as [`point_rows`], dx)`.
type InputGradFn = fn(&ConvGeometry, &[f32], &[u8], &[f32], &mut [f32]);

/// Weights `[c_out, k_dim]` as 64-byte-aligned rows `[k_dim][ldn]`, `ldn` = `c_out` rounded
/// up to `nr`: `rows[r·ldn + co] = w[co, r]` (columns past `c_out` zero).
fn weight_rows(g: &ConvGeometry, w: &[f32], nr: usize) -> Aligned {
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
fn flipped(g: &ConvGeometry, w: &[f32]) -> Vec<f32> {
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
fn flipped_rows(g: &ConvGeometry, w: &[f32], nr: usize) -> Aligned {
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
fn untranspose(g: &ConvGeometry, dwt: &[f32], ldn: usize, dw: &mut [f32]) {
    for (co, row) in dw.chunks_exact_mut(g.k_dim().max(1)).enumerate() {
        for (r, v) in row.iter_mut().enumerate() {
            *v = dwt[r * ldn + co];
        }
    }
}

fn forward_generic<T: Tile>(
    g: &ConvGeometry,
    x: Maps<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    out: Out<'_>,
    chunk: ForwardFn,
) {
    let w_rows = weight_rows(g, w, T::NR);
    let w_rows = w_rows.get();
    let images = chunk_len(g.batch);
    let part = |c: usize, n: usize| x.images(g.c_in, g.height, g.width, c * images, n);
    match out {
        Out::Conv(y) => y
            .par_chunks_mut(images * g.out_image())
            .enumerate()
            .for_each(|(c, yc)| {
                let n = yc.len() / g.out_image();
                chunk(g, part(c, n), w_rows, bias, Out::Conv(yc))
            }),
        Out::Pooled(y, idx) => {
            let pooled = g.c_out * (g.out_height() / 2) * (g.out_width() / 2);
            y.par_chunks_mut(images * pooled)
                .zip(idx.par_chunks_mut(images * pooled))
                .enumerate()
                .for_each(|(c, (yc, ic))| {
                    let n = yc.len() / pooled;
                    chunk(g, part(c, n), w_rows, bias, Out::Pooled(yc, ic))
                })
        }
    }
}

fn weight_grad_generic<T: Tile>(
    g: &ConvGeometry,
    x: &[f32],
    dy: Maps<'_>,
    dw: &mut [f32],
    chunk: WeightGradFn,
) {
    let k_dim = g.k_dim();
    let rows = round_up(k_dim, T::MR);
    let ldn = round_up(g.c_out, T::NR);
    let images = chunk_len(g.batch);
    let (oh, ow) = (g.out_height(), g.out_width());
    let dwt = x
        .par_chunks(images * g.in_image())
        .enumerate()
        .map(|(c, xc)| {
            let n = xc.len() / g.in_image();
            let mut dwt = vec![0.0f32; rows * ldn];
            chunk(g, xc, dy.images(g.c_out, oh, ow, c * images, n), &mut dwt);
            dwt
        })
        .collect::<Vec<_>>()
        .into_iter()
        // Summed in chunk order: the same bits whatever the thread scheduling.
        .fold(vec![0.0f32; rows * ldn], |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        });
    let unpooled = matches!(dy, Maps::Unpooled(..));
    weight_grad_out(g, unpooled, T::NR, &dwt, dw);
}

/// Instantiates the chunk kernels for one instruction set: `$fwd` and `$wgrad` are safe
/// wrappers around `#[target_feature]` copies of [`forward_chunk`] and [`weight_grad_chunk`],
/// so the padding copies and packing are compiled for that instruction set too.
#[cfg(target_arch = "x86_64")]
macro_rules! chunk_kernels {
    ($features:literal, $fwd_tile:ty, $wgrad_tile:ty, $fwd:ident, $wgrad:ident, $igrad:ident) => {
        fn $igrad(g: &ConvGeometry, vals: &[f32], idx: &[u8], w: &[f32], dx: &mut [f32]) {
            #[target_feature(enable = $features)]
            fn inner(g: &ConvGeometry, vals: &[f32], idx: &[u8], w: &[f32], dx: &mut [f32]) {
                input_grad_points::<$wgrad_tile>(g, vals, idx, w, dx)
            }
            // SAFETY: only reachable through `Isa::supported`, which checked these CPU features.
            #[allow(unsafe_code)]
            unsafe {
                inner(g, vals, idx, w, dx)
            }
        }
        fn $fwd(g: &ConvGeometry, x: Maps<'_>, w: &[f32], b: Option<&[f32]>, out: Out<'_>) {
            #[target_feature(enable = $features)]
            fn inner(g: &ConvGeometry, x: Maps<'_>, w: &[f32], b: Option<&[f32]>, out: Out<'_>) {
                forward_chunk::<$fwd_tile>(g, x, w, b, out)
            }
            // SAFETY: only reachable through `Isa::supported`, which checked these CPU features.
            #[allow(unsafe_code)]
            unsafe {
                inner(g, x, w, b, out)
            }
        }
        fn $wgrad(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
            #[target_feature(enable = $features)]
            fn inner(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
                weight_grad_chunk::<$wgrad_tile>(g, x, dy, dwt)
            }
            // SAFETY: only reachable through `Isa::supported`, which checked these CPU features.
            #[allow(unsafe_code)]
            unsafe {
                inner(g, x, dy, dwt)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
chunk_kernels!(
    "avx512f,avx2,fma",
    Avx512Tile,
    Avx512Tile,
    forward_avx512,
    weight_grad_avx512,
    input_grad_avx512
);
#[cfg(target_arch = "x86_64")]
chunk_kernels!(
    "avx2,fma",
    Avx2FwdTile,
    Avx2Tile,
    forward_avx2,
    weight_grad_avx2,
    input_grad_avx2
);

fn forward_portable(g: &ConvGeometry, x: Maps<'_>, w: &[f32], b: Option<&[f32]>, out: Out<'_>) {
    forward_chunk::<PortableTile>(g, x, w, b, out)
}

fn weight_grad_portable(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
    weight_grad_chunk::<PortableTile>(g, x, dy, dwt)
}

fn input_grad_portable(g: &ConvGeometry, vals: &[f32], idx: &[u8], w: &[f32], dx: &mut [f32]) {
    input_grad_points::<PortableTile>(g, vals, idx, w, dx)
}

/// The instruction set the kernels run with, detected once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F (x86-64-v4): 8 × 32 tiles.
    Avx512,
    /// AVX2 with FMA (x86-64-v3): 4 × 16 tiles (forward), 6 × 16 (weight gradient).
    Avx2,
    /// Plain Rust for any CPU: 4 × 8 tiles.
    Portable,
}

impl Isa {
    /// The best instruction set this CPU supports, capped by the environment variable
    /// `TORCHLET_CPU_ISA` (`avx512`, `avx2` or `portable`: to measure another code path on the
    /// same machine; any other value is logged as a warning and ignored). Read once per
    /// process.
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let value = std::env::var("TORCHLET_CPU_ISA").ok();
            let cap = Isa::cap(value.as_deref()).unwrap_or_else(|bad| {
                tracing::warn!(
                    "TORCHLET_CPU_ISA={bad:?} names no instruction set (avx512, avx2, portable); \
                     ignored"
                );
                Isa::Avx512
            });
            Isa::supported()
                .into_iter()
                .find(|isa| isa.rank() <= cap.rank())
                .unwrap_or(Isa::Portable)
        })
    }

    /// The cap a `TORCHLET_CPU_ISA` value sets (no cap when unset), or the value back when it
    /// names no instruction set.
    fn cap(value: Option<&str>) -> Result<Isa, &str> {
        match value {
            None | Some("avx512") => Ok(Isa::Avx512),
            Some("avx2") => Ok(Isa::Avx2),
            Some("portable") => Ok(Isa::Portable),
            Some(bad) => Err(bad),
        }
    }

    /// The instruction sets this CPU supports, best first.
    fn supported() -> Vec<Isa> {
        let mut all = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            if fma && std::is_x86_feature_detected!("avx512f") {
                all.push(Isa::Avx512);
            }
            if fma {
                all.push(Isa::Avx2);
            }
        }
        all.push(Isa::Portable);
        all
    }

    fn rank(self) -> u8 {
        match self {
            Isa::Portable => 0,
            Isa::Avx2 => 1,
            Isa::Avx512 => 2,
        }
    }
}

/// The chunk kernels of one instruction set, with the tile sizes their operands are padded to.
#[derive(Clone, Copy)]
struct ChunkKernels {
    /// [`forward_chunk`] for the set.
    forward: ForwardFn,
    /// `NR` of its forward tile: the weight rows' width is padded to it.
    forward_nr: usize,
    /// [`weight_grad_chunk`] for the set.
    weight_grad: WeightGradFn,
    /// `MR` and `NR` of its weight-gradient tile: `dwt` is padded to them.
    weight_grad_tile: (usize, usize),
    /// [`input_grad_points`] for the set, on the weight-gradient tile (where [`points_fit`]
    /// with its `NR`).
    input_grad: InputGradFn,
}

impl Isa {
    /// The chunk kernels of this set, which must be one of [`Isa::supported`].
    fn chunk_kernels(self) -> ChunkKernels {
        fn of<F: Tile, W: Tile>(
            forward: ForwardFn,
            weight_grad: WeightGradFn,
            input_grad: InputGradFn,
        ) -> ChunkKernels {
            ChunkKernels {
                forward,
                forward_nr: F::NR,
                weight_grad,
                weight_grad_tile: (W::MR, W::NR),
                input_grad,
            }
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                of::<Avx512Tile, Avx512Tile>(forward_avx512, weight_grad_avx512, input_grad_avx512)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                of::<Avx2FwdTile, Avx2Tile>(forward_avx2, weight_grad_avx2, input_grad_avx2)
            }
            _ => of::<PortableTile, PortableTile>(
                forward_portable,
                weight_grad_portable,
                input_grad_portable,
            ),
        }
    }
}

fn forward_dispatch(g: &ConvGeometry, x: Maps<'_>, w: &[f32], bias: Option<&[f32]>, out: Out<'_>) {
    forward_on(Isa::detect(), g, x, w, bias, out)
}

/// The forward on the kernels of `isa`, which must be one of [`Isa::supported`].
fn forward_on(
    isa: Isa,
    g: &ConvGeometry,
    x: Maps<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    out: Out<'_>,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => forward_generic::<Avx512Tile>(g, x, w, bias, out, forward_avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => forward_generic::<Avx2FwdTile>(g, x, w, bias, out, forward_avx2),
        _ => forward_generic::<PortableTile>(g, x, w, bias, out, forward_portable),
    }
}

fn weight_grad_dispatch(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dw: &mut [f32]) {
    weight_grad_on(Isa::detect(), g, x, dy, dw)
}

/// The weight gradient on the kernels of `isa`, which must be one of [`Isa::supported`].
fn weight_grad_on(isa: Isa, g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dw: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => weight_grad_generic::<Avx512Tile>(g, x, dy, dw, weight_grad_avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => weight_grad_generic::<Avx2Tile>(g, x, dy, dw, weight_grad_avx2),
        _ => weight_grad_generic::<PortableTile>(g, x, dy, dw, weight_grad_portable),
    }
}

/// Checks slice lengths against the geometry; `None` when they disagree.
fn check(g: &ConvGeometry, x: usize, w: usize, y: usize) -> Option<()> {
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

/// `dx` from `dy` (dense or unpooled): the forward of `dy` with the kernel flipped.
fn input_grad(g: &ConvGeometry, dy: Maps<'_>, w: &[f32], dx: &mut [f32]) -> Option<()> {
    input_grad_on(Isa::detect(), g, dy, w, dx)
}

/// [`input_grad`] on the kernels of `isa`, which must be one of [`Isa::supported`].
fn input_grad_on(
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]
mod tests {
    use super::*;

    /// Deterministic values in [-0.5, 0.5).
    pub(super) fn values(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// The definition, in f64: y[n, co, oy, ox] = b[co] + Σ x[n, ci, oy+kh−p, ox+kw−p]·w[co, ci, kh, kw].
    fn naive_forward(g: &ConvGeometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
        let mut y = vec![0.0; g.batch * g.c_out * oh * ow];
        for n in 0..g.batch {
            for co in 0..g.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = f64::from(b[co]);
                        for ci in 0..g.c_in {
                            for kh in 0..k {
                                for kw in 0..k {
                                    let (iy, ix) = (oy + kh, ox + kw);
                                    if iy < g.pad || ix < g.pad {
                                        continue;
                                    }
                                    let (iy, ix) = (iy - g.pad, ix - g.pad);
                                    if iy >= g.height || ix >= g.width {
                                        continue;
                                    }
                                    let xv = x[((n * g.c_in + ci) * g.height + iy) * g.width + ix];
                                    let wv = w[((co * g.c_in + ci) * k + kh) * k + kw];
                                    s += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        y[((n * g.c_out + co) * oh + oy) * ow + ox] = s as f32;
                    }
                }
            }
        }
        y
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum::<f64>() as f32
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Odd sizes on purpose: channels that are not multiples of any tile, widths that are not
    /// multiples of MR, padding larger than the kernel's half, more images than tasks.
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
            c_in: 4,
            c_out: 33,
            height: 6,
            width: 6,
            kernel: 3,
            pad: 0,
        },
        ConvGeometry {
            batch: 5,
            c_in: 2,
            c_out: 7,
            height: 5,
            width: 4,
            kernel: 5,
            pad: 4,
        },
        ConvGeometry {
            batch: 17,
            c_in: 32,
            c_out: 64,
            height: 8,
            width: 8,
            kernel: 5,
            pad: 2,
        },
        // Output rows 32 wide: the fused first-layer kernel where the CPU has one.
        ConvGeometry {
            batch: 2,
            c_in: 3,
            c_out: 8,
            height: 7,
            width: 32,
            kernel: 5,
            pad: 2,
        },
    ];

    #[test]
    fn flipped_rows_are_the_rows_of_the_flipped_weights() {
        let mut seed = 11;
        for g in GEOMETRIES {
            let w = values(g.c_out * g.k_dim(), &mut seed);
            for nr in [8, 16, 32] {
                let want = weight_rows(&g.transposed(), &flipped(&g, &w), nr);
                assert_eq!(flipped_rows(&g, &w, nr).get(), want.get(), "{g:?}, nr {nr}");
            }
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        let mut seed = 1;
        for g in GEOMETRIES {
            let x = values(g.batch * g.c_in * g.height * g.width, &mut seed);
            let w = values(g.c_out * g.c_in * g.kernel * g.kernel, &mut seed);
            let b = values(g.c_out, &mut seed);
            let mut y = vec![f32::NAN; g.batch * g.c_out * g.out_height() * g.out_width()];
            conv2d_forward(&g, &x, &w, Some(&b), &mut y).unwrap();
            let diff = max_diff(&y, &naive_forward(&g, &x, &w, &b));
            assert!(diff < 1e-4, "{g:?}: {diff}");
        }
    }

    /// Gradients by linearity: ⟨dy, conv(e_i)⟩ for each unit input e_i (small shapes only).
    #[test]
    fn gradients_match_the_definition() {
        let mut seed = 2;
        for g in &GEOMETRIES[..3] {
            let x = values(g.batch * g.c_in * g.height * g.width, &mut seed);
            let w = values(g.c_out * g.c_in * g.kernel * g.kernel, &mut seed);
            let dy = values(
                g.batch * g.c_out * g.out_height() * g.out_width(),
                &mut seed,
            );
            let zero = vec![0.0; g.c_out];
            let unit = |n: usize, i: usize| {
                let mut e = vec![0.0; n];
                e[i] = 1.0;
                e
            };
            let mut dw = vec![f32::NAN; w.len()];
            conv2d_weight_grad(g, &x, &dy, &mut dw).unwrap();
            let dw_ref: Vec<f32> = (0..w.len())
                .map(|i| dot(&dy, &naive_forward(g, &x, &unit(w.len(), i), &zero)))
                .collect();
            assert!(max_diff(&dw, &dw_ref) < 1e-4, "{g:?}: dw");
            let mut db = vec![f32::NAN; g.c_out];
            conv2d_bias_grad(g, &dy, &mut db).unwrap();
            let db_ref: Vec<f32> = (0..g.c_out)
                .map(|i| {
                    dot(
                        &dy,
                        &naive_forward(
                            g,
                            &vec![0.0; x.len()],
                            &vec![0.0; w.len()],
                            &unit(g.c_out, i),
                        ),
                    )
                })
                .collect();
            assert!(max_diff(&db, &db_ref) < 1e-4, "{g:?}: db");
            if g.pad < g.kernel {
                let mut dx = vec![f32::NAN; x.len()];
                conv2d_input_grad(g, &dy, &w, &mut dx).unwrap();
                let dx_ref: Vec<f32> = (0..x.len())
                    .map(|i| dot(&dy, &naive_forward(g, &unit(x.len(), i), &w, &zero)))
                    .collect();
                assert!(max_diff(&dx, &dx_ref) < 1e-4, "{g:?}: dx");
            } else {
                let mut dx = vec![0.0; x.len()];
                assert!(conv2d_input_grad(g, &dy, &w, &mut dx).is_none());
            }
        }
    }

    /// The fused conv + pool against the dense convolution pooled by hand, and its backward
    /// against the dense gradients of the unpooled output gradient.
    #[test]
    fn pooled_forward_and_backward_match_the_unfused_ops() {
        let mut seed = 3;
        for g in [GEOMETRIES[0], GEOMETRIES[1], GEOMETRIES[3], GEOMETRIES[4]] {
            let x = values(g.batch * g.c_in * g.height * g.width, &mut seed);
            let w = values(g.c_out * g.c_in * g.kernel * g.kernel, &mut seed);
            let b = values(g.c_out, &mut seed);
            let (oh, ow) = (g.out_height(), g.out_width());
            let (ph, pw) = pooled_size(&g);
            let y = naive_forward(&g, &x, &w, &b);
            let n = g.batch * g.c_out * ph * pw;
            let (mut yp, mut idx) = (vec![f32::NAN; n], vec![9u8; n]);
            conv2d_pool2_forward(&g, &x, &w, Some(&b), &mut yp, &mut idx).unwrap();
            let dyp = values(n, &mut seed);
            let mut dconv = vec![0.0; y.len()];
            for plane in 0..g.batch * g.c_out {
                for py in 0..ph {
                    for px in 0..pw {
                        let at =
                            |k: usize| plane * oh * ow + (2 * py + k / 2) * ow + 2 * px + k % 2;
                        let best = (0..4).fold(0, |b, k| if y[at(k)] > y[at(b)] { k } else { b });
                        let p = (plane * ph + py) * pw + px;
                        assert_eq!(usize::from(idx[p]), best, "{g:?}: window {p}");
                        assert!((yp[p] - y[at(best)]).abs() < 1e-4, "{g:?}: value {p}");
                        dconv[at(best)] = dyp[p];
                    }
                }
            }
            let (mut dx, mut dw, mut db) = (
                vec![f32::NAN; x.len()],
                vec![f32::NAN; w.len()],
                vec![f32::NAN; g.c_out],
            );
            conv2d_pool2_backward(
                &g,
                &x,
                &w,
                &dyp,
                &idx,
                Some(&mut dx),
                Some(&mut dw),
                Some(&mut db),
            )
            .unwrap();
            let (mut dx_ref, mut dw_ref, mut db_ref) =
                (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; g.c_out]);
            conv2d_input_grad(&g, &dconv, &w, &mut dx_ref).unwrap();
            conv2d_weight_grad(&g, &x, &dconv, &mut dw_ref).unwrap();
            conv2d_bias_grad(&g, &dconv, &mut db_ref).unwrap();
            assert!(max_diff(&dx, &dx_ref) < 1e-4, "{g:?}: dx");
            assert!(max_diff(&dw, &dw_ref) < 1e-4, "{g:?}: dw");
            assert!(max_diff(&db, &db_ref) < 1e-4, "{g:?}: db");
        }
    }

    #[test]
    fn pooling_takes_the_first_maximum_and_propagates_nan() {
        let g = ConvGeometry {
            batch: 1,
            c_in: 1,
            c_out: 1,
            height: 2,
            width: 4,
            kernel: 1,
            pad: 0,
        };
        // A 1×1 identity convolution, so the pooled values are the inputs.
        let x = [1.0, 3.0, f32::NAN, 0.0, 3.0, 2.0, 5.0, 5.0];
        let (mut y, mut idx) = ([0.0; 2], [0u8; 2]);
        conv2d_pool2_forward(&g, &x, &[1.0], None, &mut y, &mut idx).unwrap();
        assert_eq!(y[0], 3.0);
        assert_eq!(idx[0], 1, "the first of two equal maxima wins");
        assert!(y[1].is_nan() && idx[1] == 0, "NaN wins over any number");
    }

    #[test]
    fn the_instruction_set_cap_names_a_set_or_is_refused() {
        assert_eq!(Isa::cap(None), Ok(Isa::Avx512), "unset: no cap");
        assert_eq!(Isa::cap(Some("avx512")), Ok(Isa::Avx512));
        assert_eq!(Isa::cap(Some("avx2")), Ok(Isa::Avx2));
        assert_eq!(Isa::cap(Some("portable")), Ok(Isa::Portable));
        assert_eq!(Isa::cap(Some("AVX2")), Err("AVX2"));
        assert_eq!(Isa::cap(Some("sse4")), Err("sse4"));
        // Whatever the cap, the choice is one this CPU supports.
        assert!(Isa::supported().contains(&Isa::detect()));
    }

    #[test]
    fn pooling_rows_32_wide_follows_the_same_rules() {
        // A 1×1 convolution of one input channel into 4 (scaled by 1, 2, −1, 0.5), rows 32
        // wide (the fused first-layer kernel where the CPU has one): ties and NaNs in every
        // position of the windows, and the order flipped in one channel.
        let g = ConvGeometry {
            batch: 1,
            c_in: 1,
            c_out: 4,
            height: 4,
            width: 32,
            kernel: 1,
            pad: 0,
        };
        let x: Vec<f32> = (0..4 * 32)
            .map(|i: usize| match (i * 7 + i / 5) % 11 {
                0 => f32::NAN,
                v => (v % 3) as f32,
            })
            .collect();
        let w = [1.0f32, 2.0, -1.0, 0.5];
        let (ph, pw) = pooled_size(&g);
        let n = 4 * ph * pw;
        for isa in Isa::supported() {
            let (mut y, mut idx) = (vec![0.0; n], vec![9u8; n]);
            forward_on(
                isa,
                &g,
                Maps::Dense(&x),
                &w,
                None,
                Out::Pooled(&mut y, &mut idx),
            );
            check_pooling_rules(isa, &x, &w, ph, pw, &y, &idx);
        }
    }

    /// Checks pooled values of the 1×1, one-input-channel convolution of
    /// `pooling_rows_32_wide_follows_the_same_rules` against the rules.
    fn check_pooling_rules(
        isa: Isa,
        x: &[f32],
        w: &[f32],
        ph: usize,
        pw: usize,
        y: &[f32],
        idx: &[u8],
    ) {
        for (c, wc) in w.iter().enumerate() {
            for py in 0..ph {
                for px in 0..pw {
                    let v = |k: usize| wc * x[(2 * py + k / 2) * 32 + 2 * px + k % 2];
                    let mut best = 0;
                    for k in 1..4 {
                        if v(k) > v(best) || (v(k).is_nan() && !v(best).is_nan()) {
                            best = k;
                        }
                    }
                    let p = (c * ph + py) * pw + px;
                    assert_eq!(usize::from(idx[p]), best, "{isa:?}: window {p}");
                    let same = y[p] == v(best) || (y[p].is_nan() && v(best).is_nan());
                    assert!(same, "{isa:?}: value {p}: {} vs {}", y[p], v(best));
                }
            }
        }
    }

    #[test]
    fn wrong_lengths_are_refused_without_writing() {
        let g = GEOMETRIES[0];
        let x = vec![0.0; g.batch * g.c_in * g.height * g.width];
        let w = vec![0.0; g.c_out * g.c_in * g.kernel * g.kernel];
        let mut y = vec![7.0; g.batch * g.c_out * g.out_height() * g.out_width()];
        assert!(conv2d_forward(&g, &x[1..], &w, None, &mut y).is_none());
        assert!(conv2d_forward(&g, &x, &w[1..], None, &mut y).is_none());
        assert!(conv2d_forward(&g, &x, &w, Some(&[0.0]), &mut y).is_none());
        assert!(y.iter().all(|v| *v == 7.0));
        let too_big = ConvGeometry { kernel: 20, ..g };
        assert!(!too_big.is_valid());
    }

    /// The weight and input gradients behind a pooling from the windows' maxima alone
    /// ([`weight_grad_points`], [`input_grad_points`]) against the dense ones of the unpooled
    /// gradient, on every instruction set: channel counts the points kernels take on some
    /// sets and not on others, odd sizes (pooling drops the last row and column), several
    /// tasks.
    #[test]
    fn gradients_from_window_maxima_match_the_dense_ones() {
        let mut seed = 21;
        // The last two have no pooling window: nothing to visit, every gradient zero.
        let shapes = [
            (8, 7, 9),
            (16, 8, 8),
            (32, 16, 16),
            (64, 5, 6),
            (16, 1, 6),
            (32, 6, 1),
        ];
        for (c_in, height, width) in shapes {
            let g = ConvGeometry {
                batch: 11,
                c_in,
                c_out: 12,
                height,
                width,
                kernel: 5,
                pad: 2,
            };
            let (oh, ow) = (g.out_height(), g.out_width());
            let (ph, pw) = pooled_size(&g);
            let x = values(g.batch * g.in_image(), &mut seed);
            let pooled = g.batch * g.c_out * ph * pw;
            let dyp = values(pooled, &mut seed);
            let idx: Vec<u8> = values(pooled, &mut seed)
                .iter()
                .map(|v| ((v + 0.5) * 4.0) as u8 & 3)
                .collect();
            let mut dense = vec![0.0; g.batch * g.out_image()];
            for (p, (v, k)) in dyp.iter().zip(&idx).enumerate() {
                let (plane, py, px) = (p / (ph * pw), p / pw % ph, p % pw);
                let k = usize::from(*k);
                dense[(plane * oh + 2 * py + k / 2) * ow + 2 * px + k % 2] = *v;
            }
            let w = values(g.c_out * g.k_dim(), &mut seed);
            for isa in Isa::supported() {
                let mut dw = vec![f32::NAN; g.c_out * g.k_dim()];
                let mut dw_ref = dw.clone();
                weight_grad_on(isa, &g, &x, Maps::Unpooled(&dyp, &idx), &mut dw);
                weight_grad_on(isa, &g, &x, Maps::Dense(&dense), &mut dw_ref);
                assert!(max_diff(&dw, &dw_ref) < 1e-4, "{isa:?} {g:?}: dw");
                let mut dx = vec![f32::NAN; x.len()];
                let mut dx_ref = dx.clone();
                input_grad_on(isa, &g, Maps::Unpooled(&dyp, &idx), &w, &mut dx).unwrap();
                input_grad_on(isa, &g, Maps::Dense(&dense), &w, &mut dx_ref).unwrap();
                assert!(max_diff(&dx, &dx_ref) < 1e-4, "{isa:?} {g:?}: dx");
            }
        }
    }

    #[test]
    fn every_instruction_set_this_cpu_has_agrees() {
        // Each instruction set this CPU has, against the plain-Rust kernels: forward, fused
        // pooled forward and weight gradient (the general tiles, and the kernels for rows 32
        // wide where there are some).
        let mut seed = 4;
        for g in [GEOMETRIES[3], GEOMETRIES[4]] {
            let x = values(g.batch * g.c_in * g.height * g.width, &mut seed);
            let w = values(g.c_out * g.c_in * g.kernel * g.kernel, &mut seed);
            let n = g.batch * g.c_out * g.out_height() * g.out_width();
            let dy = values(n, &mut seed);
            let (ph, pw) = pooled_size(&g);
            let pooled = g.batch * g.c_out * ph * pw;
            let run = |isa| {
                let (mut y, mut dw) = (vec![f32::NAN; n], vec![f32::NAN; w.len()]);
                let (mut yp, mut idx) = (vec![f32::NAN; pooled], vec![9u8; pooled]);
                forward_on(isa, &g, Maps::Dense(&x), &w, None, Out::Conv(&mut y));
                let out = Out::Pooled(&mut yp, &mut idx);
                forward_on(isa, &g, Maps::Dense(&x), &w, None, out);
                weight_grad_on(isa, &g, &x, Maps::Dense(&dy), &mut dw);
                (y, yp, idx, dw)
            };
            let (y_ref, yp_ref, idx_ref, dw_ref) = run(Isa::Portable);
            for isa in Isa::supported() {
                let (y, yp, idx, dw) = run(isa);
                assert!(max_diff(&y, &y_ref) < 1e-4, "{isa:?} {g:?}: forward");
                assert!(max_diff(&yp, &yp_ref) < 1e-4, "{isa:?} {g:?}: pooled");
                assert_eq!(idx, idx_ref, "{isa:?} {g:?}: window positions");
                assert!(
                    max_diff(&dw, &dw_ref) < 1e-4,
                    "{isa:?} {g:?}: weight gradient"
                );
            }
        }
        eprintln!("instruction sets checked: {:?}", Isa::supported());
    }
}
