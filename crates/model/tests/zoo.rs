//! The model zoo against PyTorch: logits, state-dict keys and parameter counts, plus the
//! forward shapes and configuration errors of each model (Flex).
//!
//! Reference files are in `tests/fixtures/model/zoo/`, made by `scripts/zoo_fixtures.py`
//! with real PyTorch (version in `manifest.json`) at narrow widths; the PyTorch code behind
//! each reference is quoted next to the test that uses it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use torchlet_model::interop::{KeyLayout, TorchLayout, pytorch_num_params, state_dict_shapes};
use torchlet_model::nn::LayerConfigError;
use torchlet_model::{
    Airbench94Config, ImageClassifier, Model, ModelConfig, ModelConfigError, ModelKind,
    Resnet18Config, Vgg11Config, Vgg16Config, load_pytorch, load_safetensors, save_safetensors,
};

/// Agreement required with PyTorch.
const TOLERANCE: f32 = 1e-4;

const ZOO: [&str; 4] = ["vgg11", "vgg16", "resnet18", "airbench94"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/model/zoo")
        .join(name)
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The narrow model of the fixtures (`build(name, narrow=True)` in the script).
fn narrow(name: &str, device: &Device) -> Model {
    let config: ModelConfig = match name {
        "vgg11" => Vgg11Config::new().with_base_width(4).into(),
        "vgg16" => Vgg16Config::new().with_base_width(4).into(),
        "resnet18" => Resnet18Config::new().with_base_width(4).into(),
        "airbench94" => Airbench94Config::new().with_widths([8, 16, 16]).into(),
        _ => panic!("no model {name}"),
    };
    config.init(device)
}

/// The full-width model with 10 classes, as `name` parses.
fn full(name: &str, device: &Device) -> Model {
    name.parse::<ModelConfig>().unwrap().init(device)
}

/// A few things read from `manifest.json`.
mod manifest {
    use super::*;

    /// A JSON value (just what the manifest uses).
    #[derive(Debug, Clone, PartialEq)]
    pub enum Json {
        Number(f64),
        Str(String),
        Array(Vec<Json>),
        Object(Vec<(String, Json)>),
    }

    impl Json {
        pub fn get(&self, key: &str) -> &Json {
            match self {
                Json::Object(entries) => entries
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("no key {key}")),
                _ => panic!("not an object: {self:?}"),
            }
        }

        pub fn number(&self) -> usize {
            match self {
                Json::Number(n) => *n as usize,
                _ => panic!("not a number: {self:?}"),
            }
        }

        pub fn entries(&self) -> &[(String, Json)] {
            match self {
                Json::Object(entries) => entries,
                _ => panic!("not an object: {self:?}"),
            }
        }

        pub fn shape(&self) -> Vec<usize> {
            match self {
                Json::Array(items) => items.iter().map(Json::number).collect(),
                _ => panic!("not an array: {self:?}"),
            }
        }
    }

    fn skip_ws(s: &[u8], i: &mut usize) {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }

    fn parse_at(s: &[u8], i: &mut usize) -> Json {
        skip_ws(s, i);
        match s[*i] {
            b'{' => {
                *i += 1;
                let mut entries = Vec::new();
                loop {
                    skip_ws(s, i);
                    if s[*i] == b'}' {
                        *i += 1;
                        return Json::Object(entries);
                    }
                    let Json::Str(key) = parse_at(s, i) else {
                        panic!("object key expected at {i}")
                    };
                    skip_ws(s, i);
                    assert_eq!(s[*i], b':');
                    *i += 1;
                    entries.push((key, parse_at(s, i)));
                    skip_ws(s, i);
                    if s[*i] == b',' {
                        *i += 1;
                    }
                }
            }
            b'[' => {
                *i += 1;
                let mut items = Vec::new();
                loop {
                    skip_ws(s, i);
                    if s[*i] == b']' {
                        *i += 1;
                        return Json::Array(items);
                    }
                    items.push(parse_at(s, i));
                    skip_ws(s, i);
                    if s[*i] == b',' {
                        *i += 1;
                    }
                }
            }
            b'"' => {
                let start = *i + 1;
                *i = start;
                while s[*i] != b'"' {
                    *i += 1;
                }
                *i += 1;
                Json::Str(String::from_utf8(s[start..*i - 1].to_vec()).unwrap())
            }
            _ => {
                let start = *i;
                while *i < s.len() && !matches!(s[*i], b',' | b'}' | b']') {
                    *i += 1;
                }
                let text = std::str::from_utf8(&s[start..*i]).unwrap().trim();
                Json::Number(text.parse().unwrap_or_else(|_| panic!("bad number {text}")))
            }
        }
    }

    /// Parses a JSON document (the manifest, or a safetensors header).
    pub fn parse(text: &[u8]) -> Json {
        parse_at(text, &mut 0)
    }

    pub fn load() -> Json {
        parse(&std::fs::read(fixture("manifest.json")).unwrap())
    }
}

/// PyTorch's state dict of `name`: key → shape, without batch norms' `num_batches_tracked`
/// (which Burn does not keep and PyTorch's `load_state_dict` fills in when absent).
fn torch_state_dict(manifest: &manifest::Json, name: &str) -> BTreeMap<String, Vec<usize>> {
    manifest
        .get("models")
        .get(name)
        .get("state_dict")
        .entries()
        .iter()
        .filter(|(key, _)| !key.ends_with("num_batches_tracked"))
        .map(|(key, shape)| (key.clone(), shape.shape()))
        .collect()
}

fn ours<M: TorchLayout>(model: &M) -> BTreeMap<String, Vec<usize>> {
    state_dict_shapes(model, KeyLayout::Plain)
        .into_iter()
        .map(|t| (t.key, t.shape))
        .collect()
}

// PyTorch (scripts/zoo_fixtures.py), for each model, e.g. ResNet-18:
//
//     torch.manual_seed(0)
//     inputs = torch.stack([torch.rand(3, 32, 32), torch.randn(3, 32, 32) * 2 + 1])
//     torch.manual_seed(1)
//     model = ResNet18(base_width=4)           # VGG("vgg11", base_width=4), ...,
//                                              # Airbench94(widths=(8, 16, 16))
//     with torch.no_grad():                     # settle(model):
//         for m in model.modules():
//             if isinstance(m, nn.BatchNorm2d):
//                 m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.2, 0.2)
//         last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
//         last.weight.mul_(10)
//         if last.bias is not None: last.bias.zero_()
//     model.train()
//     with torch.no_grad():
//         for _ in range(3): model(torch.rand(8, 3, 32, 32))
//     model.eval()
//     with torch.no_grad():
//         logits = model(inputs)                   # -> resnet18_logits.f32, [2, 10]
//     torch.save(model.state_dict(), "resnet18.pth")
//     save_file(model.state_dict(), "resnet18.safetensors")
//
// with, for instance, the block of ResNet-18 (kuangliu/pytorch-cifar):
//
//     class BasicBlock(nn.Module):
//         def __init__(self, in_planes, planes, stride=1):
//             self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
//             self.bn1 = nn.BatchNorm2d(planes)
//             self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
//             self.bn2 = nn.BatchNorm2d(planes)
//             self.shortcut = nn.Sequential()
//             if stride != 1 or in_planes != planes:
//                 self.shortcut = nn.Sequential(
//                     nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
//                     nn.BatchNorm2d(planes))
//         def forward(self, x):
//             out = F.relu(self.bn1(self.conv1(x)))
//             out = self.bn2(self.conv2(out))
//             return F.relu(out + self.shortcut(x))
//
// and airbench94's block, whose batch norms are nn.BatchNorm2d(w, eps=1e-12, momentum=0.4):
//
//     x = self.activ(self.norm1(self.pool(self.conv1(x))))   # conv 3x3 padding="same"
//     return self.activ(self.norm2(self.conv2(x)))
#[test]
fn logits_match_pytorch_after_loading_its_state_dict() {
    let device = Device::flex();
    let manifest = manifest::load();
    let inputs = Tensor::<4>::from_data(
        TensorData::new(read_f32("inputs.f32"), [2, 3, 32, 32]),
        &device,
    );
    for name in ZOO {
        let expected = read_f32(&format!("{name}_logits.f32"));
        // The two images' logits differ far more than the tolerance: a wrong layer shows.
        let spread = expected[..10]
            .iter()
            .zip(&expected[10..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(spread > 2.0 * TOLERANCE, "{name}: spread {spread}");
        let files = manifest.get("models").get(name).get("files");
        let manifest::Json::Array(files) = files else {
            panic!("files of {name}")
        };
        assert!(!files.is_empty());
        for file in files {
            let manifest::Json::Str(file) = file else {
                panic!("file name")
            };
            let path = fixture(file);
            let model = narrow(name, &device);
            let before = model.forward(inputs.clone());
            let model = if file.ends_with(".pth") {
                load_pytorch(model, &path).unwrap()
            } else {
                load_safetensors(model, &path).unwrap()
            };
            let logits = model.forward(inputs.clone());
            assert_eq!(logits.dims(), [2, 10]);
            let got = logits.into_data().try_to_vec::<f32>().unwrap();
            let diff = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            eprintln!("{file}: max |ours - PyTorch| = {diff:e} (spread {spread:e})");
            assert!(
                diff <= TOLERANCE,
                "{file}: max abs diff {diff} > {TOLERANCE}"
            );
            // And the freshly initialized model did not already agree.
            let before = before.into_data().try_to_vec::<f32>().unwrap();
            assert_ne!(before, got, "{file}: loading changed nothing");
        }
    }
}

#[test]
fn state_dict_keys_and_shapes_are_pytorchs() {
    let device = Device::flex();
    let manifest = manifest::load();
    let dir = tempfile::tempdir().unwrap();
    for name in ZOO {
        let expected = torch_state_dict(&manifest, name);
        let model = narrow(name, &device);
        assert_eq!(ours(&model), expected, "{name}");
        // What we export is what PyTorch's load_state_dict(strict=True) wants: read the file
        // back and compare its keys and shapes.
        let path = dir.path().join(format!("{name}.safetensors"));
        save_safetensors(&model, &path).unwrap();
        let exported = safetensors_keys(&path);
        assert_eq!(exported, expected, "{name}: exported keys");
        // Round trip.
        let back = load_safetensors(narrow(name, &device), &path).unwrap();
        let x = Tensor::<4>::random([1, 3, 32, 32], Distribution::Default, &device);
        let a = model
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = back.forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b, "{name}: round trip");
    }
}

/// Keys and shapes of a safetensors file, read from its JSON header.
fn safetensors_keys(path: &Path) -> BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = &bytes[8..8 + len];
    let manifest::Json::Object(entries) = manifest::parse(header) else {
        panic!("header")
    };
    entries
        .into_iter()
        .filter(|(key, _)| key != "__metadata__")
        .map(|(key, info)| (key, info.get("shape").shape()))
        .collect()
}

// PyTorch: sum(p.numel() for p in model.parameters()) for VGG("vgg11"), VGG("vgg16"),
// ResNet18() and Airbench94() at full width (manifest.json, "full_num_params").
#[test]
fn full_width_parameter_counts_equal_pytorchs() {
    let device = Device::flex();
    let manifest = manifest::load();
    let counts = manifest.get("full_num_params");
    let mut ours = Vec::new();
    for name in ZOO {
        let model = full(name, &device);
        let torch_count = pytorch_num_params(&model);
        ours.push((name, torch_count));
        assert_eq!(torch_count, counts.get(name).number(), "{name}");
        // Burn's num_params also counts the running mean and variance of each batch norm.
        let running: usize = state_dict_shapes(&model, KeyLayout::Plain)
            .iter()
            .filter(|t| t.key.ends_with(".running_mean") || t.key.ends_with(".running_var"))
            .map(|t| t.shape[0])
            .sum();
        assert!(running > 0, "{name} has batch norms");
        assert_eq!(model.num_params(), torch_count + running, "{name}");
        // The narrow fixtures too.
        let narrow_count = manifest.get("models").get(name).get("num_params").number();
        assert_eq!(
            pytorch_num_params(&narrow(name, &device)),
            narrow_count,
            "narrow {name}"
        );
    }
    // The numbers the docs give.
    assert_eq!(
        ours,
        [
            ("vgg11", 9_231_114),
            ("vgg16", 14_728_266),
            ("resnet18", 11_173_962),
            ("airbench94", 1_972_792)
        ]
    );
}

fn configured(name: &str, input: [usize; 3]) -> ModelConfig {
    match name {
        "vgg11" => Vgg11Config::new()
            .with_base_width(4)
            .with_input(input)
            .into(),
        "vgg16" => Vgg16Config::new()
            .with_base_width(4)
            .with_input(input)
            .into(),
        "resnet18" => Resnet18Config::new()
            .with_base_width(4)
            .with_input(input)
            .into(),
        "airbench94" => Airbench94Config::new()
            .with_widths([8, 16, 16])
            .with_input(input)
            .into(),
        _ => panic!("no model {name}"),
    }
}

#[test]
fn forward_shapes_for_cifar_mnist_and_larger_images() {
    let device = Device::flex();
    for name in ZOO {
        for input in [[3, 32, 32], [1, 28, 28], [3, 64, 64]] {
            let config = configured(name, input).with_num_classes_for_test(7);
            let small_vgg = name.starts_with("vgg") && input[1] < 32;
            match config.try_init(&device) {
                Ok(model) => {
                    assert!(!small_vgg, "{name} accepted {input:?}");
                    assert_eq!(model.input_shape(), Some(input));
                    assert_eq!(ImageClassifier::name(&model), name);
                    let [c, h, w] = input;
                    let x = Tensor::<4>::random([3, c, h, w], Distribution::Default, &device);
                    assert_eq!(model.forward(x).dims(), [3, 7], "{name} {input:?}");
                }
                Err(err) => {
                    assert!(small_vgg, "{name} {input:?}: {err}");
                    assert!(
                        matches!(err, ModelConfigError::InputTooSmall { .. }),
                        "{err}"
                    );
                }
            }
        }
    }
}

/// `with_num_classes` of whichever config it is.
trait WithClasses {
    fn with_num_classes_for_test(self, classes: usize) -> Self;
}

impl WithClasses for ModelConfig {
    fn with_num_classes_for_test(self, classes: usize) -> Self {
        match self {
            ModelConfig::Vgg11(c) => c.with_num_classes(classes).into(),
            ModelConfig::Vgg16(c) => c.with_num_classes(classes).into(),
            ModelConfig::Resnet18(c) => c.with_num_classes(classes).into(),
            ModelConfig::Airbench94(c) => c.with_num_classes(classes).into(),
            other => other,
        }
    }
}

#[test]
fn vgg_and_resnet_take_other_sizes_than_configured() {
    let device = Device::flex();
    let vgg = Vgg11Config::new().with_base_width(4).init(&device);
    let resnet = Resnet18Config::new().with_base_width(4).init(&device);
    let x = Tensor::<4>::random([2, 3, 48, 40], Distribution::Default, &device);
    assert_eq!(vgg.forward(x.clone()).dims(), [2, 10]);
    assert_eq!(resnet.forward(x).dims(), [2, 10]);
}

#[test]
fn airbench_head_grows_with_the_image() {
    let device = Device::flex();
    // 64x64: 63 -> 31 -> 15 -> 7 -> MaxPool2d(3) -> 2, so the head takes 16 * 2 * 2.
    let config = Airbench94Config::new()
        .with_widths([8, 16, 16])
        .with_input([3, 64, 64]);
    assert_eq!(config.head_size(), [2, 2]);
    let model = config.init(&device);
    assert_eq!(model.head.weight.dims(), [16 * 2 * 2, 10]);
    assert_eq!(model.whiten.weight.dims(), [24, 3, 2, 2]);
    // One channel: 2 * 1 * 2 * 2 whitening filters.
    let gray = Airbench94Config::new().with_input([1, 28, 28]);
    assert_eq!(gray.whiten_width(), 8);
    assert_eq!(gray.head_size(), [1, 1]);
}

#[test]
fn too_small_inputs_are_typed_errors() {
    let device = Device::flex();
    let err = Vgg16Config::new()
        .with_input([3, 31, 64])
        .try_init(&device)
        .unwrap_err();
    assert_eq!(
        err,
        ModelConfigError::InputTooSmall {
            model: "vgg16",
            input: [3, 31, 64],
            min_size: [32, 32],
            why: "five 2x2 max-poolings halve them five times",
        }
    );
    assert!(err.to_string().contains("31x64"), "{err}");
    assert!(err.to_string().contains("at least 32x32"), "{err}");
    // airbench94: 25 is the smallest side (24 -> 12 -> 6 -> 3 -> 1).
    assert!(
        Airbench94Config::new()
            .with_input([3, 25, 25])
            .validate()
            .is_ok()
    );
    let err = Airbench94Config::new()
        .with_input([3, 24, 30])
        .validate()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelConfigError::InputTooSmall {
                min_size: [25, 25],
                ..
            }
        ),
        "{err}"
    );
    // ResNet-18 takes any size, but not an empty one.
    assert!(
        Resnet18Config::new()
            .with_input([3, 1, 1])
            .validate()
            .is_ok()
    );
    let err = Resnet18Config::new()
        .with_input([0, 32, 32])
        .validate()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelConfigError::EmptyInput {
                model: "resnet18",
                ..
            }
        ),
        "{err}"
    );
    // Widths and classes.
    let err = Airbench94Config::new()
        .with_widths([8, 0, 16])
        .validate()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelConfigError::ZeroWidth {
                setting: "widths",
                ..
            }
        ),
        "{err}"
    );
    let err = Vgg11Config::new()
        .with_num_classes(0)
        .validate()
        .unwrap_err();
    assert_eq!(err, ModelConfigError::NoClasses);
    // A layer's own error comes through as it is.
    let layer: ModelConfigError = LayerConfigError::SameWithStride { stride: [2, 2] }.into();
    assert!(layer.to_string().contains("stride [2, 2]"), "{layer}");
}

#[test]
fn names_parse_and_round_trip() {
    let device = Device::flex();
    for name in ZOO {
        let kind: ModelKind = name.parse().unwrap();
        assert_eq!(kind.name(), name);
        assert!(ModelKind::NAMES.contains(&name));
        assert!(ModelKind::ALL.contains(&kind));
        let config: ModelConfig = name.parse().unwrap();
        assert_eq!(config.kind(), kind);
        assert_eq!(config.num_classes(), 10);
        let model = configured(name, [3, 32, 32]).init(&device);
        assert_eq!(model.kind(), kind);
        assert_eq!(ImageClassifier::name(&model), name);
        assert_eq!(model.num_classes(), 10);
    }
    let vgg16 = Vgg16Config::new().with_base_width(4).init(&device);
    assert_eq!(Model::from(vgg16).kind(), ModelKind::Vgg16);
}

#[test]
fn zoo_models_train_a_step_on_autodiff() {
    // The batch norms run in training mode and the gradients reach the first layer.
    let device = Device::flex().autodiff();
    for name in ZOO {
        let model = configured(name, [3, 32, 32]).init(&device);
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
        let loss = model.forward(x).powi_scalar(2).mean();
        let grads = loss.backward();
        let first = match &model {
            // The first convolution's weight of each model.
            Model::Vgg11(m) | Model::Vgg16(m) => match &m.features[0] {
                torchlet_model::zoo::VggLayer::Conv(conv) => conv.weight.clone(),
                other => panic!("{other:?}"),
            },
            Model::Resnet18(m) => m.conv1.weight.clone(),
            Model::Airbench94(m) => m.whiten.weight.clone(),
            _ => unreachable!(),
        };
        let grad = first
            .grad(&grads)
            .expect("gradient of the first convolution");
        let norm = grad.abs().sum().into_data().try_to_vec::<f32>().unwrap()[0];
        assert!(norm > 0.0, "{name}: zero gradient");
    }
}
