//! The model zoo on torchlet's CPU kernels against the same networks on Burn's `conv2d`
//! (`cpu::set_layer_kernels(CpuKernels::Burn)`): same weights, same batch, the loss, the
//! logits and every parameter's gradient within 1e-4 (relative where values exceed 1).
//!
//! One test only: it flips the process-wide switch, which no other test in this binary reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use torchlet_model::zoo::{Airbench94Config, Resnet18Config, Vgg11Config};
use torchlet_model::{CpuKernels, ImageClassifier, Model, ModelConfig, cpu};

/// Agreement required with Burn's layers.
const TOLERANCE: f32 = 1e-4;

/// Values by tensor name.
type Named = Vec<(String, Vec<f32>)>;

/// Every trainable tensor by name (running statistics left out: Burn's batch norm shares them
/// between clones, so each forward pass moves them).
fn params(model: &Model) -> Named {
    model
        .collect(None, None, true)
        .iter()
        .filter(|t| !t.name.contains("running"))
        .map(|t| {
            let data = bridge::to_data(t).unwrap();
            (t.name.clone(), data.try_into_vec::<f32>().unwrap())
        })
        .collect()
}

/// Loss, logits, and each parameter's gradient (read back as `w − w'` after an SGD step with
/// learning rate 1), with the convolutions on `kernels`.
fn step(model: &Model, kernels: CpuKernels, images: &Tensor<4>) -> (f32, Vec<f32>, Named) {
    cpu::set_layer_kernels(kernels);
    let device = images.device();
    let n = images.dims()[0];
    let targets: Vec<i64> = (0..n as i64).map(|i| (i * 3) % 10).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);
    let logits = model.forward(images.clone());
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits.clone(), targets);
    let value = loss.clone().into_data().try_into_vec::<f32>().unwrap()[0];
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let after = SgdConfig::new().init().step(1.0, model.clone(), grads);
    let grads = params(model)
        .into_iter()
        .zip(params(&after))
        .map(|((name, w), (_, w2))| (name, w.iter().zip(&w2).map(|(a, b)| a - b).collect()))
        .collect();
    let logits = logits.inner().into_data().try_into_vec::<f32>().unwrap();
    (value, logits, grads)
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

#[test]
fn every_zoo_network_trains_the_same_on_torchlets_kernels_and_burns() {
    let device = Device::flex().autodiff();
    let configs: [ModelConfig; 3] = [
        Airbench94Config::new().into(),
        Resnet18Config::new().with_base_width(8).into(),
        Vgg11Config::new().with_base_width(8).into(),
    ];
    for config in configs {
        device.seed(7);
        let model = config.init(&device);
        let name = model.name();
        // Normalised-looking inputs, an odd batch.
        let images = Tensor::<4>::random([5, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let (loss_burn, logits_burn, grads_burn) = step(&model, CpuKernels::Burn, &images);
        let (loss_ours, logits_ours, grads_ours) = step(&model, CpuKernels::Auto, &images);
        assert!(
            (loss_burn - loss_ours).abs() <= TOLERANCE * loss_burn.abs().max(1.0),
            "{name}: loss: Burn {loss_burn} vs ours {loss_ours}"
        );
        let d = rel_diff(&logits_ours, &logits_burn);
        assert!(d <= TOLERANCE, "{name}: logits: {d}");
        assert!(!grads_burn.is_empty());
        for ((param, gb), (_, go)) in grads_burn.iter().zip(&grads_ours) {
            let d = rel_diff(go, gb);
            assert!(
                d <= TOLERANCE,
                "{name}: {param}: max |Δgrad| / max |grad| {d}"
            );
        }
        // Inference agrees too.
        cpu::set_layer_kernels(CpuKernels::Burn);
        let burn = model.valid().forward(images.clone().inner());
        cpu::set_layer_kernels(CpuKernels::Auto);
        let ours = model.valid().forward(images.inner());
        let d = rel_diff(
            &ours.into_data().try_into_vec::<f32>().unwrap(),
            &burn.into_data().try_into_vec::<f32>().unwrap(),
        );
        assert!(d <= TOLERANCE, "{name}: inference logits: {d}");
    }
}
