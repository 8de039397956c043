//! # torchlet-train
//!
//! Chapters three to six of the PyTorch CIFAR-10 tutorial on Burn's `burn::train`:
//!
//! | PyTorch | torchlet-train |
//! |---|---|
//! | `criterion = nn.CrossEntropyLoss()`, `loss.backward()`, `optimizer.step()` | one step of [`fit`] |
//! | `optim.SGD(lr, momentum, weight_decay, nesterov)`, `Adam`, `AdamW` | [`OptimizerConfig`] |
//! | `StepLR`, `CosineAnnealingLR`, `OneCycleLR` | [`LrSchedule`] |
//! | `for epoch in ...: train(); test()` | [`Trainer::fit`] |
//! | `model.train()` / `model.eval()` + `torch.no_grad()` | Burn's `Module::train` / `Module::valid` (done by the loop) |
//! | `torch.save({...})`, `model.load_state_dict(...)` | [`checkpoint`] ([`SavedCheckpoint::load_into`]) |
//! | `SummaryWriter.add_scalar` | [`tensorboard`] |
//! | `for imgs, targets in test_loader` + accuracy | [`fit`]'s evaluation, [`confusion`] |
//! | `torch.device("cuda" if ... else "cpu")` | [`select_device`] |
//! | `SGD([{'params': ..., 'lr': ...}, ...])` | Burn's `ModuleOptimizer::with_group`; `p.requires_grad = False`: [`Frozen`] |
//! | an EMA of the weights / lookahead | [`Lookahead`] |
//! | test-time augmentation (flips, shifts) | [`evaluate_tta`], [`tta_logits`] |
//! | `DistributedDataParallel` over several devices of one machine | [`Trainer::devices`], [`select_devices`] |
//!
//! The loop ([`fit`]) is torchlet's own, over Burn's autodiff, optimizers, schedulers and
//! records; it trains any [`ImageClassifier`](torchlet_model::ImageClassifier) — the built-in
//! models and your own (`Trainer::new(config, dir).model(my_net)`) — the same way. A run
//! folder holds `config.json`, TensorBoard event files (`train_loss` per step, `test_loss` and
//! `test_accuracy` per epoch), `metrics.csv`, `loss.svg`, `accuracy.svg`, `checkpoints/` and,
//! at the end, `confusion.csv`, `confusion.md`, `per_class_accuracy.csv` and `samples.png`
//! (the writers are in [`output`]).
//!
//! The library prints nothing: it reports through an [`Observer`] and `tracing`.
//!
//! ```
//! # #[cfg(feature = "flex")] {
//! use torchlet_data::{ImageDataset, ImageShape};
//! use torchlet_train::{DeviceChoice, TrainConfig, Trainer, select_device};
//!
//! // 32 random-looking images of two classes; a real run uses `Cifar10::open(path)?`.
//! let pixels: Vec<u8> = (0..32 * 3072u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
//! let labels = (0..32).map(|i| i % 2).collect();
//! let classes = vec!["cat".to_string(), "dog".to_string()];
//! let data = ImageDataset::new(pixels, labels, ImageShape::CIFAR, classes)?;
//!
//! let mut config = TrainConfig::tutorial();
//! config.model = "linear".parse()?;
//! if let torchlet_model::ModelConfig::Linear(c) = &mut config.model { c.num_classes = 2; }
//! config.epochs = 1;
//! config.batch_size = 8;
//!
//! let out = tempfile::tempdir()?;
//! let report = Trainer::new(config, out.path())
//!     .device(select_device(DeviceChoice::Flex)?)
//!     .fit(data.clone(), data)?;
//! assert_eq!(report.history.len(), 1);
//! assert!(out.path().join("checkpoints/epoch-0001/model.bpk").is_file());
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Your own network goes through the same loop (`model = MyNet()` in PyTorch):
//!
//! ```
//! # #[cfg(feature = "flex")] {
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::{Device, Tensor};
//! use torchlet_data::{ImageDataset, ImageShape};
//! use torchlet_model::ImageClassifier;
//! use torchlet_train::{DeviceChoice, SavedCheckpoint, TrainConfig, Trainer, select_device};
//!
//! #[derive(Module, Debug)]
//! struct MyNet {
//!     fc: Linear,
//! }
//!
//! impl ImageClassifier for MyNet {
//!     fn forward(&self, images: Tensor<4>) -> Tensor<2> {
//!         self.fc.forward(images.flatten(1, 3)) // [batch, 1 * 8 * 8] -> [batch, 2]
//!     }
//!     fn num_classes(&self) -> usize {
//!         2
//!     }
//! }
//!
//! let shape = ImageShape { channels: 1, height: 8, width: 8 };
//! let pixels: Vec<u8> = (0..16 * 64u32).map(|i| (i * 37 % 251) as u8).collect();
//! let data = ImageDataset::new(pixels, (0..16).map(|i| i % 2).collect(), shape,
//!                              vec!["a".into(), "b".into()])?;
//! let device = Device::flex();
//! let mut config = TrainConfig::tutorial();
//! (config.epochs, config.batch_size) = (1, 8);
//! let out = tempfile::tempdir()?;
//! let report = Trainer::new(config, out.path())
//!     .device(select_device(DeviceChoice::Flex)?)
//!     .model(MyNet { fc: LinearConfig::new(64, 2).init(&device) })
//!     .fit(data.clone(), data)?;
//! assert_eq!(report.history.len(), 1);
//!
//! // Build a fresh network and load the checkpoint into it.
//! let fresh = MyNet { fc: LinearConfig::new(64, 2).init(&device) };
//! let loaded = SavedCheckpoint::latest(out.path())?.load_into(fresh)?;
//! assert_eq!(loaded.fc.weight.dims(), [64, 2]);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod atomic;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod fit;
pub mod freeze;
pub mod infer;
pub mod lookahead;
pub mod optim;
pub mod output;
pub mod report;
pub mod trainer;
pub mod tta;

pub use checkpoint::{KeyDiff, SavedCheckpoint, list_checkpoints};
pub use config::{LrSchedule, OptimizerConfig, TrainConfig};
pub use device::{
    DeviceChoice, DeviceSpec, SelectedDevice, parse_device_list, select_device, select_devices,
};
pub use error::{Result, TrainError};
pub use fit::check::DataMismatch;
pub use freeze::{Frozen, param_paths};
pub use infer::{Prediction, classify, load_image, load_image_32};
pub use lookahead::Lookahead;
pub use output::{confusion, grid, metrics_csv, plot, tensorboard};
pub use report::{
    CheckpointSaved, EpochSummary, Observer, Phase, Progress, RunStart, Silent, StepLog,
};
pub use trainer::{StopHandle, TrainReport, Trainer};
pub use tta::{Tta, evaluate_tta, tta_logits};
