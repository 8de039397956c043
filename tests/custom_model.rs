//! Chapter seven — your own network: a model written in this file trains, stops, resumes,
//! reloads and predicts through the same `Trainer` as the built-in ones, and every way a
//! model can disagree with its data is an error before the first step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use common::{StopAt, params, resumable_sgd, serial, synthetic};
use torchlet::burn;
use torchlet::data::{ImageDataset, ImageShape};
use torchlet::model::ImageClassifier;
use torchlet::train::{
    DataMismatch, DeviceChoice, SavedCheckpoint, TrainConfig, TrainError, Trainer, classify,
    select_device,
};

// ---------------------------------------------------------------- the user's network

/// What a user writes: conv → ReLU → pool → dropout → linear, for `channels × 12 × 12` images.
#[derive(Module, Debug)]
struct Net {
    conv1: Conv2d,
    pool: MaxPool2d,
    dropout: Dropout,
    fc: Linear,
    #[module(skip)]
    declared: Option<[usize; 3]>,
    #[module(skip)]
    claimed_classes: Option<usize>,
}

impl Net {
    fn new(device: &Device, channels: usize, width: usize, classes: usize) -> Self {
        Self {
            conv1: Conv2dConfig::new([channels, width], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dropout: DropoutConfig::new(0.2).init(),
            fc: LinearConfig::new(width * 6 * 6, classes).init(device),
            declared: None,
            claimed_classes: None,
        }
    }

    /// The same network, built after seeding the backend: the same weights every time.
    fn seeded(seed: u64, channels: usize, classes: usize) -> Self {
        let device = Device::flex();
        device.seed(seed);
        Self::new(&device, channels, 4, classes)
    }
}

impl ImageClassifier for Net {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = relu(self.conv1.forward(images)); // [batch, width, 12, 12]
        let x = self.pool.forward(x); // [batch, width, 6, 6]
        let x = self.dropout.forward(x.flatten(1, 3)); // [batch, width * 36]
        self.fc.forward(x) // [batch, classes]
    }

    fn num_classes(&self) -> usize {
        self.claimed_classes.unwrap_or(self.fc.weight.dims()[1])
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        self.declared
    }
}

// ---------------------------------------------------------------- helpers

fn gray12() -> ImageShape {
    ImageShape {
        channels: 1,
        height: 12,
        width: 12,
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        optimizer: resumable_sgd(0.05),
        epochs,
        batch_size: 8,
        log_every: 0,
        num_workers: 1,
        augment: true,
        seed: 11,
        ..TrainConfig::tutorial()
    }
}

fn trainer(epochs: usize, out: &Path) -> Trainer {
    Trainer::new(config(epochs), out).device(select_device(DeviceChoice::Flex).unwrap())
}

// ---------------------------------------------------------------- tests

#[test]
fn your_own_network_trains_stops_resumes_reloads_and_predicts() {
    let _serial = serial();
    let data = synthetic(48, 3, gray12(), 1);

    // Two epochs straight.
    let straight = tempfile::tempdir().unwrap();
    let a = trainer(2, straight.path())
        .model(Net::seeded(5, 1, 3))
        .fit(data.clone(), data.clone())
        .unwrap();
    assert_eq!(a.history.len(), 2);
    assert!(a.history[1].test_accuracy > 0.45, "{:?}", a.history);
    let config_json = std::fs::read_to_string(straight.path().join("config.json")).unwrap();
    assert!(config_json.contains("\"Net\""), "{config_json}");
    for file in ["metrics.csv", "loss.svg", "samples.png", "confusion.csv"] {
        assert!(straight.path().join(file).is_file(), "{file}");
    }

    // Stopped (as by Ctrl-C) in the middle of epoch 1, then resumed into a freshly built
    // network with other initial weights: the checkpoint's weights, optimizer state, data
    // order and dropout masks must make it the same run, bit for bit.
    let stopped = tempfile::tempdir().unwrap();
    let t = trainer(2, stopped.path()).model(Net::seeded(5, 1, 3));
    let observer = Arc::new(StopAt {
        at: Some((1, 3, t.stop_handle())),
        ..StopAt::default()
    });
    let c = t
        .observer(observer)
        .fit(data.clone(), data.clone())
        .unwrap();
    assert!(c.stopped_early);
    let saved = SavedCheckpoint::latest(stopped.path()).unwrap();
    assert_eq!((saved.state.epoch, saved.state.batches_into_epoch), (0, 3));
    let counter = Arc::new(StopAt::default());
    let d = trainer(2, stopped.path())
        .model(Net::seeded(99, 1, 3))
        .observer(counter.clone())
        .resume_from(stopped.path())
        .fit(data.clone(), data.clone())
        .unwrap();
    assert_eq!(*counter.batches.lock().unwrap(), 12 - 3);
    assert_eq!(
        params(&a.model),
        params(&d.model),
        "stopped + resumed differs"
    );
    assert_eq!(a.history, {
        let mut h = d.history.clone();
        for (x, y) in h.iter_mut().zip(&a.history) {
            // Wall-clock figures differ between runs; everything else must not.
            x.epoch_seconds = y.epoch_seconds;
            x.train_images_per_sec = y.train_images_per_sec;
        }
        h
    });

    // model = Net(); model.load_state_dict(torch.load(...)["model_state_dict"])
    let latest = SavedCheckpoint::latest(straight.path()).unwrap();
    let loaded = latest.load_into(Net::seeded(123, 1, 3)).unwrap();
    assert_eq!(params(&loaded), params(&a.model));

    // ... and classify one image with it, as the trained model does.
    let image = data.image(0).unwrap();
    let device = Device::flex();
    let p = classify(&loaded, image, gray12(), data.classes(), &device).unwrap();
    let q = classify(&a.model, image, gray12(), data.classes(), &device).unwrap();
    assert_eq!(p, q);
    let total: f32 = p.probabilities.iter().sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");
    assert_eq!(p.probabilities.len(), 3);
}

#[test]
fn every_mismatch_between_model_and_data_is_an_error_before_the_first_step() {
    let _serial = serial();
    let data = synthetic(16, 3, gray12(), 2);
    let out = tempfile::tempdir().unwrap();
    let fit_with = |net: Net, train: &ImageDataset, test: &ImageDataset| {
        let counter = Arc::new(StopAt::default());
        let err = trainer(1, out.path())
            .model(net)
            .observer(counter.clone())
            .fit(train.clone(), test.clone())
            .unwrap_err();
        assert_eq!(*counter.batches.lock().unwrap(), 0, "{err}");
        err
    };

    // A declared input shape that is not the data's.
    let mut rgb = Net::seeded(1, 3, 3);
    rgb.declared = Some([3, 12, 12]);
    let err = fit_with(rgb, &data, &data);
    let TrainError::Mismatch(DataMismatch::Shape {
        model, data: got, ..
    }) = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*model, *got), ([3, 12, 12], [1, 12, 12]));
    assert!(err.to_string().contains("[3, 12, 12]") && err.to_string().contains("[1, 12, 12]"));

    // Another number of classes.
    let err = fit_with(Net::seeded(1, 1, 5), &data, &data);
    assert!(
        matches!(
            err,
            TrainError::Mismatch(DataMismatch::Classes { model: 5, data: 3 })
        ),
        "{err}"
    );

    // No declared shape, and a forward pass that fails on this one: the layer's own message,
    // not a panic.
    let err = fit_with(Net::seeded(1, 3, 3), &data, &data);
    let TrainError::Mismatch(DataMismatch::Forward {
        data: shape,
        reason,
    }) = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*shape, [1, 12, 12]);
    assert!(!reason.is_empty());

    // Images of another size than the network's `fc` expects.
    let big = synthetic(
        16,
        3,
        ImageShape {
            channels: 1,
            height: 16,
            width: 16,
        },
        3,
    );
    let err = fit_with(Net::seeded(1, 1, 3), &big, &big);
    assert!(
        matches!(err, TrainError::Mismatch(DataMismatch::Forward { .. })),
        "{err}"
    );

    // Test classes named otherwise than the training classes.
    let renamed = ImageDataset::new(
        data.pixels().to_vec(),
        data.labels().to_vec(),
        gray12(),
        vec!["x".into(), "y".into(), "z".into()],
    )
    .unwrap();
    let err = fit_with(Net::seeded(1, 1, 3), &data, &renamed);
    assert!(
        matches!(err, TrainError::Mismatch(DataMismatch::ClassNames { .. })),
        "{err}"
    );

    // A network that says 3 classes but returns 4 logits.
    let mut lying = Net::seeded(1, 1, 4);
    lying.claimed_classes = Some(3);
    let err = fit_with(lying, &data, &data);
    let TrainError::Mismatch(DataMismatch::Logits { got, classes, .. }) = &err else {
        panic!("{err}")
    };
    assert_eq!((got.as_slice(), *classes), (&[1usize, 4][..], 3));

    // Training and test images of different shapes.
    let err = fit_with(Net::seeded(1, 1, 3), &data, &big);
    assert!(
        matches!(err, TrainError::Mismatch(DataMismatch::Splits { .. })),
        "{err}"
    );
}

#[test]
fn a_checkpoint_of_another_architecture_lists_the_keys_and_shapes_that_differ() {
    let _serial = serial();
    let data = synthetic(16, 3, gray12(), 4);
    let out = tempfile::tempdir().unwrap();
    trainer(1, out.path())
        .model(Net::seeded(1, 1, 3))
        .fit(data.clone(), data.clone())
        .unwrap();
    let latest = SavedCheckpoint::latest(out.path()).unwrap();

    // Wider convolution: conv1 and fc have other shapes.
    let wide = Net::new(&Device::flex(), 1, 8, 3);
    let err = latest.load_into(wide).unwrap_err();
    let TrainError::Architecture { diff, path } = &err else {
        panic!("{err}")
    };
    assert!(path.ends_with("model.bpk"));
    let keys: Vec<&str> = diff.shapes.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(keys, ["conv1.bias", "conv1.weight", "fc.weight"]);
    assert_eq!(diff.shapes[1].1, vec![8, 1, 3, 3]);
    assert_eq!(diff.shapes[1].2, vec![4, 1, 3, 3]);
    assert!(
        err.to_string()
            .contains("conv1.weight (model [8, 1, 3, 3], checkpoint [4, 1, 3, 3])")
    );

    // A built-in model: every key is missing or unexpected.
    let builtin = torchlet::model::SeedConvNetConfig::new().init(&Device::flex());
    let err = latest.load_into(builtin).unwrap_err();
    let TrainError::Architecture { diff, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        diff.missing.iter().any(|(k, _)| k == "conv2.weight"),
        "{diff}"
    );
    assert!(
        diff.unexpected
            .iter()
            .any(|(k, s)| k == "fc.weight" && s == &vec![144, 3]),
        "{diff}"
    );

    // Resuming into another network is the same error, before anything is written.
    let err = trainer(2, out.path())
        .model(Net::new(&Device::flex(), 1, 8, 3))
        .resume_from(out.path())
        .fit(data.clone(), data)
        .unwrap_err();
    assert!(matches!(err, TrainError::Architecture { .. }), "{err}");
}
