//! Architecture, configuration and forward-pass tests (Flex).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::config::{Config, config_to_json};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use torchlet_model::interop::{TorchLayer, TorchLayout, state_dict_shapes};
use torchlet_model::{
    Activation, ImageClassifier, KeyLayout, LinearBaselineConfig, Model, ModelConfig,
    ModelConfigError, ModelKind, SeedConvNetConfig,
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
