//! A configuration's parameter count, known before anything is built, and the bound that keeps
//! an untrusted configuration from allocating without limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::Device;
use torchlet_model::interop::pytorch_num_params;
use torchlet_model::{
    Airbench94Config, LinearBaselineConfig, MAX_PARAMETERS, ModelConfig, ModelConfigError,
    Resnet18Config, SeedConvNetConfig, Vgg11Config, Vgg16Config,
};

/// Configurations of every built-in model: defaults, other inputs and classes, other widths.
fn configs() -> Vec<ModelConfig> {
    vec![
        LinearBaselineConfig::new().into(),
        LinearBaselineConfig::new()
            .with_input([1, 28, 28])
            .with_num_classes(7)
            .into(),
        SeedConvNetConfig::new().into(),
        SeedConvNetConfig::new()
            .with_batch_norm(true)
            .with_input([1, 40, 24])
            .with_num_classes(3)
            .into(),
        Vgg11Config::new().with_base_width(4).into(),
        Vgg16Config::new()
            .with_base_width(2)
            .with_input([1, 64, 32])
            .with_num_classes(4)
            .into(),
        Resnet18Config::new().with_base_width(4).into(),
        Resnet18Config::new()
            .with_base_width(3)
            .with_input([2, 9, 9])
            .with_num_classes(5)
            .into(),
        Airbench94Config::new().with_widths([8, 16, 16]).into(),
        Airbench94Config::new()
            .with_widths([4, 6, 10])
            .with_input([1, 50, 30])
            .with_num_classes(2)
            .into(),
    ]
}

#[test]
fn the_count_before_building_is_the_built_networks() {
    let device = Device::flex();
    for config in configs() {
        let model = config.try_init(&device).unwrap();
        assert_eq!(
            config.parameter_count(),
            Some(pytorch_num_params(&model) as u64),
            "{config:?}"
        );
    }
    // The full-width networks, counted without building them.
    let full = |name: &str| name.parse::<ModelConfig>().unwrap().parameter_count();
    assert_eq!(full("linear"), Some(30_730));
    assert_eq!(full("conv"), Some(145_578));
    assert_eq!(full("vgg11"), Some(9_231_114));
    assert_eq!(full("vgg16"), Some(14_728_266));
    assert_eq!(full("resnet18"), Some(11_173_962));
    assert_eq!(full("airbench94"), Some(1_972_792));
}

/// What a hostile `state.json` could ask for: each is refused by `validate` and `try_init`
/// with the count, before any tensor exists.
#[test]
fn an_oversized_configuration_is_refused_before_anything_is_allocated() {
    let huge: Vec<(ModelConfig, Option<u64>)> = vec![
        // 3 × 2¹⁶ × 2¹⁶ inputs × 1,000 classes: 12.9 trillion weights.
        (
            LinearBaselineConfig::new()
                .with_input([3, 1 << 16, 1 << 16])
                .with_num_classes(1000)
                .into(),
            Some(3 * (1u64 << 32) * 1000 + 1000),
        ),
        (
            SeedConvNetConfig::new()
                .with_num_classes(usize::MAX / 2)
                .into(),
            None,
        ),
        (Vgg11Config::new().with_base_width(1 << 20).into(), None),
        (
            Vgg16Config::new().with_base_width(usize::MAX / 4).into(),
            None,
        ),
        (
            Resnet18Config::new().with_base_width(usize::MAX).into(),
            None,
        ),
        (
            Airbench94Config::new()
                .with_widths([64, 1 << 24, 256])
                .into(),
            None,
        ),
        (
            Airbench94Config::new()
                .with_input([usize::MAX / 8, 32, 32])
                .into(),
            None,
        ),
    ];
    let device = Device::flex();
    for (config, expected) in huge {
        let err = config.validate().unwrap_err();
        match &err {
            ModelConfigError::TooManyParameters { count, limit, .. } => {
                assert_eq!(*limit, MAX_PARAMETERS);
                if expected.is_some() {
                    assert_eq!(*count, expected, "{config:?}");
                } else {
                    assert!(count.is_none_or(|n| n > MAX_PARAMETERS), "{config:?}");
                }
            }
            other => panic!("{config:?}: {other:?}"),
        }
        assert!(err.to_string().contains("parameters"), "{err}");
        assert!(config.try_init(&device).is_err());
    }
    // The message a user reads.
    let err = LinearBaselineConfig::new()
        .with_input([3, 1 << 16, 1 << 16])
        .with_num_classes(1000)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "LinearBaseline: this configuration asks for 12884901889000 parameters, more than \
         the 1073741824 torchlet builds (check num_classes, input and the widths)"
    );
}

#[test]
fn the_largest_allowed_configuration_is_accepted() {
    // 2³⁰ − 10 weights + 10 biases... the closest a linear layer with 10 classes comes.
    let inputs = (MAX_PARAMETERS as usize - 10) / 10;
    let config = LinearBaselineConfig::new().with_input([1, 1, inputs]);
    assert!(config.validate().is_ok());
    assert!(config.parameter_count().unwrap() <= MAX_PARAMETERS);
    let over = LinearBaselineConfig::new().with_input([1, 1, inputs + 1]);
    assert!(matches!(
        over.validate(),
        Err(ModelConfigError::TooManyParameters { .. })
    ));
}
