//! Architecture, configuration and forward-pass tests (Flex).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::config::{Config, config_to_json};
use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use torchlet_model::interop::{TorchLayer, TorchLayout, state_dict_shapes};
use torchlet_model::{
    Activation, CpuKernels, FC1_INPUTS, ImageClassifier, KeyLayout, LINEAR_INPUTS,
    LinearBaselineConfig, Model, ModelConfig, ModelConfigError, ModelKind, SeedConvNet,
    SeedConvNetConfig,
};

fn images(batch: usize, device: &Device) -> Tensor<4> {
    Tensor::random([batch, 3, 32, 32], Distribution::Uniform(0.0, 1.0), device)
}

#[test]
fn seed_conv_net_has_the_tutorials_145578_parameters() {
    let model = SeedConvNetConfig::new().init(&Device::flex());
    // conv1 3*32*25+32, conv2 32*32*25+32, conv3 32*64*25+64, fc1 1024*64+64, fc2 64*10+10
    assert_eq!(
        2432 + 25_632 + 51_264 + 65_600 + 650,
        145_578,
        "arithmetic of the comment"
    );
    assert_eq!(model.num_params(), 145_578);
}

#[test]
fn linear_baseline_has_30730_parameters() {
    let model = LinearBaselineConfig::new().init(&Device::flex());
    assert_eq!(model.num_params(), 3072 * 10 + 10);
}

#[test]
fn options_add_the_expected_parameters() {
    let device = Device::flex();
    let bn = SeedConvNetConfig::new().with_batch_norm(true).init(&device);
    // gamma + beta per channel are parameters; running mean/var are state.
    let extra = 2 * (32 + 32 + 64);
    assert!(bn.num_params() >= 145_578 + extra, "{}", bn.num_params());
    let relu_dropout = SeedConvNetConfig::new()
        .with_activation(Activation::Relu)
        .with_dropout(0.3)
        .init(&device);
    assert_eq!(relu_dropout.num_params(), 145_578);
    let twelve = SeedConvNetConfig::new().with_num_classes(12).init(&device);
    assert_eq!(twelve.num_params(), 145_578 + 2 * 64 + 2);
}

#[test]
fn forward_gives_one_row_of_logits_per_image() {
    let device = Device::flex();
    let conv = SeedConvNetConfig::new().init(&device);
    let linear = LinearBaselineConfig::new().init(&device);
    for batch in [1, 3, 7] {
        assert_eq!(conv.forward(images(batch, &device)).dims(), [batch, 10]);
        assert_eq!(linear.forward(images(batch, &device)).dims(), [batch, 10]);
    }
}

#[test]
fn linear_baseline_treats_images_independently() {
    // The tutorial's torch.flatten(imgs) mixed the batch; ours must not: an image's logits
    // do not depend on the other images of the batch.
    let device = Device::flex();
    let model = LinearBaselineConfig::new().init(&device);
    let batch = images(4, &device);
    let all = model.forward(batch.clone()).into_data();
    let second = model.forward(batch.slice(1..2)).into_data();
    let all = all.try_to_vec::<f32>().unwrap();
    let second = second.try_to_vec::<f32>().unwrap();
    for (a, b) in all[10..20].iter().zip(&second) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn every_option_runs_forward_and_backward() {
    let device = Device::flex().autodiff();
    let config = SeedConvNetConfig::new()
        .with_activation(Activation::Relu)
        .with_batch_norm(true)
        .with_dropout(0.5)
        .with_num_classes(7);
    let model = config.init(&device);
    assert_eq!(model.num_classes(), 7);
    let logits = model.forward(images(2, &device));
    assert_eq!(logits.dims(), [2, 7]);
    let grads = logits.sum().backward();
    let grad = model
        .conv1
        .weight
        .grad(&grads)
        .expect("conv1 has a gradient");
    assert_eq!(grad.dims(), [32, 3, 5, 5]);

    // Evaluation mode: no autodiff, no dropout, batch norm on running statistics, so the
    // same image gives the same logits alone or in a batch.
    let eval = model.valid();
    let plain = Device::flex();
    let batch = images(3, &plain);
    let all = eval
        .forward(batch.clone())
        .to_data()
        .try_to_vec::<f32>()
        .unwrap();
    let first = eval
        .forward(batch.slice(0..1))
        .to_data()
        .try_to_vec::<f32>()
        .unwrap();
    for (a, b) in all[..7].iter().zip(&first) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn config_reads_back_from_the_model() {
    let config = SeedConvNetConfig::new()
        .with_activation(Activation::Relu)
        .with_batch_norm(true)
        .with_dropout(0.25)
        .with_num_classes(5);
    let model = config.init(&Device::flex());
    let back = model.config();
    assert_eq!(config_to_json(&back), config_to_json(&config));
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    let device = Device::flex();
    assert_eq!(
        SeedConvNetConfig::new()
            .with_dropout(1.0)
            .try_init(&device)
            .err(),
        Some(ModelConfigError::Dropout(1.0))
    );
    assert!(
        SeedConvNetConfig::new()
            .with_dropout(f64::NAN)
            .validate()
            .is_err()
    );
    assert_eq!(
        LinearBaselineConfig::new()
            .with_num_classes(0)
            .try_init(&device)
            .err(),
        Some(ModelConfigError::NoClasses)
    );
    assert!(
        ModelConfig::Conv(SeedConvNetConfig::new().with_num_classes(0))
            .try_init(&device)
            .is_err()
    );
}

#[test]
fn models_are_chosen_by_name() {
    let device = Device::flex();
    let linear: ModelConfig = "linear".parse().unwrap();
    let conv: ModelConfig = " Conv ".parse().unwrap();
    assert_eq!(linear.kind(), ModelKind::Linear);
    assert_eq!(conv.kind(), ModelKind::Conv);
    assert!(matches!(
        "resnet".parse::<ModelConfig>(),
        Err(ModelConfigError::UnknownModel(name)) if name == "resnet"
    ));
    for kind in ModelKind::ALL {
        assert_eq!(kind.name().parse::<ModelKind>().unwrap(), kind);
        let model = ModelConfig::default_for(kind).init(&device);
        assert_eq!(model.kind(), kind);
        assert_eq!(model.forward(images(2, &device)).dims(), [2, 10]);
    }
    let model: Model = ModelConfig::default_for(ModelKind::Conv).init(&device);
    assert_eq!(model.num_params(), 145_578);
    assert_eq!(ImageClassifier::num_classes(&model), 10);
}

#[test]
fn model_config_survives_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let config = ModelConfig::Conv(
        SeedConvNetConfig::new()
            .with_activation(Activation::Relu)
            .with_dropout(0.1),
    );
    config.save(&path).unwrap();
    let json = std::fs::read_to_string(&path).unwrap();
    assert!(
        json.contains("\"Conv\"") && json.contains("\"Relu\""),
        "{json}"
    );
    let back = ModelConfig::load(&path).unwrap();
    assert_eq!(config_to_json(&back), config_to_json(&config));
    let ModelConfig::Conv(conv) = back else {
        panic!("expected the conv config")
    };
    assert_eq!(conv.activation, Activation::Relu);
    assert_eq!(conv.dropout, 0.1);
}

#[test]
fn sequential_indices_match_the_tutorial() {
    let device = Device::flex();
    let seed = SeedConvNetConfig::new().init(&device);
    let layers: Vec<(&str, usize)> = seed
        .torch_layers()
        .iter()
        .map(|l| (l.name, l.index))
        .collect();
    // Conv2d, MaxPool2d, Conv2d, MaxPool2d, Conv2d, MaxPool2d, Flatten, Linear, Linear
    assert_eq!(
        layers,
        [
            ("conv1", 0),
            ("conv2", 2),
            ("conv3", 4),
            ("fc1", 7),
            ("fc2", 8)
        ]
    );

    let full = SeedConvNetConfig::new()
        .with_activation(Activation::Relu)
        .with_batch_norm(true)
        .with_dropout(0.5)
        .init(&device);
    // conv bn relu pool x3 (0..=11), flatten 12, dropout 13, fc1 14, relu 15, dropout 16, fc2 17
    let expected = [
        ("conv1", 0),
        ("bn1", 1),
        ("conv2", 4),
        ("bn2", 5),
        ("conv3", 8),
        ("bn3", 9),
        ("fc1", 14),
        ("fc2", 17),
    ];
    let got: Vec<TorchLayer> = full.torch_layers();
    let got: Vec<(&str, usize)> = got.iter().map(|l| (l.name, l.index)).collect();
    assert_eq!(got, expected);

    let linear = LinearBaselineConfig::new().init(&device);
    assert_eq!(linear.torch_layers()[0].index, 1);
}

#[test]
fn state_dict_keys_are_the_tutorials() {
    let device = Device::flex();
    let keys: Vec<String> =
        state_dict_shapes(&SeedConvNetConfig::new().init(&device), KeyLayout::Tutorial)
            .into_iter()
            .map(|t| format!("{} {:?}", t.key, t.shape))
            .collect();
    // The keys and shapes of MyConvModel().state_dict() in PyTorch.
    assert_eq!(
        keys,
        [
            "model.0.weight [32, 3, 5, 5]",
            "model.0.bias [32]",
            "model.2.weight [32, 32, 5, 5]",
            "model.2.bias [32]",
            "model.4.weight [64, 32, 5, 5]",
            "model.4.bias [64]",
            "model.7.weight [64, 1024]",
            "model.7.bias [64]",
            "model.8.weight [10, 64]",
            "model.8.bias [10]",
        ]
    );
    let bn: Vec<String> = state_dict_shapes(
        &SeedConvNetConfig::new().with_batch_norm(true).init(&device),
        KeyLayout::Plain,
    )
    .into_iter()
    .map(|t| t.key)
    .filter(|k| k.starts_with("bn1."))
    .collect();
    assert_eq!(
        bn,
        [
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var"
        ]
    );
    let linear = state_dict_shapes(
        &Model::Linear(LinearBaselineConfig::new().init(&device)),
        KeyLayout::Plain,
    );
    assert_eq!(linear[0].key, "fc.weight");
    assert_eq!(linear[0].shape, [10, 3072]);
}

// ---------------------------------------------------------------------------------------
// Images of other sizes and channel counts.

/// The shapes the built-ins are checked at beyond CIFAR-10's: MNIST-like grayscale, a larger
/// RGB image, and one whose side is odd after the first pooling (30 → 15 → 7 → 3).
const OTHER_INPUTS: [[usize; 3]; 3] = [[1, 28, 28], [3, 64, 64], [3, 30, 30]];

fn images_of(batch: usize, [c, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::random([batch, c, h, w], Distribution::Uniform(0.0, 1.0), device)
}

#[test]
fn the_default_input_is_cifars_and_changes_nothing() {
    let device = Device::flex();
    assert_eq!(SeedConvNetConfig::new().input, [3, 32, 32]);
    assert_eq!(LinearBaselineConfig::new().input, [3, 32, 32]);
    assert_eq!(SeedConvNetConfig::new().fc1_inputs(), Ok(FC1_INPUTS));
    assert_eq!(LinearBaselineConfig::new().inputs(), Ok(LINEAR_INPUTS));
    let conv = SeedConvNetConfig::new().init(&device);
    assert_eq!(conv.num_params(), 145_578);
    assert_eq!(conv.input_shape(), Some([3, 32, 32]));
    let linear = LinearBaselineConfig::new().init(&device);
    assert_eq!(linear.input_shape(), Some([3, 32, 32]));
    let model: Model = ModelConfig::default_for(ModelKind::Linear).init(&device);
    assert_eq!(model.input_shape(), Some([3, 32, 32]));
}

#[test]
fn both_built_ins_take_other_image_shapes() {
    let device = Device::flex();
    // Conv net, by hand (conv1 C*32*25+32, conv2 25,632, conv3 51,264, fc2 650):
    // * 1x28x28: 28 -> 14 -> 7 -> 3, fc1 64*3*3 = 576 inputs: 576*64+64 = 36,928;
    //   conv1 1*32*25+32 = 832; total 832 + 25,632 + 51,264 + 36,928 + 650 = 115,306.
    // * 3x64x64: 64 -> 32 -> 16 -> 8, fc1 64*8*8 = 4,096 inputs: 4,096*64+64 = 262,208;
    //   conv1 2,432; total 2,432 + 25,632 + 51,264 + 262,208 + 650 = 342,186.
    // * 3x30x30: 30 -> 15 -> 7 -> 3, fc1 576 inputs (36,928); total 116,906.
    // Linear baseline: C*H*W*10 + 10.
    assert_eq!(832 + 25_632 + 51_264 + 36_928 + 650, 115_306);
    assert_eq!(2_432 + 25_632 + 51_264 + 262_208 + 650, 342_186);
    assert_eq!(2_432 + 25_632 + 51_264 + 36_928 + 650, 116_906);
    let expected = [
        ([1, 28, 28], 576, 115_306, 784 * 10 + 10),
        ([3, 64, 64], 4_096, 342_186, 12_288 * 10 + 10),
        ([3, 30, 30], 576, 116_906, 2_700 * 10 + 10),
    ];
    for (input, fc1, conv_params, linear_params) in expected {
        let conv_config = SeedConvNetConfig::new().with_input(input);
        assert_eq!(conv_config.fc1_inputs(), Ok(fc1), "{input:?}");
        let conv = conv_config.init(&device);
        assert_eq!(conv.num_params(), conv_params, "{input:?}");
        assert_eq!(conv.conv1.weight.dims(), [32, input[0], 5, 5]);
        assert_eq!(conv.fc1.weight.dims(), [fc1, 64]);
        assert_eq!(conv.input_shape(), Some(input));
        assert_eq!(conv.config().input, input);
        assert_eq!(
            config_to_json(&conv.config()),
            config_to_json(&conv_config),
            "{input:?}"
        );

        let linear_config = LinearBaselineConfig::new()
            .with_input(input)
            .with_num_classes(4);
        let linear = linear_config.init(&device);
        assert_eq!(linear.num_params(), (linear_params - 10) / 10 * 4 + 4);
        assert_eq!(linear.input_shape(), Some(input));
        assert_eq!(
            config_to_json(&linear.config()),
            config_to_json(&linear_config)
        );

        for batch in [1, 3] {
            let x = images_of(batch, input, &device);
            assert_eq!(conv.forward(x.clone()).dims(), [batch, 10], "{input:?}");
            assert_eq!(linear.forward(x).dims(), [batch, 4], "{input:?}");
        }
        // Through the enum, too.
        let model = ModelConfig::Conv(SeedConvNetConfig::new().with_input(input)).init(&device);
        assert_eq!(model.input_shape(), Some(input));
        assert_eq!(model.forward(images_of(2, input, &device)).dims(), [2, 10]);
    }
}

#[test]
fn a_grayscale_conv_net_trains_forward_and_backward_with_every_option() {
    let device = Device::flex().autodiff();
    let model = SeedConvNetConfig::new()
        .with_input([1, 28, 28])
        .with_activation(Activation::Relu)
        .with_batch_norm(true)
        .with_dropout(0.25)
        .init(&device);
    let logits = model.forward(images_of(4, [1, 28, 28], &device));
    assert_eq!(logits.dims(), [4, 10]);
    let grads = logits.sum().backward();
    let grad = model
        .conv1
        .weight
        .grad(&grads)
        .expect("conv1 has a gradient");
    assert_eq!(grad.dims(), [32, 1, 5, 5]);
    let grad = model.fc1.weight.grad(&grads).expect("fc1 has a gradient");
    assert_eq!(grad.dims(), [576, 64]);
}

#[test]
fn inputs_too_small_are_typed_errors_naming_the_shape() {
    let device = Device::flex();
    for input in [[3, 7, 32], [3, 32, 7], [0, 32, 32], [1, 0, 0], [3, 4, 4]] {
        let config = SeedConvNetConfig::new().with_input(input);
        let expected = ModelConfigError::InputBelowMinimum {
            model: "SeedConvNet",
            input,
            smallest: [1, 8, 8],
        };
        assert_eq!(config.validate(), Err(expected.clone()));
        assert_eq!(config.try_init(&device).err(), Some(expected.clone()));
        assert_eq!(
            ModelConfig::Conv(config).try_init(&device).err(),
            Some(expected)
        );
    }
    let err = SeedConvNetConfig::new()
        .with_input([1, 7, 28])
        .validate()
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("1x7x28") && message.contains("1x8x8"),
        "{message}"
    );
    // 8 x 8 is the smallest: three poolings leave 1 x 1.
    let smallest = SeedConvNetConfig::new().with_input([1, 8, 8]).init(&device);
    assert_eq!(smallest.fc1.weight.dims(), [64, 64]);
    assert_eq!(
        smallest.forward(images_of(2, [1, 8, 8], &device)).dims(),
        [2, 10]
    );

    for input in [[0, 1, 1], [3, 0, 5], [3, 5, 0]] {
        let err = LinearBaselineConfig::new()
            .with_input(input)
            .try_init(&device);
        assert_eq!(
            err.err(),
            Some(ModelConfigError::InputBelowMinimum {
                model: "LinearBaseline",
                input,
                smallest: [1, 1, 1],
            })
        );
    }
    let tiny = LinearBaselineConfig::new()
        .with_input([1, 1, 1])
        .init(&device);
    assert_eq!(tiny.num_params(), 20);

    // A shape whose number of values does not fit in usize is refused, not overflowed.
    let huge = [usize::MAX / 2, 1 << 20, 1 << 20];
    assert!(matches!(
        SeedConvNetConfig::new().with_input(huge).validate(),
        Err(ModelConfigError::InputTooLarge { .. })
    ));
    assert!(matches!(
        LinearBaselineConfig::new().with_input(huge).validate(),
        Err(ModelConfigError::InputTooLarge { .. })
    ));
}

#[test]
fn configs_saved_before_the_input_field_still_load() {
    let conv = r#"{"num_classes": 10, "activation": "Relu", "batch_norm": false, "dropout": 0.0}"#;
    let config = SeedConvNetConfig::load_binary(conv.as_bytes()).unwrap();
    assert_eq!(config.input, [3, 32, 32]);
    assert_eq!(config.activation, Activation::Relu);
    assert_eq!(config.init(&Device::flex()).num_params(), 145_578);
    let with_cpu = r#"{"cpu_kernels": "Burn", "num_classes": 5, "activation": "None", "batch_norm": true, "dropout": 0.5}"#;
    let config = SeedConvNetConfig::load_binary(with_cpu.as_bytes()).unwrap();
    assert_eq!(config.input, [3, 32, 32]);
    assert_eq!(config.cpu_kernels, Some(CpuKernels::Burn));

    let linear = LinearBaselineConfig::load_binary(r#"{"num_classes": 7}"#.as_bytes()).unwrap();
    assert_eq!((linear.num_classes, linear.input), (7, [3, 32, 32]));

    // A run's config.json holds the enum.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, format!(r#"{{"Conv": {conv}}}"#)).unwrap();
    let ModelConfig::Conv(back) = ModelConfig::load(&path).unwrap() else {
        panic!("expected the conv config")
    };
    assert_eq!(back.input, [3, 32, 32]);
    std::fs::write(&path, r#"{"Linear": {"num_classes": 10}}"#).unwrap();
    let ModelConfig::Linear(back) = ModelConfig::load(&path).unwrap() else {
        panic!("expected the linear config")
    };
    assert_eq!(back.input, [3, 32, 32]);

    // And a new one keeps its input through JSON.
    let config = ModelConfig::Conv(SeedConvNetConfig::new().with_input([1, 28, 28]));
    config.save(&path).unwrap();
    let json = std::fs::read_to_string(&path).unwrap();
    assert!(json.contains("\"input\""), "{json}");
    let ModelConfig::Conv(back) = ModelConfig::load(&path).unwrap() else {
        panic!("expected the conv config")
    };
    assert_eq!(back.input, [1, 28, 28]);
    // Missing required fields are still errors.
    assert!(SeedConvNetConfig::load_binary(r#"{"input": [1, 8, 8]}"#.as_bytes()).is_err());
}

/// The parameter names of the record (what checkpoints and burnpack files hold), in order.
fn record_keys<M: ModuleSnapshot>(model: &M) -> Vec<String> {
    model
        .collect(None, None, false)
        .into_iter()
        .map(|t| t.name)
        .collect()
}

#[test]
fn the_input_field_adds_no_record_keys() {
    let device = Device::flex();
    for bn in [false, true] {
        let default = SeedConvNetConfig::new().with_batch_norm(bn).init(&device);
        let gray = SeedConvNetConfig::new()
            .with_batch_norm(bn)
            .with_input([1, 28, 28])
            .init(&device);
        let keys = record_keys(&default);
        assert_eq!(keys, record_keys(&gray));
        assert!(!keys.iter().any(|k| k.contains("input")), "{keys:?}");
        assert_eq!(keys.len(), if bn { 10 + 3 * 4 } else { 10 });
    }
    let linear = record_keys(&LinearBaselineConfig::new().init(&device));
    assert_eq!(linear, ["fc.weight", "fc.bias"]);
    let linear = record_keys(
        &LinearBaselineConfig::new()
            .with_input([1, 28, 28])
            .init(&device),
    );
    assert_eq!(linear, ["fc.weight", "fc.bias"]);
    // The interop keys and shapes: the tutorial's, with fc1 576 wide.
    let gray = SeedConvNetConfig::new()
        .with_input([1, 28, 28])
        .init(&device);
    let keys: Vec<String> = state_dict_shapes(&gray, KeyLayout::Tutorial)
        .into_iter()
        .map(|t| format!("{} {:?}", t.key, t.shape))
        .collect();
    assert_eq!(keys[0], "model.0.weight [32, 1, 5, 5]");
    assert_eq!(keys[6], "model.7.weight [64, 576]");
    assert_eq!(keys.len(), 10);
}

/// Logits, and the loss's gradient for every parameter and for the images, in a fixed order.
fn step(model: &SeedConvNet, images: Tensor<4>, targets: &[i64]) -> Vec<(String, Vec<f32>)> {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::Int;
    let device = images.device();
    let images = images.require_grad();
    let targets =
        Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [targets.len()]), &device);
    let logits = model.forward(images.clone());
    let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    let mut out = vec![("logits".to_string(), values(logits.clone().detach()))];
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, targets);
    let grads = loss.backward();
    let v = |name: &str, t: Option<Tensor<4>>| {
        let t = t.unwrap_or_else(|| panic!("{name} has a gradient"));
        (name.to_string(), t.into_data().try_to_vec::<f32>().unwrap())
    };
    let v1 = |name: &str, t: Option<Tensor<1>>| {
        let t = t.unwrap_or_else(|| panic!("{name} has a gradient"));
        (name.to_string(), t.into_data().try_to_vec::<f32>().unwrap())
    };
    let v2 = |name: &str, t: Option<Tensor<2>>| {
        let t = t.unwrap_or_else(|| panic!("{name} has a gradient"));
        (name.to_string(), t.into_data().try_to_vec::<f32>().unwrap())
    };
    out.push(v("images", images.grad(&grads)));
    for (name, conv) in [
        ("conv1", &model.conv1),
        ("conv2", &model.conv2),
        ("conv3", &model.conv3),
    ] {
        out.push(v(&format!("{name}.weight"), conv.weight.grad(&grads)));
        let bias = conv.bias.as_ref().unwrap();
        out.push(v1(&format!("{name}.bias"), bias.grad(&grads)));
    }
    for (name, fc) in [("fc1", &model.fc1), ("fc2", &model.fc2)] {
        out.push(v2(&format!("{name}.weight"), fc.weight.grad(&grads)));
        let bias = fc.bias.as_ref().unwrap();
        out.push(v1(&format!("{name}.bias"), bias.grad(&grads)));
    }
    out
}

/// Largest difference between `got` and `want`, relative to the largest `|want|` (at least 1).
fn relative_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    diff / scale
}

/// The default path (`CpuKernels::Auto`) against Burn's `Conv2d` on the same weights and batch
/// at other image shapes (networks for other shapes than `KERNEL_INPUT` run on Burn's layers,
/// so this checks that the choice is made and nothing else changes): logits, and the gradients of every parameter and of the
/// images, within 1e-4 — for the tutorial's network (the three blocks as one fused op), with
/// ReLU, and with batch norm (the unfused convolutions).
#[test]
fn cpu_kernels_equal_burns_path_at_other_shapes() {
    let device = Device::flex().autodiff();
    assert!(torchlet_model::cpu::supports(&device));
    let shapes = [
        OTHER_INPUTS[0],
        OTHER_INPUTS[1],
        OTHER_INPUTS[2],
        [2, 9, 13],
    ];
    let options = [
        SeedConvNetConfig::new(),
        SeedConvNetConfig::new().with_activation(Activation::Relu),
        SeedConvNetConfig::new()
            .with_activation(Activation::Relu)
            .with_batch_norm(true),
    ];
    for input in shapes {
        for config in &options {
            let burn_model = config
                .clone()
                .with_input(input)
                .with_cpu_kernels(Some(CpuKernels::Burn))
                .init(&device);
            let mut ours = burn_model.clone();
            ours.cpu_kernels = CpuKernels::Auto;
            // Batches of 5 and 11: the split over threads has a remainder.
            for (batch, seed) in [(5usize, 3u64), (11, 4)] {
                device.seed(seed);
                let images = Tensor::<4>::random(
                    [batch, input[0], input[1], input[2]],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                );
                let targets: Vec<i64> = (0..batch as i64).map(|i| (i * 3) % 10).collect();
                let want = step(&burn_model, images.clone(), &targets);
                let got = step(&ours, images, &targets);
                for ((name, w), (_, g)) in want.iter().zip(&got) {
                    let diff = relative_diff(g, w);
                    assert!(
                        diff <= 1e-4,
                        "{input:?}, {config:?}, batch {batch}: {name} differs by {diff}"
                    );
                }
            }
        }
    }
}

/// The single-block ops on one-channel and odd-sized images against Burn's `conv2d` and
/// `max_pool2d`, forward and backward.
#[test]
fn single_block_kernels_take_one_channel_and_odd_sizes() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use torchlet_model::cpu;

    let device = Device::flex().autodiff();
    for (c_in, h, w, c_out) in [
        (1, 28, 28, 32),
        (1, 30, 30, 8),
        (3, 64, 64, 32),
        (1, 9, 13, 5),
    ] {
        device.seed((c_in * h * w) as u64);
        let conv = Conv2dConfig::new([c_in, c_out], [5, 5])
            .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
            .init(&device);
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let x = Tensor::<4>::random([3, c_in, h, w], Distribution::Normal(0.0, 1.0), &device);
        for pooled in [false, true] {
            let run = |ours: bool| {
                let x = x.clone().detach().require_grad();
                let (weight, bias) = (conv.weight.val(), conv.bias.as_ref().unwrap().val());
                let y = match (ours, pooled) {
                    (true, false) => cpu::conv2d(x.clone(), weight.clone(), bias.clone(), 2),
                    (true, true) => cpu::conv2d_pool2(x.clone(), weight.clone(), bias.clone(), 2),
                    (false, false) => Some(conv.forward(x.clone())),
                    (false, true) => Some(pool.forward(conv.forward(x.clone()))),
                }
                .expect("the kernels take this geometry");
                // A loss that weighs every output differently.
                let n = y.shape().num_elements();
                let weights: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
                let weights = Tensor::<1>::from_data(TensorData::new(weights, [n]), &device)
                    .reshape(y.dims());
                let dims = y.dims();
                let grads = (y.clone() * weights).sum().backward();
                let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
                let vals1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
                (
                    dims,
                    [
                        values(y.detach()),
                        values(x.grad(&grads).unwrap()),
                        values(weight.grad(&grads).unwrap()),
                        vals1(bias.grad(&grads).unwrap()),
                    ],
                )
            };
            let (want_dims, want) = run(false);
            let (got_dims, got) = run(true);
            assert_eq!(got_dims, want_dims);
            for (name, (g, e)) in ["y", "dx", "dw", "db"].iter().zip(got.iter().zip(&want)) {
                let diff = relative_diff(g, e);
                assert!(
                    diff <= 1e-4,
                    "{c_in}x{h}x{w} -> {c_out}, pooled {pooled}: {name} differs by {diff}"
                );
            }
        }
    }
}
