//! Layers named as in `torch.nn`, to write models the way they are written in PyTorch.
//!
//! ```
//! use burn::module::Module;
//! use burn::tensor::{Device, Tensor};
//! use torchlet_model::nn::{Conv2d, Conv2dConfig, Flatten, Linear, LinearConfig, Padding, ReLU};
//!
//! #[derive(Module, Debug)]
//! struct Net {
//!     conv1: Conv2d,
//!     relu: ReLU,
//!     flatten: Flatten,
//!     fc: Linear,
//! }
//!
//! let device = Device::flex();
//! let net = Net {
//!     // nn.Conv2d(3, 8, 3, padding="same")
//!     conv1: Conv2dConfig::new(3, 8, [3, 3]).with_padding(Padding::Same).init(&device),
//!     relu: ReLU::new(),
//!     flatten: Flatten::new(),
//!     fc: LinearConfig::new(8 * 4 * 4, 10).init(&device),
//! };
//! let x = Tensor::<4>::zeros([2, 3, 4, 4], &device);
//! let x = net.relu.forward(net.conv1.forward(x)); // [2, 8, 4, 4]
//! let logits = net.fc.forward(net.flatten.forward(x)); // [2, 10]
//! assert_eq!(logits.dims(), [2, 10]);
//! ```
//!
//! # What is Burn's and what is written here
//!
//! Most layers are Burn's own (`burn::nn`), re-exported under their PyTorch names because they
//! already compute what PyTorch's do, with PyTorch's default initialization:
//!
//! | here | Burn | notes |
//! |---|---|---|
//! | [`MaxPool2d`], [`AvgPool2d`], [`AdaptiveAvgPool2d`] | the same | `MaxPool2dConfig::new([k, k])` strides by `k` like `nn.MaxPool2d(k)` |
//! | [`ReLU`] | `Relu` | |
//! | [`Dropout`], [`Linear`] | the same | `Linear` keeps its weight `[in, out]`; interop transposes it |
//!
//! Written here:
//!
//! * [`Conv2d`]: a convolution with exactly PyTorch's parameters (`weight`, optional `bias`)
//!   and PyTorch's `padding="same"` (stride 1, extra padding at the end for even kernels).
//!   Its forward pass is one function ([`Conv2d::forward`]), which runs torchlet's own CPU
//!   kernels ([`crate::cpu`]) on a Flex device for a square kernel, stride 1 and the same
//!   padding on every side, and Burn's `conv2d` otherwise; [`Conv2d::forward_max_pool`]
//!   fuses a following `MaxPool2d(2)` into it.
//! * [`BatchNorm2d`]: Burn's `BatchNorm` (the same fields, so the same keys, records and
//!   momentum convention, `running = (1 - m) * running + m * batch`, default 0.1; `gamma` /
//!   `beta`, saved as PyTorch's `weight` / `bias` by [`crate::interop`]), whose training pass
//!   runs on torchlet's CPU path on Flex.
//! * [`GELU`]: Burn's `Gelu` (`GELU::new()` is the exact erf form, PyTorch's default), the
//!   exact form on torchlet's CPU path on Flex.
//! * [`Flatten`]: `nn.Flatten()` as a module (`[B, C, H, W] → [B, C·H·W]`); Burn has only the
//!   tensor method.
//! * [`BasicBlock`]: ResNet's residual block, with the shortcut PyTorch code usually writes
//!   as an `nn.Sequential` (so its keys are `shortcut.0.*`, `shortcut.1.*`).

mod activation;
mod block;
mod conv;
mod linear;
mod norm;
mod pool;

pub use activation::{GELU, ReLU};
pub use block::{BasicBlock, BasicBlockConfig, ShortcutLayer};
pub use conv::{Conv2d, Conv2dConfig, Padding};
pub use linear::{Dropout, DropoutConfig, Flatten, Linear, LinearConfig};
pub use norm::{BatchNorm, BatchNorm2d, BatchNorm2dConfig, batch_norm2d};
pub use pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d,
    MaxPool2dConfig,
};

/// Why a layer configuration cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerConfigError {
    /// A size that must be at least 1 is zero.
    #[error("{layer}: {setting} must be at least 1, got {value}")]
    Zero {
        /// The layer (`Conv2d`, `BatchNorm2d`, ...).
        layer: &'static str,
        /// The setting (`in_channels`, `kernel_size`, ...).
        setting: &'static str,
        /// The value given.
        value: String,
    },
    /// `Padding::Same` with a stride other than 1, which PyTorch rejects too.
    #[error(
        "Conv2d: Padding::Same needs stride [1, 1] (as PyTorch's padding=\"same\"), got stride \
         {stride:?}: use Padding::Explicit for a strided convolution"
    )]
    SameWithStride {
        /// The stride given.
        stride: [usize; 2],
    },
    /// A batch norm's `epsilon` or `momentum` out of range.
    #[error(
        "BatchNorm2d: {setting} must be {range}, got {value} (PyTorch's defaults: eps 1e-5, \
         momentum 0.1)"
    )]
    BatchNorm {
        /// `epsilon` or `momentum`.
        setting: &'static str,
        /// The range it must be in.
        range: &'static str,
        /// The value given.
        value: f64,
    },
}
