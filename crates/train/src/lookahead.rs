//! Lookahead over an exponential moving average of the weights (airbench's `LookaheadState`):
//! every few steps the EMA moves toward the current weights and the weights are reset to
//! it. Works on any Burn [`Module`]; written here because Burn 0.22 has no weight EMA.
//!
//! Only parameters take part; batch norm's running statistics (Burn keeps them outside the
//! parameters) follow the trained weights as they are.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// The moving average of a model's float parameters, flattened, by parameter id.
#[derive(Debug, Clone)]
pub struct Lookahead {
    ema: HashMap<ParamId, Tensor<1>>,
}

impl Lookahead {
    /// Starts the average at `model`'s current weights.
    pub fn new<M: Module>(model: &M) -> Self {
        struct Collect(HashMap<ParamId, Tensor<1>>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let value = param.val().detach();
                let n = value.shape().num_elements();
                self.0.insert(param.id, value.reshape([n]));
            }
        }
        let mut collect = Collect(HashMap::new());
        model.visit(&mut collect);
        Self { ema: collect.0 }
    }

    /// Number of parameter tensors averaged.
    pub fn len(&self) -> usize {
        self.ema.len()
    }

    /// Whether the model had no float parameters.
    pub fn is_empty(&self) -> bool {
        self.ema.is_empty()
    }

    /// `ema = decay · ema + (1 − decay) · weights`, then the weights become `ema`; returns
    /// the updated model. `decay = 0` keeps the weights (and restarts the average there),
    /// `decay = 1` puts the average into the model. Parameters the average has not seen
    /// (another model) are left alone.
    pub fn update<M: Module>(&mut self, model: M, decay: f64) -> M {
        struct Step<'a> {
            ema: &'a mut HashMap<ParamId, Tensor<1>>,
            decay: f64,
        }
        impl ModuleMapper for Step<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let id = param.id;
                let Some(old) = self.ema.get(&id).cloned() else {
                    return param;
                };
                let decay = self.decay;
                let mut new_ema = None;
                let param = param.map(|value| {
                    let require_grad = value.is_require_grad();
                    let dims = value.dims();
                    let n = value.shape().num_elements();
                    if old.dims() != [n] {
                        return value;
                    }
                    let flat = value.detach().reshape([n]);
                    let ema = old
                        .mul_scalar(decay)
                        .add(flat.mul_scalar(1.0 - decay))
                        .detach();
                    new_ema = Some(ema.clone());
                    ema.reshape(dims).detach().set_require_grad(require_grad)
                });
                if let Some(ema) = new_ema {
                    self.ema.insert(id, ema);
                }
                param
            }
        }
        model.map(&mut Step {
            ema: &mut self.ema,
            decay,
        })
    }
}

/// airbench's lookahead decay at step `step` of `total`: `0.95⁵ · (step / total)³` (small
/// early, when the weights move fast; about 0.77 at the end).
pub fn airbench_decay(step: usize, total: usize) -> f64 {
    let t = step as f64 / total.max(1) as f64;
    0.95f64.powi(5) * t.powi(3)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    fn weights(model: &Linear) -> Vec<f32> {
        model.weight.val().into_data().try_to_vec::<f32>().unwrap()
    }

    fn set(model: Linear, value: f32) -> Linear {
        let device = Device::flex();
        let w = Tensor::<2>::from_data(TensorData::new(vec![value; 6], [3, 2]), &device);
        Linear {
            weight: model.weight.map(|_| w),
            ..model
        }
    }

    #[test]
    fn moves_the_average_and_resets_the_weights_to_it() {
        let device = Device::flex();
        let model = set(LinearConfig::new(3, 2).init(&device), 1.0);
        let mut la = Lookahead::new(&model);
        assert_eq!(la.len(), 2); // weight and bias
        // Train "moves" the weights to 3; decay 0.75 gives 0.75·1 + 0.25·3 = 1.5.
        let model = la.update(set(model, 3.0), 0.75);
        assert!(weights(&model).iter().all(|w| (w - 1.5).abs() < 1e-6));
        // Next: weights at 5.5, average at 1.5: 0.5·1.5 + 0.5·5.5 = 3.5.
        let model = la.update(set(model, 5.5), 0.5);
        assert!(weights(&model).iter().all(|w| (w - 3.5).abs() < 1e-6));
        // decay 0 keeps the weights and restarts the average there; decay 1 brings it back.
        let model = la.update(set(model, 7.0), 0.0);
        assert!(weights(&model).iter().all(|w| (w - 7.0).abs() < 1e-6));
        let model = la.update(set(model, -2.0), 1.0);
        assert!(weights(&model).iter().all(|w| (w - 7.0).abs() < 1e-6));
    }

    #[test]
    fn airbench_decay_follows_the_cube_of_progress() {
        assert_eq!(airbench_decay(0, 100), 0.0);
        assert!((airbench_decay(50, 100) - 0.95f64.powi(5) * 0.125).abs() < 1e-12);
        assert!((airbench_decay(100, 100) - 0.773_780_937_5).abs() < 1e-9);
    }
}
