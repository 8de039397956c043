//! Batch normalization: Burn's `BatchNorm`, under PyTorch's name.
//!
//! Burn's momentum is PyTorch's: `running = (1 - momentum) * running + momentum * batch`,
//! default 0.1, and its epsilon defaults to PyTorch's 1e-5. Its parameters are called
//! `gamma` and `beta`; [`crate::interop`] reads and writes them as PyTorch's `weight` and
//! `bias` (and ignores PyTorch's `num_batches_tracked`). Like PyTorch's, it normalizes with
//! the batch statistics while training (on an autodiff device) and with the running
//! statistics otherwise.
//!
//! One difference: Burn folds the *biased* batch variance (divided by `n`) into
//! `running_var` where PyTorch folds the unbiased one (divided by `n - 1`), `n` being
//! batch × height × width. The running variances of the two drift apart by a factor of at most
//! `n / (n - 1)` per update, under 0.1% for any CIFAR-sized batch; loaded running statistics
//! (evaluation) are used exactly as PyTorch uses them.

use burn::tensor::Device;

use super::LayerConfigError;

/// `nn.BatchNorm2d` (Burn's `BatchNorm`).
pub use burn::nn::BatchNorm as BatchNorm2d;
/// Configuration of [`BatchNorm2d`] (`BatchNorm2dConfig::new(num_features)`, with
/// `with_epsilon` and `with_momentum`, both in PyTorch's convention).
pub use burn::nn::BatchNormConfig as BatchNorm2dConfig;

/// `nn.BatchNorm2d(num_features, eps, momentum)`, checked: an error instead of Burn's panic
/// for zero features, a non-positive epsilon or a momentum outside `[0, 1]`.
pub fn batch_norm2d(
    num_features: usize,
    eps: f64,
    momentum: f64,
    device: &Device,
) -> Result<BatchNorm2d, LayerConfigError> {
    if num_features == 0 {
        return Err(LayerConfigError::Zero {
            layer: "BatchNorm2d",
            setting: "num_features",
            value: "0".into(),
        });
    }
    if !(eps.is_finite() && eps > 0.0) {
        return Err(LayerConfigError::BatchNorm {
            setting: "epsilon",
            range: "finite and positive",
            value: eps,
        });
    }
    if !(momentum.is_finite() && (0.0..=1.0).contains(&momentum)) {
        return Err(LayerConfigError::BatchNorm {
            setting: "momentum",
            range: "in [0, 1]",
            value: momentum,
        });
    }
    Ok(BatchNorm2dConfig::new(num_features)
        .with_epsilon(eps)
        .with_momentum(momentum)
        .init(device))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use burn::module::Module;
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;

    #[test]
    fn running_stats_follow_pytorchs_momentum() {
        // PyTorch: bn = nn.BatchNorm2d(1, momentum=0.4); bn(x) on x = [0, 2] (mean 1)
        // gives running_mean 0.6 * 0 + 0.4 * 1 = 0.4. Its running_var would be
        // 0.6 * 1 + 0.4 * 2 (unbiased variance) = 1.4; Burn's uses the biased variance 1,
        // giving 1.0 (see the module docs).
        let device = Device::flex().autodiff();
        let bn = batch_norm2d(1, 1e-5, 0.4, &device).unwrap();
        let x = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 2.0], [2, 1, 1, 1]), &device);
        let _ = bn.forward(x);
        let mean = bn
            .running_mean
            .value_sync()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let var = bn
            .running_var
            .value_sync()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!((mean[0] - 0.4).abs() < 1e-6, "{mean:?}");
        assert!((var[0] - 1.0).abs() < 1e-5, "{var:?}");
        // Burn counts gamma, beta and the two running statistics; PyTorch only the first two.
        assert_eq!(bn.num_params(), 4);
    }

    #[test]
    fn bad_settings_are_errors() {
        let device = Device::flex();
        assert!(matches!(
            batch_norm2d(0, 1e-5, 0.1, &device),
            Err(LayerConfigError::Zero { .. })
        ));
        assert!(matches!(
            batch_norm2d(4, 0.0, 0.1, &device),
            Err(LayerConfigError::BatchNorm {
                setting: "epsilon",
                ..
            })
        ));
        assert!(matches!(
            batch_norm2d(4, 1e-5, 1.5, &device),
            Err(LayerConfigError::BatchNorm {
                setting: "momentum",
                ..
            })
        ));
    }
}
