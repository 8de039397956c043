//! # torchlet-data
//!
//! Chapter one of the PyTorch CIFAR-10 tutorial — `Dataset`, `ToTensor`, `DataLoader` — for
//! Burn.
//!
//! | PyTorch / torchvision | torchlet-data |
//! |---|---|
//! | `CIFAR10(root, train=True, download=True)` | [`Cifar10::download`], [`Cifar10::open`] → `.train` / `.test` |
//! | `ImageFolder(root)` | [`load_image_folder`], [`ImageFolder`] (channels, resize) |
//! | `dataset[i]`, `len(dataset)` | [`ImageDataset::item`], [`ImageDataset::len`] (and Burn's [`Dataset`](burn::data::dataset::Dataset)) |
//! | `transforms.Compose([...])` | [`Compose`] of [`Transform`]s |
//! | `DataLoader(ds, batch_size=64, shuffle=True)` | [`DataLoader::builder`] |
//! | `imgs, targets = data` | [`ImageBatch`] `{ images: [B,C,H,W], targets: [B] }` (`[B,3,32,32]` for CIFAR-10) |
//!
//! Written here because Burn lacks them: the CIFAR-10 *binary* reader (Burn's own CIFAR source
//! downloads a PNG mirror and decodes a file per image), the checked download, `u8`
//! augmentations with per-item seeds, and a loader that gathers batches from one contiguous
//! buffer. Everything else (the `Dataset` and `DataLoader` traits, devices, tensors) is Burn's.
//!
//! ```
//! use burn::tensor::Device;
//! use torchlet_data::{DataLoader, ImageDataset, ImageShape};
//!
//! // Four 3x32x32 images of two classes (a real run uses `Cifar10::open(path)?.train`).
//! let pixels = (0..4 * 3072).map(|i| (i % 256) as u8).collect();
//! let ds = ImageDataset::new(pixels, vec![0, 1, 1, 0], ImageShape::CIFAR, vec!["a".into(), "b".into()])?;
//! let loader = DataLoader::builder(ds)
//!     .batch_size(3)
//!     .shuffle(true)
//!     .seed(7)
//!     .device(&Device::flex())
//!     .build()?;
//! let shapes: Vec<_> = loader.iter().map(|b| b.images.dims()).collect();
//! assert_eq!(shapes, vec![[3, 3, 32, 32], [1, 3, 32, 32]]);
//! # Ok::<(), torchlet_data::DataError>(())
//! ```
#![warn(missing_docs)]

pub mod cifar10;
pub mod dataset;
pub mod download;
pub mod error;
pub mod image_folder;
pub mod loader;
pub mod transform;

pub use cifar10::{Cifar10, Split};
pub use dataset::{ImageDataset, ImageItem, ImageShape};
pub use download::Download;
pub use error::{DataError, Result};
pub use image_folder::{Channels, ImageFolder, load_image_folder};
pub use loader::{Batches, DataLoader, DataLoaderBuilder, HostBatch, ImageBatch, ImageBatcher};
pub use transform::{Compose, Rng, Transform};
