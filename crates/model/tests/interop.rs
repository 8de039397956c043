//! Safetensors export/import round trips and the errors of bad weight files (Flex).
//!
//! The bad files are made here: either exported by Burn from another model, or written by
//! hand (a few lines: safetensors is a JSON header plus raw bytes) from a correct state dict
//! with one thing changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use burn::module::Module;
use burn::store::bridge;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
use burn::tensor::{Device, Distribution, Tensor};
use torchlet_model::interop::{
    InteropError, KeyLayout, LoadOptions, TorchLayout, load_pytorch, load_safetensors,
    load_safetensors_with, save_safetensors, save_safetensors_with, state_dict_shapes,
};
use torchlet_model::{
    Activation, LinearBaseline, LinearBaselineConfig, Model, SeedConvNet, SeedConvNetConfig,
};

/// One entry of a hand-written safetensors file.
struct Entry {
    key: String,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// The model's state dict in PyTorch's conventions, as safetensors entries.
fn state_dict<M: TorchLayout>(model: &M, layout: KeyLayout) -> Vec<Entry> {
    let infos = state_dict_shapes(model, layout);
    let tensors = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    assert_eq!(infos.len(), tensors.len());
    infos
        .into_iter()
        .zip(tensors)
        .map(|(info, tensor)| Entry {
            key: info.key,
            dtype: "F32",
            shape: info.shape,
            bytes: bridge::to_data(&tensor).unwrap().as_bytes().to_vec(),
        })
        .collect()
}

fn write_safetensors(path: &Path, entries: &[Entry]) {
    let mut header = String::from("{");
    let mut offset = 0;
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"{}\":{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{},{}]}}",
            e.key,
            e.dtype,
            e.shape,
            offset,
            offset + e.bytes.len()
        ));
        offset += e.bytes.len();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    for e in entries {
        file.extend_from_slice(&e.bytes);
    }
    std::fs::write(path, file).unwrap();
}

fn images(batch: usize, device: &Device) -> Tensor<4> {
    Tensor::random([batch, 3, 32, 32], Distribution::Uniform(0.0, 1.0), device)
}

/// Every tensor of the model, by Burn path, as raw bytes.
fn tensor_bytes<M: Module>(model: &M) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    model
        .collect(None, None, true)
        .iter()
        .map(|t| {
            let data = bridge::to_data(t).unwrap();
            (t.name.clone(), t.shape.to_vec(), data.as_bytes().to_vec())
        })
        .collect()
}

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    let a = a.into_data().try_to_vec::<f32>().unwrap();
    let b = b.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn mismatch_of(err: &InteropError) -> &torchlet_model::interop::Mismatch {
    err.mismatch()
        .unwrap_or_else(|| panic!("expected a mismatch, got: {err}"))
}

#[test]
fn export_then_import_round_trips_exactly() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        SeedConvNetConfig::new(),
        SeedConvNetConfig::new()
            .with_activation(Activation::Relu)
            .with_batch_norm(true)
            .with_dropout(0.2),
    ];
    for (i, config) in configs.iter().enumerate() {
        let model = config.init(&device);
        for layout in [KeyLayout::Tutorial, KeyLayout::Plain] {
            let path = dir.path().join(format!("m{i}-{layout}.safetensors"));
            save_safetensors_with(&model, &path, layout).unwrap();
            let fresh = config.init(&device);
            assert_ne!(tensor_bytes(&fresh), tensor_bytes(&model));
            let (loaded, report) =
                load_safetensors_with(fresh, &path, &LoadOptions::new()).unwrap();
            assert_eq!(report.layout, layout, "layout detected from the keys");
            assert!(report.missing.is_empty() && report.unexpected.is_empty());
            assert_eq!(tensor_bytes(&loaded), tensor_bytes(&model), "{path:?}");
            let x = images(2, &device);
            assert_eq!(
                max_abs_diff(loaded.forward(x.clone()), model.forward(x)),
                0.0
            );
        }
    }
}

#[test]
fn default_export_uses_the_tutorial_keys() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conv.safetensors");
    let model = SeedConvNetConfig::new().init(&device);
    save_safetensors(&model, &path).unwrap();
    // Overwrites like torch.save.
    save_safetensors(&model, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + len]).unwrap();
    for key in [
        "model.0.weight",
        "model.2.bias",
        "model.4.weight",
        "model.7.weight",
        "model.8.bias",
    ] {
        assert!(header.contains(&format!("\"{key}\"")), "{key} in {header}");
    }
    // Linear weights are written [out, in], as PyTorch keeps them.
    assert!(
        header.contains("\"model.7.weight\":{\"dtype\":\"F32\",\"shape\":[64,1024]"),
        "{header}"
    );
    assert!(!header.contains("conv1"), "{header}");
}

#[test]
fn the_model_enum_has_the_same_keys_as_the_model_it_wraps() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linear.safetensors");
    let model = Model::Linear(LinearBaselineConfig::new().init(&device));
    save_safetensors(&model, &path).unwrap();
    let plain: LinearBaseline =
        load_safetensors(LinearBaselineConfig::new().init(&device), &path).unwrap();
    let back: Model = load_safetensors(
        Model::Linear(LinearBaselineConfig::new().init(&device)),
        &path,
    )
    .unwrap();
    assert_eq!(tensor_bytes(&plain), tensor_bytes(&model));
    assert_eq!(tensor_bytes(&back), tensor_bytes(&model));
}

#[test]
fn weights_of_another_architecture_are_rejected_with_every_key() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linear.safetensors");
    save_safetensors(&LinearBaselineConfig::new().init(&device), &path).unwrap();

    let err = load_safetensors(SeedConvNetConfig::new().init(&device), &path).unwrap_err();
    let mismatch = mismatch_of(&err);
    let missing: Vec<String> = mismatch.missing.iter().map(ToString::to_string).collect();
    assert_eq!(missing.len(), 10, "{missing:?}");
    assert_eq!(missing[0], "model.0.weight [32, 3, 5, 5]");
    assert_eq!(missing[9], "model.8.bias [10]");
    let unexpected: Vec<String> = mismatch
        .unexpected
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        unexpected,
        ["model.1.bias [10]", "model.1.weight [10, 3072]"]
    );
    assert!(mismatch.misshaped.is_empty());

    let message = err.to_string();
    assert!(message.contains("linear.safetensors"), "{message}");
    assert!(message.contains("model.7.weight [64, 1024]"), "{message}");
    assert!(message.contains("model.1.weight [10, 3072]"), "{message}");
    assert_eq!(err.path(), path);
}

#[test]
fn a_missing_tensor_is_an_error_unless_partial_loading_is_asked_for() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_fc2_bias.safetensors");
    let source = SeedConvNetConfig::new().init(&device);
    let mut entries = state_dict(&source, KeyLayout::Plain);
    entries.retain(|e| e.key != "fc2.bias");
    write_safetensors(&path, &entries);

    let err = load_safetensors(SeedConvNetConfig::new().init(&device), &path).unwrap_err();
    let mismatch = mismatch_of(&err);
    assert_eq!(mismatch.missing.len(), 1);
    assert_eq!(mismatch.missing[0].key, "fc2.bias");
    assert_eq!(mismatch.missing[0].shape, [10]);
    assert!(mismatch.unexpected.is_empty());

    // Explicitly partial: everything else loads, fc2.bias keeps its initial value.
    let target = SeedConvNetConfig::new().init(&device);
    let init_bias = target.fc2.bias.as_ref().unwrap().val().into_data();
    let (loaded, report) =
        load_safetensors_with(target, &path, &LoadOptions::new().allow_partial(true)).unwrap();
    assert_eq!(report.missing.len(), 1);
    assert_eq!(report.loaded.len(), 9);
    assert_eq!(
        loaded.fc2.bias.as_ref().unwrap().val().into_data(),
        init_bias
    );
    assert_eq!(
        loaded.conv1.weight.val().into_data(),
        source.conv1.weight.val().into_data()
    );
    assert_eq!(
        loaded.fc1.weight.val().into_data(),
        source.fc1.weight.val().into_data()
    );
}

#[test]
fn an_extra_tensor_is_an_error_unless_partial_loading_is_asked_for() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extra.safetensors");
    let source = SeedConvNetConfig::new().init(&device);
    let mut entries = state_dict(&source, KeyLayout::Tutorial);
    entries.push(Entry {
        key: "model.9.weight".into(),
        dtype: "F32",
        shape: vec![2, 2],
        bytes: vec![0; 16],
    });
    write_safetensors(&path, &entries);

    let err = load_safetensors(SeedConvNetConfig::new().init(&device), &path).unwrap_err();
    let mismatch = mismatch_of(&err);
    assert!(mismatch.missing.is_empty());
    assert_eq!(mismatch.unexpected.len(), 1);
    assert_eq!(mismatch.unexpected[0].to_string(), "model.9.weight [2, 2]");

    let (loaded, report) = load_safetensors_with(
        SeedConvNetConfig::new().init(&device),
        &path,
        &LoadOptions::new().allow_partial(true),
    )
    .unwrap();
    assert_eq!(report.unexpected.len(), 1);
    assert_eq!(tensor_bytes(&loaded), tensor_bytes(&source));
}

#[test]
fn batch_norm_from_another_configuration_is_reported() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn.safetensors");
    let bn = SeedConvNetConfig::new().with_batch_norm(true).init(&device);
    save_safetensors_with(&bn, &path, KeyLayout::Plain).unwrap();
    let err = load_safetensors(SeedConvNetConfig::new().init(&device), &path).unwrap_err();
    let mismatch = mismatch_of(&err);
    assert!(mismatch.missing.is_empty());
    let unexpected: Vec<&str> = mismatch.unexpected.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(unexpected.len(), 12, "{unexpected:?}");
    assert!(unexpected.contains(&"bn2.running_var"));
}

#[test]
fn a_misshaped_tensor_is_always_an_error() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twelve_classes.safetensors");
    save_safetensors(
        &SeedConvNetConfig::new().with_num_classes(12).init(&device),
        &path,
    )
    .unwrap();

    for options in [LoadOptions::new(), LoadOptions::new().allow_partial(true)] {
        let err = load_safetensors_with(SeedConvNetConfig::new().init(&device), &path, &options)
            .unwrap_err();
        let mismatch = mismatch_of(&err);
        let misshaped: Vec<String> = mismatch.misshaped.iter().map(ToString::to_string).collect();
        assert_eq!(
            misshaped,
            [
                "model.8.bias: model has [10], file has [12]",
                "model.8.weight: model has [10, 64], file has [12, 64]",
            ]
        );
        assert!(mismatch.missing.is_empty() && mismatch.unexpected.is_empty());
    }
}

#[test]
fn a_tensor_of_an_integer_type_is_rejected() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("int.safetensors");
    let mut entries = state_dict(&LinearBaselineConfig::new().init(&device), KeyLayout::Plain);
    entries[1].dtype = "I32"; // fc.bias: same byte length, wrong type
    write_safetensors(&path, &entries);
    let err = load_safetensors(LinearBaselineConfig::new().init(&device), &path).unwrap_err();
    let mismatch = mismatch_of(&err);
    assert_eq!(mismatch.wrong_dtype.len(), 1);
    assert_eq!(mismatch.wrong_dtype[0].key, "fc.bias");
}

#[test]
fn batch_norm_step_counters_are_ignored_and_f64_is_cast() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torch_bn.safetensors");
    let source = SeedConvNetConfig::new().with_batch_norm(true).init(&device);
    let mut entries = state_dict(&source, KeyLayout::Tutorial);
    // What PyTorch adds to a BatchNorm2d state dict: an int64 scalar step counter.
    // Sequential: conv 0, bn 1, pool 2, conv 3, bn 4, pool 5, conv 6, bn 7, pool 8, flatten 9,
    // fc1 10, fc2 11.
    for index in [1, 4, 7] {
        entries.push(Entry {
            key: format!("model.{index}.num_batches_tracked"),
            dtype: "I64",
            shape: vec![],
            bytes: 7i64.to_le_bytes().to_vec(),
        });
    }
    // fc2's bias as float64 (a model saved after .double()).
    let bias = entries
        .iter_mut()
        .find(|e| e.key == "model.11.bias")
        .unwrap();
    let values: Vec<f32> = bias
        .bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    bias.dtype = "F64";
    bias.bytes = values
        .iter()
        .flat_map(|v| f64::from(*v).to_le_bytes())
        .collect();
    write_safetensors(&path, &entries);

    let (loaded, report) = load_safetensors_with(
        SeedConvNetConfig::new().with_batch_norm(true).init(&device),
        &path,
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(report.ignored.len(), 3, "{report:?}");
    assert_eq!(report.layout, KeyLayout::Tutorial);
    assert_eq!(tensor_bytes(&loaded), tensor_bytes(&source));
}

#[test]
fn a_forced_layout_that_does_not_match_lists_the_keys() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tutorial.safetensors");
    save_safetensors(&SeedConvNetConfig::new().init(&device), &path).unwrap();
    let err = load_safetensors_with(
        SeedConvNetConfig::new().init(&device),
        &path,
        &LoadOptions::new().with_layout(KeyLayout::Plain),
    )
    .unwrap_err();
    let mismatch = mismatch_of(&err);
    assert_eq!(mismatch.layout, KeyLayout::Plain);
    assert_eq!(mismatch.missing.len(), 10);
    assert_eq!(mismatch.unexpected.len(), 10);
    assert_eq!(mismatch.missing[0].key, "conv1.weight");
}

#[test]
fn unreadable_files_are_errors_that_name_the_file() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.safetensors");
    let err = load_safetensors(SeedConvNetConfig::new().init(&device), &absent).unwrap_err();
    assert!(matches!(err, InteropError::ReadSafetensors { .. }), "{err}");
    assert!(err.to_string().contains("absent.safetensors"), "{err}");

    let garbage = dir.path().join("garbage.pth");
    std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
    let err = load_pytorch(SeedConvNetConfig::new().init(&device), &garbage).unwrap_err();
    assert!(matches!(err, InteropError::ReadPytorch { .. }), "{err}");
    assert!(err.to_string().contains("garbage.pth"), "{err}");

    let err = load_safetensors(SeedConvNetConfig::new().init(&device), &garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.pth"), "{err}");

    let unwritable = dir.path().join("no/such/dir/out.safetensors");
    let err = save_safetensors(&SeedConvNetConfig::new().init(&device), &unwritable).unwrap_err();
    assert!(
        matches!(err, InteropError::WriteSafetensors { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("out.safetensors"), "{err}");
}

#[test]
fn loading_keeps_the_device_and_works_on_autodiff() {
    let device = Device::flex().autodiff();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conv.safetensors");
    let source = SeedConvNetConfig::new().init(&device);
    save_safetensors(&source, &path).unwrap();
    let loaded: SeedConvNet =
        load_safetensors(SeedConvNetConfig::new().init(&device), &path).unwrap();
    let logits = loaded.forward(images(2, &device));
    let grads = logits.sum().backward();
    assert!(
        loaded.fc2.weight.grad(&grads).is_some(),
        "loaded weights are trainable"
    );
}
