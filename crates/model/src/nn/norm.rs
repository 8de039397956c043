//! Batch normalization: Burn's `BatchNorm` under PyTorch's name, with a faster training pass
//! on the CPU.
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

use burn::config::Config;
use burn::module::{Flag, Module, Param, RunningState};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use super::LayerConfigError;

/// `nn.BatchNorm2d`.
pub type BatchNorm2d = BatchNorm;

/// Configuration of [`BatchNorm2d`] (`BatchNorm2dConfig::new(num_features)`, with
/// `with_epsilon` and `with_momentum`, both in PyTorch's convention); Burn's `BatchNormConfig`
/// with the same fields and defaults.
#[derive(Config, Debug)]
pub struct BatchNorm2dConfig {
    /// Channels of the input.
    pub num_features: usize,
    /// Added to the variance before its square root (PyTorch's `eps`).
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of the batch in the running statistics (PyTorch's `momentum`).
    #[config(default = 0.1)]
    pub momentum: f64,
}

impl BatchNorm2dConfig {
    /// Builds the layer on `device`: `gamma` 1, `beta` 0, running mean 0, running variance 1.
    ///
    /// # Panics
    ///
    /// Panics on zero features, a non-positive epsilon or a momentum outside `[0, 1]`, as
    /// Burn's does; [`batch_norm2d`] returns an error instead.
    pub fn init(&self, device: &Device) -> BatchNorm2d {
        match batch_norm2d(self.num_features, self.epsilon, self.momentum, device) {
            Ok(bn) => bn,
            Err(err) => panic!("invalid BatchNorm2dConfig: {err}"),
        }
    }
}

/// `nn.BatchNorm2d` (exported as [`BatchNorm2d`]): Burn's `BatchNorm` (the same fields, so
/// the same keys and records), whose training pass runs on torchlet's CPU path on a Flex
/// device ([`crate::cpu::try_batch_norm_train`]: two passes over memory each way instead of
/// Burn's dozen), unless [`crate::cpu::layer_kernels`] says Burn.
///
/// The type is named `BatchNorm`, as Burn's is, because Burn's PyTorch adapters recognise a
/// batch norm by its type name when they map `gamma`/`beta` to `weight`/`bias`.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale, `[num_features]` (PyTorch's `weight`).
    pub gamma: Param<Tensor<1>>,
    /// Shift, `[num_features]` (PyTorch's `bias`).
    pub beta: Param<Tensor<1>>,
    /// Whether the layer trains (uses and updates batch statistics on an autodiff device);
    /// off for a frozen layer, as in Burn.
    pub training: Param<Flag>,
    /// Running mean, `[num_features]`.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (biased) variance, `[num_features]`.
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the batch in the running statistics.
    pub momentum: f64,
    /// Added to the variance before its square root.
    pub epsilon: f64,
}

impl BatchNorm {
    /// Normalizes `[batch, num_features, height, width]`: with the batch's statistics while
    /// training on an autodiff device (updating the running ones), with the running
    /// statistics otherwise.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        if input.device().is_autodiff() && self.training.is_enabled() {
            self.forward_train(input)
        } else {
            let device = input.device();
            burn::tensor::module::batch_norm(
                input,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                self.epsilon,
            )
        }
    }

    /// Channels of the input.
    pub fn num_features(&self) -> usize {
        let [n] = self.gamma.dims();
        n
    }

    fn forward_train(&self, input: Tensor<4>) -> Tensor<4> {
        let (gamma, beta) = (self.gamma.val(), self.beta.val());
        #[cfg(feature = "flex")]
        let input = if crate::cpu::layer_kernels() == crate::CpuKernels::Auto {
            match crate::cpu::try_batch_norm_train(input, gamma.clone(), beta.clone(), self.epsilon)
            {
                Ok(out) => return self.update_running(out.mean, out.variance, out.output),
                Err(input) => input,
            }
        } else {
            input
        };
        let out = burn::tensor::module::batch_norm_train(input, gamma, beta, self.epsilon);
        self.update_running(out.mean, out.variance, out.output)
    }

    /// Folds the batch's statistics into the running ones (as Burn's `BatchNorm` does) and
    /// returns `output`.
    fn update_running(&self, mean: Tensor<1>, var: Tensor<1>, output: Tensor<4>) -> Tensor<4> {
        let device = output.device();
        let m = self.momentum;
        let fold = |running: &RunningState<Tensor<1>>, batch: Tensor<1>| {
            let value = running
                .value_sync()
                .to_device(&device)
                .mul_scalar(1.0 - m)
                .add(batch.detach().mul_scalar(m));
            running.update(value.detach());
        };
        fold(&self.running_mean, mean);
        fold(&self.running_var, var);
        output
    }
}

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
    Ok(BatchNorm {
        gamma: Initializer::Ones.init([num_features], device),
        beta: Initializer::Zeros.init([num_features], device),
        training: Param::from_bool(true),
        running_mean: RunningState::new(Tensor::zeros([num_features], device)),
        running_var: RunningState::new(Tensor::ones([num_features], device)),
        momentum,
        epsilon: eps,
    })
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
