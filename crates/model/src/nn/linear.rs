//! Fully connected layers and the shape and regularization modules around them.

use burn::module::Module;
use burn::tensor::Tensor;

/// `nn.Linear`: Burn's `Linear`, with PyTorch's initialization. Burn keeps the weight as
/// `[in, out]`; [`crate::interop`] transposes it to PyTorch's `[out, in]` and back.
pub use burn::nn::Linear;
/// Configuration of [`Linear`] (`LinearConfig::new(in, out).with_bias(false)` for
/// `nn.Linear(in, out, bias=False)`).
pub use burn::nn::LinearConfig;

/// `nn.Dropout`: Burn's `Dropout`, active only on autodiff devices while training.
pub use burn::nn::Dropout;
/// Configuration of [`Dropout`] (`DropoutConfig::new(p)`).
pub use burn::nn::DropoutConfig;

/// `nn.Flatten()`: `[batch, channels, height, width] → [batch, channels * height * width]`,
/// channel-major, one row per image. It has no parameters.
#[derive(Module, Debug, Default)]
pub struct Flatten;

impl Flatten {
    /// The module (it has no settings).
    pub fn new() -> Self {
        Self
    }

    /// Flattens every dimension after the batch: `[B, C, H, W] → [B, C·H·W]`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        input.flatten(1, 3)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;

    #[test]
    fn flatten_keeps_the_batch_and_orders_channels_first() {
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 3 * 2 * 2).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [2, 3, 2, 2]), &device);
        let y = Flatten::new().forward(x);
        assert_eq!(y.dims(), [2, 12]);
        // Row-major [B, C, H, W] flattened per image is the same memory order.
        assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), values);
        assert_eq!(Flatten::new().num_params(), 0);
    }
}
