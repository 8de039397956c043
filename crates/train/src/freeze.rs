//! Frozen parameters (PyTorch's `p.requires_grad = False`) chosen by their path in the module
//! (`whiten.weight`, `block1.norm1.gamma`): their gradients never reach the optimizer.
//!
//! Parameter groups with their own learning rate or weight decay are Burn's own
//! (`ModuleOptimizer::with_group`, `ModuleLrScheduler::with_group`, matched by
//! `ParamGroup::from_regex` on the same paths); what Burn lacks is leaving some parameters
//! out, so that is here.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Gradients, Tensor};

/// Every float parameter's path (`block1.conv1.weight`, as Burn's optimizers and `ParamGroup`
/// see it) and id, in the module's order.
pub fn param_paths<M: Module>(model: &M) -> Vec<(String, ParamId)> {
    #[derive(Default)]
    struct Paths {
        stack: Vec<String>,
        out: Vec<(String, ParamId)>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.push((self.stack.join("."), param.id));
        }
    }
    let mut paths = Paths::default();
    model.visit(&mut paths);
    paths.out
}

/// Which parameters train and which stay as they are.
#[derive(Debug, Clone)]
pub struct Frozen {
    trainable: Vec<(String, ParamId)>,
    frozen: Vec<String>,
}

impl Frozen {
    /// Freezes the parameters of `model` whose path `frozen(path)` says so.
    pub fn by_path<M: Module>(model: &M, frozen: impl Fn(&str) -> bool) -> Self {
        let (frozen_params, trainable): (Vec<_>, Vec<_>) =
            param_paths(model).into_iter().partition(|(p, _)| frozen(p));
        Self {
            trainable,
            frozen: frozen_params.into_iter().map(|(p, _)| p).collect(),
        }
    }

    /// Freezes more parameters (airbench stops training the whitening bias after a few
    /// epochs).
    pub fn freeze(&mut self, frozen: impl Fn(&str) -> bool) {
        let (gone, kept): (Vec<_>, Vec<_>) = self.trainable.drain(..).partition(|(p, _)| frozen(p));
        self.trainable = kept;
        self.frozen.extend(gone.into_iter().map(|(p, _)| p));
    }

    /// The frozen parameters' paths.
    pub fn frozen(&self) -> &[String] {
        &self.frozen
    }

    /// The trainable parameters' paths.
    pub fn trainable(&self) -> Vec<&str> {
        self.trainable.iter().map(|(p, _)| p.as_str()).collect()
    }

    /// The gradients of one backward pass for the trainable parameters only.
    pub fn gradients<M: Module>(&self, mut grads: Gradients, model: &M) -> GradientsParams {
        let ids: Vec<ParamId> = self.trainable.iter().map(|(_, id)| *id).collect();
        GradientsParams::from_params(&mut grads, model, &ids)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use torchlet_model::SeedConvNetConfig;

    #[test]
    fn paths_name_layers_as_pytorch_does() {
        let model = SeedConvNetConfig::new().init(&Device::flex());
        let paths: Vec<String> = param_paths(&model).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths.len(), 10, "{paths:?}");
        assert_eq!(paths[0], "conv1.weight");
        assert!(paths.iter().any(|p| p == "fc2.bias"), "{paths:?}");
    }

    #[test]
    fn frozen_parameters_get_no_gradient() {
        let device = Device::flex().autodiff();
        let model = SeedConvNetConfig::new().init(&device);
        let mut frozen = Frozen::by_path(&model, |p| p.starts_with("conv1."));
        assert_eq!(frozen.frozen(), ["conv1.weight", "conv1.bias"]);
        frozen.freeze(|p| p == "fc2.bias");
        assert_eq!(frozen.trainable().len(), 7);
        let data = TensorData::new(vec![0.5f32; 3 * 32 * 32], [1, 3, 32, 32]);
        let x = Tensor::<4>::from_data(data, &device);
        let grads = frozen.gradients(model.forward(x).sum().backward(), &model);
        assert_eq!(grads.len(), 7);
        for (path, id) in param_paths(&model) {
            let has = if path.ends_with("bias") {
                grads.get::<1>(id).is_some()
            } else if path.starts_with("conv") {
                grads.get::<4>(id).is_some()
            } else {
                grads.get::<2>(id).is_some()
            };
            let is_frozen = path.starts_with("conv1.") || path == "fc2.bias";
            assert_eq!(has, !is_frozen, "{path}");
        }
    }
}
