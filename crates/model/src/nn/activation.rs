//! Activations: Burn's, under PyTorch's names.

/// `nn.ReLU()`: `max(x, 0)` element-wise (Burn's `Relu`).
pub use burn::nn::Relu as ReLU;

use burn::module::Module;
use burn::tensor::Tensor;

/// `nn.GELU()`: `x * Φ(x)` element-wise, the exact erf form with `GELU::new()` as in
/// PyTorch's default `approximate="none"`; `GELU::new_approximate()` is PyTorch's
/// `approximate="tanh"`.
///
/// Burn's `Gelu` computes both; the exact form on a Flex device runs instead as one pass
/// over memory each way on torchlet's CPU path ([`crate::cpu::try_gelu`]), unless
/// [`crate::cpu::layer_kernels`] says Burn.
#[derive(Module, Debug, Default)]
pub struct GELU {
    /// Whether to use the tanh approximation.
    pub approximate: bool,
}

impl GELU {
    /// The exact GELU (`nn.GELU()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The tanh approximation (`nn.GELU(approximate="tanh")`).
    pub fn new_approximate() -> Self {
        Self { approximate: true }
    }

    /// Applies GELU element-wise; any shape.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if self.approximate {
            return burn::tensor::activation::gelu_approximate(input);
        }
        #[cfg(feature = "flex")]
        let input = if crate::cpu::layer_kernels() == crate::CpuKernels::Auto {
            match crate::cpu::try_gelu(input) {
                Ok(output) => return output,
                Err(input) => input,
            }
        } else {
            input
        };
        burn::tensor::activation::gelu(input)
    }
}
