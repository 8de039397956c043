//! The models against PyTorch and across devices.
//!
//! Reference files are in `tests/fixtures/model/`, made by `scripts/model_fixtures.py` with
//! real PyTorch (version in `manifest.json`). The PyTorch code behind each reference is
//! quoted next to the test that uses it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use torchlet_model::interop::{KeyLayout, LoadOptions, load_pytorch_with, load_safetensors_with};
use torchlet_model::{
    ImageClassifier, LinearBaselineConfig, Model, SeedConvNetConfig, load_pytorch, load_safetensors,
};

/// Agreement required with PyTorch and between devices.
const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model")
        .join(name)
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `inputs.f32`: `torch.manual_seed(0)`, models built, then `torch.rand(4, 3, 32, 32)`.
fn inputs(device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(read_f32("inputs.f32"), [4, 3, 32, 32]),
        device,
    )
}

fn max_abs_diff(logits: Tensor<2>, expected: &[f32]) -> f32 {
    max_abs_diff_of(&logits.into_data().try_to_vec::<f32>().unwrap(), expected)
}

fn max_abs_diff_of(got: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(got.len(), expected.len());
    got.iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn assert_close(what: &str, logits: Tensor<2>, expected: &[f32]) {
    assert_eq!(logits.dims(), [4, 10]);
    let diff = max_abs_diff(logits, expected);
    eprintln!("{what}: max |ours - PyTorch| = {diff:e}");
    assert!(
        diff <= TOLERANCE,
        "{what}: max abs diff {diff} > {TOLERANCE}"
    );
}

// PyTorch (scripts/model_fixtures.py):
//
//     class MyConvModel(nn.Module):
//         def __init__(self):
//             super().__init__()
//             self.model = Sequential(
//                 Conv2d(3, 32, 5, padding=2), MaxPool2d(2),
//                 Conv2d(32, 32, 5, padding=2), MaxPool2d(2),
//                 Conv2d(32, 64, 5, padding=2), MaxPool2d(2),
//                 Flatten(), Linear(1024, 64), Linear(64, 10))
//         def forward(self, x):
//             return self.model(x)
//
//     torch.manual_seed(0)
//     conv = MyConvModel().eval()
//     linear = LinearBaseline().eval()
//     inputs = torch.rand(4, 3, 32, 32)
//     with torch.no_grad():
//         conv_logits = conv(inputs)                  # -> conv_logits.f32
//     torch.save(conv.state_dict(), "conv_tutorial.pth")
#[test]
fn conv_net_from_the_tutorials_pth_matches_pytorch() {
    let device = Device::flex();
    let (model, report) = load_pytorch_with(
        SeedConvNetConfig::new().init(&device),
        fixture("conv_tutorial.pth"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(report.layout, KeyLayout::Tutorial);
    assert_eq!(report.loaded.len(), 10);
    assert!(report.loaded.contains(&"model.7.weight".to_string()));
    assert_close(
        "conv_tutorial.pth",
        model.forward(inputs(&device)),
        &read_f32("conv_logits.f32"),
    );
}

// PyTorch: the same weights under the plain keys (conv1.*, conv2.*, conv3.*, fc1.*, fc2.*):
//
//     CONV_PLAIN = {"0": "conv1", "2": "conv2", "4": "conv3", "7": "fc1", "8": "fc2"}
//     save_file(plain_keys(conv.state_dict(), CONV_PLAIN), "conv_plain.safetensors")
#[test]
fn conv_net_from_pytorch_safetensors_matches_pytorch() {
    let device = Device::flex();
    let (model, report) = load_safetensors_with(
        SeedConvNetConfig::new().init(&device),
        fixture("conv_plain.safetensors"),
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(report.layout, KeyLayout::Plain);
    assert_close(
        "conv_plain.safetensors",
        model.forward(inputs(&device)),
        &read_f32("conv_logits.f32"),
    );
}

// PyTorch:
//
//     class LinearBaseline(nn.Module):
//         def __init__(self):
//             super().__init__()
//             self.model = Sequential(Flatten(), Linear(3072, 10))
//         def forward(self, x):
//             return self.model(x)
//
//     with torch.no_grad():
//         linear_logits = linear(inputs)              # -> linear_logits.f32
//     torch.save(linear.state_dict(), "linear_tutorial.pth")        # model.1.weight, model.1.bias
//     linear_plain = plain_keys(linear.state_dict(), {"1": "fc"})  # fc.weight, fc.bias
//     torch.save(linear_plain, "linear_plain.pth")
//     save_file(linear_plain, "linear_plain.safetensors")
#[test]
fn linear_baseline_from_pytorch_matches_pytorch() {
    let device = Device::flex();
    let expected = read_f32("linear_logits.f32");
    for (file, layout) in [
        ("linear_tutorial.pth", KeyLayout::Tutorial),
        ("linear_plain.pth", KeyLayout::Plain),
    ] {
        let (model, report) = load_pytorch_with(
            LinearBaselineConfig::new().init(&device),
            fixture(file),
            &LoadOptions::new(),
        )
        .unwrap();
        assert_eq!(report.layout, layout);
        assert_close(file, model.forward(inputs(&device)), &expected);
    }
    let model = load_safetensors(
        LinearBaselineConfig::new().init(&device),
        fixture("linear_plain.safetensors"),
    )
    .unwrap();
    assert_close(
        "linear_plain.safetensors",
        model.forward(inputs(&device)),
        &expected,
    );
}

// PyTorch: a training checkpoint holding the state dict under a key:
//
//     torch.save({"epoch": 3, "model_state_dict": linear.state_dict(), "note": "checkpoint"},
//                "linear_checkpoint.pth")
#[test]
fn a_state_dict_inside_a_checkpoint_dict_loads_by_its_key() {
    let device = Device::flex();
    let options = LoadOptions::new().with_top_level_key("model_state_dict");
    let (model, report) = load_pytorch_with(
        LinearBaselineConfig::new().init(&device),
        fixture("linear_checkpoint.pth"),
        &options,
    )
    .unwrap();
    assert_eq!(report.layout, KeyLayout::Tutorial);
    assert_close(
        "linear_checkpoint.pth[model_state_dict]",
        model.forward(inputs(&device)),
        &read_f32("linear_logits.f32"),
    );
    // Without the key, the whole checkpoint is not a state dict of this model.
    let err = load_pytorch(
        LinearBaselineConfig::new().init(&device),
        fixture("linear_checkpoint.pth"),
    )
    .unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().contains("linear_checkpoint.pth"), "{err}");
    let mismatch = err.mismatch().expect("a key mismatch");
    assert_eq!(mismatch.nested_under.as_deref(), Some("model_state_dict"));
    assert!(err.to_string().contains("with_top_level_key"), "{err}");
}

// Same files as above, loaded through the run-time `Model` enum.
#[test]
fn the_model_enum_loads_pytorch_weights() {
    let device = Device::flex();
    let conv = load_pytorch(
        Model::Conv(SeedConvNetConfig::new().init(&device)),
        fixture("conv_tutorial.pth"),
    )
    .unwrap();
    assert_close(
        "Model::Conv <- conv_tutorial.pth",
        conv.forward(inputs(&device)),
        &read_f32("conv_logits.f32"),
    );
    let linear = load_pytorch(
        Model::Linear(LinearBaselineConfig::new().init(&device)),
        fixture("linear_tutorial.pth"),
    )
    .unwrap();
    assert_close(
        "Model::Linear <- linear_tutorial.pth",
        ImageClassifier::forward(&linear, inputs(&device)),
        &read_f32("linear_logits.f32"),
    );
}

// burn-store's PytorchStore renumbers Sequential indices by default (0,2,4,7,8 -> 0..4);
// the interop functions turn that off and read the tutorial's indices as they are.
#[test]
fn burn_store_would_renumber_the_tutorials_indices() {
    use burn::store::{ModuleStore, PytorchStore};
    let mut store = PytorchStore::from_file(fixture("conv_tutorial.pth"));
    let keys = store.keys().unwrap();
    assert!(keys.contains(&"model.3.weight".to_string()), "{keys:?}");
    assert!(!keys.contains(&"model.7.weight".to_string()), "{keys:?}");
    let mut store =
        PytorchStore::from_file(fixture("conv_tutorial.pth")).map_indices_contiguous(false);
    let keys = store.keys().unwrap();
    assert!(keys.contains(&"model.7.weight".to_string()), "{keys:?}");
}

// linear_tutorial.pth (LinearBaseline) into the conv net, and conv_tutorial.pth
// (MyConvModel) into the linear baseline.
#[test]
fn pytorch_weights_of_the_other_architecture_are_rejected() {
    let device = Device::flex();
    let err = load_pytorch(
        SeedConvNetConfig::new().init(&device),
        fixture("linear_tutorial.pth"),
    )
    .unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    let mismatch = err.mismatch().expect("a key mismatch");
    assert_eq!(mismatch.missing.len(), 10);
    assert_eq!(mismatch.unexpected.len(), 2);
    assert!(message.contains("linear_tutorial.pth"), "{message}");
    assert!(message.contains("model.1.weight [10, 3072]"), "{message}");
    assert!(
        message.contains("model.0.weight [32, 3, 5, 5]"),
        "{message}"
    );

    let err = load_pytorch(
        LinearBaselineConfig::new().init(&device),
        fixture("conv_tutorial.pth"),
    )
    .unwrap_err();
    let mismatch = err.mismatch().expect("a key mismatch");
    assert_eq!(
        mismatch
            .missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["model.1.weight [10, 3072]", "model.1.bias [10]"]
    );
    assert_eq!(mismatch.unexpected.len(), 10);

    // Plain keys into the conv net: nothing in common.
    let err = load_safetensors(
        SeedConvNetConfig::new().init(&device),
        fixture("linear_plain.safetensors"),
    )
    .unwrap_err();
    let mismatch = err.mismatch().expect("a key mismatch");
    assert_eq!(mismatch.missing[0].key, "conv1.weight");
    assert_eq!(mismatch.unexpected[0].key, "fc.bias");
}

/// Loads the conv net's PyTorch weights on `device` and returns its logits for the inputs.
#[allow(dead_code)]
fn conv_logits_on(device: &Device) -> Tensor<2> {
    let model = load_pytorch(
        SeedConvNetConfig::new().init(device),
        fixture("conv_tutorial.pth"),
    )
    .unwrap();
    model.forward(inputs(device))
}

#[cfg(feature = "ndarray")]
#[test]
fn flex_and_ndarray_agree() {
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    let flex = Device::flex();
    let expected = conv_logits_on(&flex)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let diff = max_abs_diff(conv_logits_on(&ndarray), &expected);
    eprintln!("conv net, NdArray vs Flex: max abs diff {diff:e}");
    assert!(diff <= TOLERANCE, "{diff}");

    let linear = |device: &Device| {
        load_pytorch(
            LinearBaselineConfig::new().init(device),
            fixture("linear_tutorial.pth"),
        )
        .unwrap()
        .forward(inputs(device))
    };
    let expected = linear(&flex).into_data().try_to_vec::<f32>().unwrap();
    let diff = max_abs_diff(linear(&ndarray), &expected);
    eprintln!("linear baseline, NdArray vs Flex: max abs diff {diff:e}");
    assert!(diff <= TOLERANCE, "{diff}");
}

// Runs on whatever wgpu finds; in CI that is a software Vulkan (lavapipe), where the first
// run compiles the shaders, so the batch is a single image.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_agrees_with_flex() {
    use burn::tensor::DeviceKind;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    let wgpu = Device::wgpu(DeviceKind::DefaultDevice);
    let probe = catch_unwind(AssertUnwindSafe(|| {
        Tensor::<1>::zeros([1], &wgpu).into_data()
    }));
    if let Err(panic) = probe {
        let reason = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown reason");
        assert!(
            std::env::var_os("CI").is_none(),
            "no usable wgpu adapter in CI: {reason}"
        );
        eprintln!("SKIPPED wgpu_agrees_with_flex: no usable wgpu adapter ({reason})");
        return;
    }

    eprintln!("wgpu adapter: {:?}", wgpu.identity());
    let flex = Device::flex();
    let one = |device: &Device| inputs(device).slice(0..1);
    let conv = |device: &Device| {
        load_pytorch(
            SeedConvNetConfig::new().init(device),
            fixture("conv_tutorial.pth"),
        )
        .unwrap()
        .forward(one(device))
    };
    let expected = conv(&flex).into_data().try_to_vec::<f32>().unwrap();
    let got = conv(&wgpu).into_data().try_to_vec::<f32>().unwrap();
    let diff = max_abs_diff_of(&got, &expected);
    eprintln!("conv net, wgpu vs Flex (batch 1): max abs diff {diff:e}");
    assert!(diff <= TOLERANCE, "{diff}");
    // And against PyTorch itself.
    let diff = max_abs_diff_of(&got, &read_f32("conv_logits.f32")[..10]);
    eprintln!("conv net, wgpu vs PyTorch (batch 1): max abs diff {diff:e}");
    assert!(diff <= TOLERANCE, "{diff}");
}

/// A gradient's values under its parameter's name (it must exist).
fn named<const D: usize>(name: &str, grad: Option<Tensor<D>>) -> (String, Vec<f32>) {
    let values = grad.unwrap().into_data().try_to_vec::<f32>().unwrap();
    (name.to_string(), values)
}

/// Loss and every parameter gradient of one training step (CrossEntropy on `targets`).
fn loss_and_grads(
    model: &torchlet_model::SeedConvNet,
    images: Tensor<4>,
    targets: &[i64],
) -> (f32, Vec<(String, Vec<f32>)>) {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::Int;
    let device = images.device();
    let targets =
        Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [targets.len()]), &device);
    let logits = model.forward(images);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, targets);
    let value = loss.clone().into_data().try_to_vec::<f32>().unwrap()[0];
    let grads = loss.backward();
    let conv_bias = |c: &burn::nn::conv::Conv2d| c.bias.as_ref().unwrap().val().grad(&grads);
    let lin_bias = |l: &burn::nn::Linear| l.bias.as_ref().unwrap().val().grad(&grads);
    let grads_list = vec![
        named("conv1.weight", model.conv1.weight.val().grad(&grads)),
        named("conv1.bias", conv_bias(&model.conv1)),
        named("conv2.weight", model.conv2.weight.val().grad(&grads)),
        named("conv2.bias", conv_bias(&model.conv2)),
        named("conv3.weight", model.conv3.weight.val().grad(&grads)),
        named("conv3.bias", conv_bias(&model.conv3)),
        named("fc1.weight", model.fc1.weight.val().grad(&grads)),
        named("fc1.bias", lin_bias(&model.fc1)),
        named("fc2.weight", model.fc2.weight.val().grad(&grads)),
        named("fc2.bias", lin_bias(&model.fc2)),
    ];
    (value, grads_list)
}

/// torchlet's CPU kernels (the default on Flex) against Burn's own `Conv2d` on the same
/// weights and batch: logits, loss and every gradient agree within `TOLERANCE` — for the
/// tutorial's network (its three blocks run as one fused op), with ReLU (rectified inside
/// that op) and with batch norm (one block at a time, unpooled convolutions).
#[test]
fn cpu_kernels_agree_with_burns_conv2d() {
    use torchlet_model::Activation;
    let tutorial = SeedConvNetConfig::new();
    cpu_kernels_agree_on(&tutorial);
    cpu_kernels_agree_on(&tutorial.clone().with_activation(Activation::Relu));
    cpu_kernels_agree_on(
        &tutorial
            .with_activation(Activation::Relu)
            .with_batch_norm(true),
    );
}

/// A local xorshift generator. Other tests in this binary draw from Flex's process-wide RNG
/// at the same time, so weights from `init` and images from `Tensor::random` would change from
/// run to run; and the comparison below is sensitive to the data: on roughly one random batch
/// in ten, the two gradients differ by up to 1.4e-4 on a 6e-3 gradient (deterministically for
/// that batch; ~5e-9 elsewhere). Most likely two values of a max-pool window lie within
/// rounding of each other, so Burn's and torchlet's convolutions (whose outputs differ by
/// rounding) pick different maxima and that window's gradient goes to another position (either
/// is a valid subgradient); not yet proven. Fixed data keeps the test a test of the kernels.
struct Local(u64);

impl Local {
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u1 = (self.uniform() * 0.5 + 0.5).max(1e-7);
        let u2 = self.uniform() * 0.5 + 0.5;
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

impl burn::module::ModuleMapper for Local {
    /// Redraws every randomly initialised tensor (weights, biases) within the bound of its
    /// initialiser; batch norm's constant initial scale, shift and statistics stay.
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let values = tensor.clone().into_data().try_to_vec::<f32>().unwrap();
        let bound = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let constant = values.iter().all(|v| *v == values[0]);
        if constant {
            return burn::module::Param::from_mapped_value(id, tensor, mapper);
        }
        let fresh: Vec<f32> = values.iter().map(|_| self.uniform() * bound).collect();
        let mut out =
            Tensor::<D>::from_data(TensorData::new(fresh, tensor.shape()), &tensor.device());
        if tensor.is_require_grad() {
            out = out.require_grad();
        }
        burn::module::Param::from_mapped_value(id, out, mapper)
    }
}

fn cpu_kernels_agree_on(config: &SeedConvNetConfig) {
    use burn::module::Module;
    use torchlet_model::CpuKernels;

    let device = Device::flex().autodiff();
    assert!(torchlet_model::cpu::supports(&device));
    let burn_model = config
        .clone()
        .with_cpu_kernels(Some(CpuKernels::Burn))
        .init(&device)
        .map(&mut Local(0x9e37_79b9_7f4a_7c15));
    let mut ours = burn_model.clone();
    ours.cpu_kernels = CpuKernels::Auto;
    // Two odd-sized batches so the batch split over threads has a remainder.
    for (batch, seed) in [(5usize, 1u64), (66, 2)] {
        let mut local = Local(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let pixels: Vec<f32> = (0..batch * 3072).map(|_| local.normal()).collect();
        let images = Tensor::<4>::from_data(TensorData::new(pixels, [batch, 3, 32, 32]), &device);
        let targets: Vec<i64> = (0..batch as i64).map(|i| (i * 7) % 10).collect();

        let (loss_burn, grads_burn) = loss_and_grads(&burn_model, images.clone(), &targets);
        let (loss_ours, grads_ours) = loss_and_grads(&ours, images.clone(), &targets);
        assert!(
            (loss_burn - loss_ours).abs() <= TOLERANCE,
            "{config:?}: loss: Burn {loss_burn} vs ours {loss_ours}"
        );
        for ((name, gb), (_, go)) in grads_burn.iter().zip(&grads_ours) {
            let scale = gb.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let diff = max_abs_diff_of(go, gb);
            assert!(
                diff <= TOLERANCE * scale,
                "{config:?}, {name} (batch {batch}): max |Δgrad| {diff} (largest |grad| {scale})"
            );
        }
        // Inference (no autodiff) agrees too.
        let images = images.inner();
        let logits_burn = burn_model.valid().forward(images.clone()).into_data();
        let logits_ours = ours.valid().forward(images).into_data();
        assert_eq!(logits_ours.shape().as_slice(), &[batch, 10]);
        let diff = max_abs_diff_of(
            &logits_ours.try_to_vec::<f32>().unwrap(),
            &logits_burn.try_to_vec::<f32>().unwrap(),
        );
        assert!(diff <= TOLERANCE, "{config:?}: logits: max |Δ| {diff}");
    }
}

/// What the CPU kernels cannot run they decline (`None`, nothing computed) instead of
/// panicking, so callers fall back to Burn's `conv2d`.
#[test]
fn cpu_kernels_decline_what_they_cannot_run() {
    use torchlet_model::cpu;
    let flex = Device::flex();
    let ok = |d: &Device| {
        (
            Tensor::<4>::zeros([2, 3, 8, 8], d),
            Tensor::<4>::zeros([4, 3, 5, 5], d),
            Tensor::<1>::zeros([4], d),
        )
    };
    let (x, w, b) = ok(&flex);
    assert!(cpu::conv2d(x.clone(), w.clone(), b.clone(), 2).is_some());
    // Weights for 2 input channels, not 3.
    let w2 = Tensor::<4>::zeros([4, 2, 5, 5], &flex);
    assert!(cpu::conv2d(x.clone(), w2, b.clone(), 2).is_none());
    // Bias of the wrong length, a non-square kernel, padding as large as the kernel.
    assert!(cpu::conv2d(x.clone(), w.clone(), Tensor::<1>::zeros([3], &flex), 2).is_none());
    let w35 = Tensor::<4>::zeros([4, 3, 3, 5], &flex);
    assert!(cpu::conv2d_pool2(x.clone(), w35, b.clone(), 1).is_none());
    assert!(cpu::conv2d_pool2(x.clone(), w.clone(), b.clone(), 5).is_none());
    // A stack whose second block does not read the first block's 4 channels (8×8 → 4×4 → 2×2).
    let next = |c_in: usize| {
        (
            Tensor::<4>::zeros([4, c_in, 3, 3], &flex),
            Tensor::<1>::zeros([4], &flex),
            1,
        )
    };
    let stack = |second: usize| [(w.clone(), b.clone(), 2), next(second), next(4)];
    let y = cpu::conv_pool_stack3(x.clone(), stack(4), false).expect("blocks that chain");
    assert_eq!(y.dims(), [2, 4, 1, 1]);
    assert!(cpu::conv_pool_stack3(x, stack(3), false).is_none());
    // Not a Flex device.
    #[cfg(feature = "ndarray")]
    {
        #[allow(deprecated)]
        let ndarray = Device::ndarray();
        assert!(!cpu::supports(&ndarray));
        let (x, w, b) = ok(&ndarray);
        assert!(cpu::conv2d_pool2(x, w, b, 2).is_none());
    }
}

/// A configuration saved before the `cpu_kernels` option existed still loads, as `Auto`.
#[test]
fn a_conv_config_without_cpu_kernels_loads() {
    use torchlet_model::CpuKernels;
    let json = r#"{"num_classes": 10, "activation": "None", "batch_norm": false, "dropout": 0.0}"#;
    let config: SeedConvNetConfig = serde_json::from_str(json).unwrap();
    assert_eq!(config.cpu_kernels, None);
    let model = config.init(&Device::flex());
    assert_eq!(model.cpu_kernels, CpuKernels::Auto);
    let burn: SeedConvNetConfig =
        serde_json::from_str(&json.replace('}', r#", "cpu_kernels": "Burn"}"#)).unwrap();
    assert_eq!(burn.cpu_kernels, Some(CpuKernels::Burn));
}
