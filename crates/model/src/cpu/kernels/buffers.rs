//! Buffers: aligned storage, the output-gradient views (`Maps`), the zero-padded image
//! (`Padded`) and the output sinks (`Out`).

use super::*;
use aligned_vec::{AVec, ConstAlign};

/// A zeroed `f32` buffer that begins on a 64-byte boundary (a cache line, one AVX-512 vector):
/// `aligned-vec`'s `AVec`.
pub(crate) struct Aligned(pub(crate) AVec<f32, ConstAlign<64>>);

impl Aligned {
    pub(crate) fn zeros(len: usize) -> Aligned {
        Aligned(AVec::from_iter(64, std::iter::repeat_n(0.0, len)))
    }

    pub(crate) fn get(&self) -> &[f32] {
        &self.0
    }

    pub(crate) fn get_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

/// A batch of feature maps `[images, c, h, w]`: stored densely, or as the 2×2 max-unpooling
/// of pooled values `[images, c, h / 2, w / 2]` and the window position each came from (the
/// gradient of a max-pooling, never materialised).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Maps<'a> {
    Dense(&'a [f32]),
    Unpooled(&'a [f32], &'a [u8]),
}

impl<'a> Maps<'a> {
    /// Images `first..first + n` of maps `c × h × w`.
    pub(crate) fn images(self, c: usize, h: usize, w: usize, first: usize, n: usize) -> Maps<'a> {
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
    pub(crate) fn for_each(
        self,
        c: usize,
        h: usize,
        w: usize,
        i: usize,
        mut put: impl FnMut(Values<'_>),
    ) {
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
pub(crate) enum Values<'a> {
    /// Channel, row, and the row's values.
    Row(usize, usize, &'a [f32]),
    /// Channel, row, column, value.
    Point(usize, usize, usize, f32),
}

/// Reduction steps per block, so the rows of `b` a block reads stay in the L1 cache.
pub(crate) const KC: usize = 256;

/// An image padded with zeros and laid out so that every kernel tap is a shifted view of it.
///
/// The input of tap `r` for output `(oy, ox)` is `data[offsets[r] + oy·pw + ox]`: a run of
/// consecutive outputs of one row reads a run of consecutive values, so no im2col buffer is
/// needed.
pub(crate) struct Padded {
    pub(crate) ph: usize,
    pub(crate) pw: usize,
    /// `offsets[r]` for `r = (ci, kh, kw)`: `ci·ph·pw + kh·pw + kw`, increasing.
    pub(crate) offsets: Vec<usize>,
    /// Start of a run of zeros after the image, as long as any read of one tap row (for the
    /// padding rows of a weight-gradient tile).
    pub(crate) zeros: usize,
    /// The padded image, followed by zeros.
    pub(crate) data: Vec<f32>,
}

impl Padded {
    pub(crate) fn new(g: &ConvGeometry, nr: usize) -> Padded {
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
    pub(crate) fn fill(&mut self, g: &ConvGeometry, x: Maps<'_>, i: usize) {
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
pub(crate) const MAX_TILE: usize = 256;

/// Where a forward pass writes (for a batch, a chunk of it or one image): the convolution
/// itself, or its 2×2 max-pooling with the position of each maximum (`0..4`, row-major
/// within the window).
pub(crate) enum Out<'a> {
    /// `[images, c_out, oh, ow]`.
    Conv(&'a mut [f32]),
    /// `[images, c_out, oh / 2, ow / 2]` and as many window positions.
    Pooled(&'a mut [f32], &'a mut [u8]),
}

/// Widest tile (`NR`) of any [`Tile`].
pub(crate) const MAX_LANES: usize = 32;
