//! Exports a few models as safetensors, with an input batch and Burn's logits for it, so that
//! `scripts/check_export.py` can load them into PyTorch strictly and compare the logits.
//!
//! ```text
//! cargo run -p torchlet-model --example export_for_pytorch -- OUT_DIR
//! python scripts/check_export.py OUT_DIR
//! ```
//!
//! For each case it writes `<name>.safetensors`, `<name>.input.f32`, `<name>.logits.f32` (raw
//! little-endian f32) and `<name>.json` (model configuration and key layout).
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::Path;

use burn::config::config_to_json;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use torchlet_model::interop::{TorchLayout, save_safetensors_with};
use torchlet_model::{
    Activation, ImageClassifier, KeyLayout, LinearBaselineConfig, Model, ModelConfig,
    SeedConvNetConfig,
};

const BATCH: usize = 3;

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: export_for_pytorch OUT_DIR")?;
    let out = Path::new(&out);
    std::fs::create_dir_all(out)?;

    let device = Device::flex();
    device.seed(2024);
    let input = Tensor::<4>::random([BATCH, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device);

    let conv = SeedConvNetConfig::new();
    let regularized = SeedConvNetConfig::new()
        .with_activation(Activation::Relu)
        .with_batch_norm(true)
        .with_dropout(0.5);
    let linear = LinearBaselineConfig::new();

    let cases: [(&str, ModelConfig, KeyLayout); 5] = [
        ("conv_tutorial", conv.clone().into(), KeyLayout::Tutorial),
        ("conv_plain", conv.into(), KeyLayout::Plain),
        (
            "conv_relu_bn_dropout_tutorial",
            regularized.clone().into(),
            KeyLayout::Tutorial,
        ),
        (
            "conv_relu_bn_dropout_plain",
            regularized.into(),
            KeyLayout::Plain,
        ),
        ("linear_tutorial", linear.into(), KeyLayout::Tutorial),
    ];
    for (name, config, layout) in cases {
        let model = trained_a_little(&config, &input)?;
        export(out, name, &config, layout, &model, input.clone())?;
        println!("{name}: {} ({layout} keys)", config.kind());
    }
    // Plain keys of the linear baseline, exported through the `Model` enum.
    let config: ModelConfig = "linear".parse()?;
    let model = config.try_init(&device)?;
    export(
        out,
        "linear_plain",
        &config,
        KeyLayout::Plain,
        &model,
        input,
    )?;
    println!("linear_plain: linear (plain keys)");
    Ok(())
}

/// A model whose batch-norm running statistics are not the initial zeros and ones: one
/// forward pass in training mode updates them.
fn trained_a_little(config: &ModelConfig, input: &Tensor<4>) -> Result<Model, Box<dyn Error>> {
    let device = Device::flex().autodiff();
    let model = config.try_init(&device)?;
    let _ = model.forward(input.clone().to_device(&device) * 2.0 - 0.5);
    Ok(model.valid())
}

fn export<M: TorchLayout + ImageClassifier>(
    out: &Path,
    name: &str,
    config: &ModelConfig,
    layout: KeyLayout,
    model: &M,
    input: Tensor<4>,
) -> Result<(), Box<dyn Error>> {
    let logits = model.forward(input.clone());
    save_safetensors_with(model, out.join(format!("{name}.safetensors")), layout)?;
    write_f32(&out.join(format!("{name}.input.f32")), input.clone())?;
    let logits_shape = logits.dims();
    write_f32(&out.join(format!("{name}.logits.f32")), logits)?;
    let meta = format!(
        "{{\n  \"model\": {},\n  \"layout\": \"{}\",\n  \"weights\": \"{name}.safetensors\",\n  \
         \"input\": \"{name}.input.f32\",\n  \"input_shape\": {:?},\n  \
         \"logits\": \"{name}.logits.f32\",\n  \"logits_shape\": {:?}\n}}\n",
        config_to_json(config),
        layout.name(),
        input.dims(),
        logits_shape,
    );
    std::fs::write(out.join(format!("{name}.json")), meta)?;
    Ok(())
}

fn write_f32<const D: usize>(path: &Path, tensor: Tensor<D>) -> Result<(), Box<dyn Error>> {
    let values = tensor.try_into_vec_as::<f32>()?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes)?;
    Ok(())
}
