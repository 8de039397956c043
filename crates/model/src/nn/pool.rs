//! Pooling: Burn's layers, which compute what PyTorch's do.
//!
//! `MaxPool2dConfig::new([k, k])` strides by `k` like `nn.MaxPool2d(k)` and drops a
//! remainder smaller than the kernel (PyTorch's default `ceil_mode=False`).

/// `nn.MaxPool2d` (Burn's `MaxPool2d`).
pub use burn::nn::pool::MaxPool2d;
/// Configuration of [`MaxPool2d`].
pub use burn::nn::pool::MaxPool2dConfig;

/// `nn.AvgPool2d` (Burn's `AvgPool2d`).
pub use burn::nn::pool::AvgPool2d;
/// Configuration of [`AvgPool2d`].
pub use burn::nn::pool::AvgPool2dConfig;

/// `nn.AdaptiveAvgPool2d` (Burn's `AdaptiveAvgPool2d`): averages each channel down to a
/// fixed `[height, width]`, `[1, 1]` for global average pooling.
pub use burn::nn::pool::AdaptiveAvgPool2d;
/// Configuration of [`AdaptiveAvgPool2d`] (`AdaptiveAvgPool2dConfig::new([1, 1])`).
pub use burn::nn::pool::AdaptiveAvgPool2dConfig;
