//! The register-tile micro-kernel interface (`Tile`), its bounds checks and the portable tile.

use super::*;

/// Reduction-step offsets into `a` and their maximum, found once per block of steps rather than
/// in the bounds check of every tile call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offsets<'a> {
    pub(crate) list: &'a [usize],
    pub(crate) max: usize,
}

impl<'a> Offsets<'a> {
    pub(crate) fn new(list: &'a [usize]) -> Offsets<'a> {
        let max = list.iter().copied().max().unwrap_or(0);
        Offsets { list, max }
    }

    /// Part of the list, keeping the whole list's maximum as its bound (at least the part's own).
    pub(crate) fn part(self, range: std::ops::Range<usize>) -> Offsets<'a> {
        Offsets {
            list: &self.list[range],
            max: self.max,
        }
    }
}

/// The forward's register-tiled micro-kernel over an `MR × NR` tile of outputs, reading the
/// image where it lies, so no im2col buffer is ever built:
/// [`run_shift_a`](ShiftTile::run_shift_a) does
/// `acc[i·NR + j] += Σ_k a[aoff.list[k] + i] · b[k·ldb + j]` (reduction step `k` broadcasts
/// `MR` consecutive values of `a` from its own offset). `b` is read as whole rows of `NR`
/// values, which callers keep 64-byte aligned: the only vector loads are aligned, the
/// broadcasts never split a cache line.
///
/// What "a value" and "·" are is the tile's: one `f32` for the fp32 tiles, a pair of bf16 in
/// one 32-bit slot, dot-multiplied into the `f32` accumulator, for the bf16 tiles
/// (`bf16.rs`).
pub(crate) trait ShiftTile {
    /// Rows of the tile (broadcast from `a`).
    const MR: usize;
    /// Columns of the tile (vector loads from `b`).
    const NR: usize;
    /// See the trait; `aoff.list.len()` reduction steps.
    fn run_shift_a(a: &[f32], aoff: Offsets<'_>, b: &[f32], ldb: usize, acc: &mut [f32]);
    /// The fused conv + pool kernel for output rows exactly 32 wide, where the instruction
    /// set has one (see [`Pool32Fn`]).
    const POOL32: Option<Pool32Fn> = None;
}

/// The fp32 micro-kernel of every op: [`ShiftTile`] and two more forms.
///
/// * [`run_rows_a`](Tile::run_rows_a): `acc[i·NR + j] += Σ_k a[aoff[i] + k] · b[k·ldb + j]`
///   (row `i` of `a` starts at its own offset; `k` may skip columns of `a`, see [`Steps`]);
/// * [`run_points`](Tile::run_points): a kernel row's taps summed over scattered points.
pub(crate) trait Tile: ShiftTile {
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
pub(crate) const POINT_TAPS: usize = 5;

/// Checks the bounds of a [`Tile::run_points`] call.
pub(crate) fn points_in_bounds(
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
pub(crate) struct Steps {
    pub(crate) rows: usize,
    pub(crate) len: usize,
    pub(crate) stride: usize,
}

impl Steps {
    /// How far into `a` the reads reach past an offset (0 for no steps).
    pub(crate) fn reach(&self) -> usize {
        if self.rows == 0 || self.len == 0 {
            0
        } else {
            (self.rows - 1) * self.stride + self.len
        }
    }
}

/// Plain Rust, any CPU: 4 × 8.
pub(crate) struct PortableTile;

impl ShiftTile for PortableTile {
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
}

impl Tile for PortableTile {
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
pub(crate) fn shift_a_in_bounds(
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
pub(crate) fn rows_a_in_bounds(
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
