//! `BasicBlock`: ResNet's residual block of two 3×3 convolutions.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{BatchNorm2d, Conv2d, Conv2dConfig, LayerConfigError, Padding, ReLU, batch_norm2d};

/// Batch norm settings of the block: PyTorch's defaults.
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// Configuration of [`BasicBlock`].
#[derive(Config, Debug)]
pub struct BasicBlockConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output (of both convolutions).
    pub out_channels: usize,
    /// Stride of the first convolution (and of the shortcut): 2 halves the image.
    #[config(default = 1)]
    pub stride: usize,
}

impl BasicBlockConfig {
    /// Whether the block needs a projection shortcut (a 1×1 convolution and a batch norm):
    /// when it changes the number of channels or the image size.
    pub fn projects(&self) -> bool {
        self.stride != 1 || self.in_channels != self.out_channels
    }

    /// Builds the block on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<BasicBlock, LayerConfigError> {
        let conv3x3 = |c_in: usize, stride: usize| {
            Conv2dConfig::new(c_in, self.out_channels, [3, 3])
                .with_stride([stride, stride])
                .with_padding(Padding::Explicit(1, 1))
                .with_bias(false)
                .try_init(device)
        };
        let bn = || batch_norm2d(self.out_channels, BN_EPS, BN_MOMENTUM, device);
        let shortcut = if self.projects() {
            let conv = Conv2dConfig::new(self.in_channels, self.out_channels, [1, 1])
                .with_stride([self.stride, self.stride])
                .with_bias(false)
                .try_init(device)?;
            vec![ShortcutLayer::Conv(conv), ShortcutLayer::Norm(bn()?)]
        } else {
            Vec::new()
        };
        Ok(BasicBlock {
            conv1: conv3x3(self.in_channels, self.stride)?,
            bn1: bn()?,
            conv2: conv3x3(self.out_channels, 1)?,
            bn2: bn()?,
            shortcut,
            relu: ReLU::new(),
        })
    }

    /// Builds the block on `device`.
    ///
    /// # Panics
    ///
    /// Panics if the configuration is invalid (see [`try_init`](Self::try_init)).
    pub fn init(&self, device: &Device) -> BasicBlock {
        match self.try_init(device) {
            Ok(block) => block,
            Err(err) => panic!("invalid BasicBlockConfig: {err}"),
        }
    }
}

/// One layer of a [`BasicBlock`]'s projection shortcut.
#[derive(Module, Debug)]
pub enum ShortcutLayer {
    /// `nn.Conv2d(in, out, 1, stride, bias=False)`.
    Conv(Conv2d),
    /// `nn.BatchNorm2d(out)`.
    Norm(BatchNorm2d),
}

impl ShortcutLayer {
    /// Applies the layer.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ShortcutLayer::Conv(conv) => conv.forward(x),
            ShortcutLayer::Norm(bn) => bn.forward(x),
        }
    }
}

/// ResNet's basic residual block (as in ResNet-18/34):
///
/// ```text
/// out = relu(bn1(conv1(x)))          conv1: 3×3, stride s, padding 1, no bias
/// out = bn2(conv2(out))              conv2: 3×3, stride 1, padding 1, no bias
/// out = relu(out + shortcut(x))      shortcut: identity, or 1×1 conv stride s + bn
/// ```
///
/// The shortcut is a list, as PyTorch code writes it as an `nn.Sequential` (empty for the
/// identity), so its keys are PyTorch's: `shortcut.0.weight` (the 1×1 convolution) and
/// `shortcut.1.*` (the batch norm).
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3×3 convolution, with the block's stride.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm2d,
    /// Second 3×3 convolution.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm2d,
    /// Projection shortcut (`[conv 1×1, batch norm]`), empty for the identity.
    pub shortcut: Vec<ShortcutLayer>,
    /// The ReLU after `bn1` and after the sum.
    pub relu: ReLU,
}

impl BasicBlock {
    /// Maps `[batch, in_channels, h, w]` to `[batch, out_channels, ⌈h / s⌉, ⌈w / s⌉]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [batch, out, h / s, w / s]
        let out = self
            .relu
            .forward(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = self.bn2.forward(self.conv2.forward(out));
        // Identity, or [batch, in, h, w] -> [batch, out, h / s, w / s]
        let shortcut = self.shortcut.iter().fold(x, |x, layer| layer.forward(x));
        self.relu.forward(out + shortcut)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use burn::module::Module;
    use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    fn keys(block: &BasicBlock) -> Vec<String> {
        block
            .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    #[test]
    fn identity_shortcut_keeps_the_shape_and_has_no_weights() {
        let device = Device::flex();
        let block = BasicBlockConfig::new(8, 8).init(&device);
        assert!(block.shortcut.is_empty());
        let x = Tensor::<4>::random([2, 8, 6, 6], Distribution::Default, &device);
        assert_eq!(block.forward(x).dims(), [2, 8, 6, 6]);
        // 2 convs 8*8*9, 2 batch norms of 8 channels (gamma, beta and, as Burn counts them,
        // the two running statistics)
        assert_eq!(block.num_params(), 2 * 8 * 8 * 9 + 2 * 4 * 8);
        assert!(keys(&block).iter().all(|k| !k.starts_with("shortcut")));
    }

    #[test]
    fn projection_shortcut_changes_channels_and_halves_the_image() {
        let device = Device::flex();
        let block = BasicBlockConfig::new(4, 8).with_stride(2).init(&device);
        let x = Tensor::<4>::random([2, 4, 7, 8], Distribution::Default, &device);
        assert_eq!(block.forward(x).dims(), [2, 8, 4, 4]);
        let keys = keys(&block);
        for key in [
            "shortcut.0.weight",
            "shortcut.1.weight",
            "shortcut.1.bias",
            "shortcut.1.running_mean",
            "shortcut.1.running_var",
            "conv1.weight",
            "bn2.running_var",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
        }
        assert!(!keys.iter().any(|k| k.ends_with("conv1.bias")), "{keys:?}");
        // convs 4*8*9 + 8*8*9, shortcut 4*8, three batch norms of 8 channels (gamma, beta
        // and, as Burn counts them, the two running statistics)
        assert_eq!(
            block.num_params(),
            4 * 8 * 9 + 8 * 8 * 9 + 4 * 8 + 3 * 4 * 8
        );
        // Same stride, more channels: still a projection, image size kept.
        let wider = BasicBlockConfig::new(4, 8).init(&device);
        assert_eq!(wider.shortcut.len(), 2);
        let x = Tensor::<4>::random([1, 4, 5, 5], Distribution::Default, &device);
        assert_eq!(wider.forward(x).dims(), [1, 8, 5, 5]);
    }

    #[test]
    fn zero_channels_are_an_error() {
        let err = BasicBlockConfig::new(0, 8)
            .try_init(&Device::flex())
            .unwrap_err();
        assert!(matches!(err, LayerConfigError::Zero { .. }), "{err}");
    }
}
