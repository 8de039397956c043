//! Activations: Burn's, under PyTorch's names.

/// `nn.ReLU()`: `max(x, 0)` element-wise (Burn's `Relu`).
pub use burn::nn::Relu as ReLU;

/// `nn.GELU()`: `x * Φ(x)` element-wise, the exact erf form with `GELU::new()` as in
/// PyTorch's default `approximate="none"` (Burn's `Gelu`; `GELU::new_approximate()` is
/// PyTorch's `approximate="tanh"`).
pub use burn::nn::Gelu as GELU;
