//! # torchlet
//!
//! The classic PyTorch CIFAR-10 tutorial as a Rust library on [Burn](https://burn.dev):
//! every step a PyTorch user knows, one crate per chapter.
//!
//! | tutorial chapter | module |
//! |---|---|
//! | 1. data: `CIFAR10`, `ToTensor`, `DataLoader` | [`data`] (`torchlet-data`) |
//! | 2. models: linear baseline, conv net | [`model`] (`torchlet-model`) |
//! | 3–6. loss + SGD, save/load, train/eval loop, GPU | [`train`] (`torchlet-train`) |
//!
//! Backends are Cargo features: `flex` (default, pure-Rust CPU), `wgpu` (GPU), `ndarray`
//! (Burn's older CPU backend) and `cuda`. Tensors carry their device, so model code names none.
//!
//! ```
//! use torchlet::burn::tensor::Device;
//! use torchlet::data::{DataLoader, ImageDataset, ImageShape};
//!
//! let ds = ImageDataset::new(vec![0; 2 * 3072], vec![1, 0], ImageShape::CIFAR,
//!                            vec!["cat".into(), "dog".into()])?;
//! let loader = DataLoader::builder(ds).batch_size(64).device(&Device::flex()).build()?;
//! let batch = loader.iter().next().expect("one batch");
//! assert_eq!(batch.images.dims(), [2, 3, 32, 32]);
//! # Ok::<(), torchlet::data::DataError>(())
//! ```
#![warn(missing_docs)]

pub use burn;
pub use torchlet_data as data;
pub use torchlet_model as model;
pub use torchlet_train as train;

/// The tutorial, chapter by chapter (`docs/tutorial.md`): its Rust blocks run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/tutorial.md")]
pub struct Tutorial;

/// 教程 (`docs/tutorial.zh.md`): its Rust blocks run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../docs/tutorial.zh.md")]
pub struct TutorialZh;
