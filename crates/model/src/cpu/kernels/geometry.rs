//! The geometry of one convolution call and the size arithmetic on it.

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

    pub(crate) fn k_dim(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }

    pub(crate) fn in_image(&self) -> usize {
        self.c_in * self.height * self.width
    }

    pub(crate) fn out_plane(&self) -> usize {
        self.out_height() * self.out_width()
    }

    pub(crate) fn out_image(&self) -> usize {
        self.c_out * self.out_plane()
    }

    /// The geometry of the input gradient as a forward convolution of `dy`.
    pub(crate) fn transposed(&self) -> ConvGeometry {
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

pub(crate) fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}
