//! How many parameters a configuration asks for, counted before anything is built.
//!
//! A configuration can come from a file someone else wrote (a checkpoint's `state.json`, a
//! run's `config.json`): its sizes are untrusted lengths. Every built-in configuration's
//! `validate` counts the parameters its network would have, with overflow checks, and refuses
//! more than [`MAX_PARAMETERS`] before a single tensor is allocated.

use crate::ModelConfigError;

/// The most parameters a built-in configuration may ask for: 2³⁰ (1,073,741,824, 4 GiB of
/// `f32` weights, before gradients and optimizer state). The largest built-in network at
/// full width, VGG-16, has 14.7 million.
pub const MAX_PARAMETERS: u64 = 1 << 30;

/// A parameter count that saturates to `None` when it no longer fits a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count(Option<u64>);

impl Count {
    /// No parameters.
    pub(crate) const ZERO: Count = Count(Some(0));

    /// The product of `factors`, as a count.
    pub(crate) fn product(factors: &[usize]) -> Count {
        Count(
            factors
                .iter()
                .try_fold(1u64, |acc, &f| acc.checked_mul(u64::try_from(f).ok()?)),
        )
    }

    /// A `c_in → c_out` convolution with a `k × k` kernel (and a bias when `bias`).
    pub(crate) fn conv(c_in: usize, c_out: usize, k: usize, bias: bool) -> Count {
        Count::product(&[c_in, c_out, k, k]).plus(Count::product(&[c_out, usize::from(bias)]))
    }

    /// A `inputs → outputs` linear layer (and a bias when `bias`).
    pub(crate) fn linear(inputs: usize, outputs: usize, bias: bool) -> Count {
        Count::conv(inputs, outputs, 1, bias)
    }

    /// A batch norm's scale and shift (its running statistics are buffers, as in PyTorch).
    pub(crate) fn batch_norm(channels: usize) -> Count {
        Count::product(&[2, channels])
    }

    /// `None` as a count: more than a `u64` holds.
    pub(crate) const OVERFLOW: Count = Count(None);

    /// This count plus `other`.
    pub(crate) fn plus(self, other: Count) -> Count {
        Count(self.0.zip(other.0).and_then(|(a, b)| a.checked_add(b)))
    }

    /// The count, `None` past `u64::MAX`.
    pub(crate) fn get(self) -> Option<u64> {
        self.0
    }

    /// `Ok` when the count is at most [`MAX_PARAMETERS`], else the error naming `model`.
    pub(crate) fn check(self, model: &'static str) -> Result<(), ModelConfigError> {
        match self.0 {
            Some(n) if n <= MAX_PARAMETERS => Ok(()),
            count => Err(ModelConfigError::TooManyParameters {
                model,
                count,
                limit: MAX_PARAMETERS,
            }),
        }
    }
}

impl std::iter::Sum for Count {
    fn sum<I: Iterator<Item = Count>>(iter: I) -> Count {
        iter.fold(Count::ZERO, Count::plus)
    }
}
