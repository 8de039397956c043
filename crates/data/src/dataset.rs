//! [`ImageDataset`]: a labelled image set held in one contiguous buffer.
//!
//! This is the Rust side of PyTorch's `Dataset`: `len()` and `get(i)` → `(image, label)`.
//! It implements Burn's [`Dataset`] trait, so Burn's own `DataLoaderBuilder` accepts it too.

use std::fmt;

use burn::data::dataset::{Dataset, DatasetError};

use crate::error::{DataError, Result};

/// Channels, height and width of every image in a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageShape {
    /// Number of channels (3 for RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl ImageShape {
    /// CIFAR-10's 3 x 32 x 32.
    pub const CIFAR: ImageShape = ImageShape {
        channels: 3,
        height: 32,
        width: 32,
    };

    /// Number of bytes (or values) in one image.
    pub const fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The shape as `[channels, height, width]`.
    pub const fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

/// One dataset item, owned: what `dataset[i]` is in PyTorch before `ToTensor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageItem {
    /// Pixels in channel-major (CHW) order, `channels * height * width` bytes.
    pub image: Vec<u8>,
    /// Class index.
    pub label: usize,
}

/// A labelled image dataset: all pixels in one `u8` buffer (CHW per image), one label per image.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageDataset {
    pixels: Vec<u8>,
    labels: Vec<u16>,
    shape: ImageShape,
    classes: Vec<String>,
}

impl fmt::Debug for ImageDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageDataset")
            .field("len", &self.len())
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .finish()
    }
}

impl ImageDataset {
    /// Builds a dataset from its parts, checking that sizes and labels agree.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u16>,
        shape: ImageShape,
        classes: Vec<String>,
    ) -> Result<Self> {
        let numel = shape.numel();
        if numel == 0 {
            return Err(DataError::InvalidConfig(format!(
                "image shape {:?} has no pixels",
                shape.dims()
            )));
        }
        if pixels.len() != labels.len() * numel {
            return Err(DataError::InvalidConfig(format!(
                "{} pixel bytes do not hold {} images of {} bytes",
                pixels.len(),
                labels.len(),
                numel
            )));
        }
        if classes.len() > usize::from(u16::MAX) + 1 {
            return Err(DataError::InvalidConfig(format!(
                "{} classes is more than this dataset type supports",
                classes.len()
            )));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= classes.len())
        {
            return Err(DataError::InvalidConfig(format!(
                "item {i} has label {l}, but there are only {} classes",
                classes.len()
            )));
        }
        Ok(Self {
            pixels,
            labels,
            shape,
            classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of every image.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Class names, indexed by label (`test_set.classes` in torchvision).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// All pixels, image after image, each in CHW order.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// All labels, in dataset order.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// The pixels of image `index` (CHW), or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let n = self.shape.numel();
        self.pixels.get(index * n..(index + 1) * n)
    }

    /// The label of image `index`, or `None` past the end.
    pub fn label(&self, index: usize) -> Option<usize> {
        self.labels.get(index).map(|&l| usize::from(l))
    }

    /// Image and label of item `index` as an owned item.
    pub fn item(&self, index: usize) -> Result<ImageItem> {
        match (self.image(index), self.label(index)) {
            (Some(image), Some(label)) => Ok(ImageItem {
                image: image.to_vec(),
                label,
            }),
            _ => Err(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            }),
        }
    }

    /// How many images each class has, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// A new dataset holding the items `indices`, in that order (copies their pixels).
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let n = self.shape.numel();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let image = self.image(i).ok_or(DataError::IndexOutOfRange {
                index: i,
                len: self.len(),
            })?;
            pixels.extend_from_slice(image);
            labels.push(self.labels[i]);
        }
        Ok(Self {
            pixels,
            labels,
            shape: self.shape,
            classes: self.classes.clone(),
        })
    }
}

impl Dataset<ImageItem> for ImageDataset {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        self.item(index).map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn tiny() -> ImageDataset {
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 2,
        };
        ImageDataset::new(
            vec![1, 2, 3, 4, 5, 6],
            vec![0, 1, 1],
            shape,
            vec!["a".into(), "b".into()],
        )
        .unwrap()
    }

    #[test]
    fn items_and_counts() {
        let ds = tiny();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.image(1), Some(&[3u8, 4][..]));
        assert_eq!(
            ds.item(2).unwrap(),
            ImageItem {
                image: vec![5, 6],
                label: 1
            }
        );
        assert_eq!(ds.class_counts(), vec![1, 2]);
        assert!(matches!(
            ds.item(3),
            Err(DataError::IndexOutOfRange { index: 3, len: 3 })
        ));
        assert_eq!(Dataset::<ImageItem>::len(&ds), 3);
        assert!(Dataset::<ImageItem>::get(&ds, 7).is_err());
    }

    #[test]
    fn select_copies_in_order() {
        let ds = tiny().select(&[2, 0]).unwrap();
        assert_eq!(ds.pixels(), &[5, 6, 1, 2]);
        assert_eq!(ds.labels(), &[1, 0]);
    }

    #[test]
    fn rejects_inconsistent_parts() {
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 2,
        };
        assert!(ImageDataset::new(vec![1, 2, 3], vec![0], shape, vec!["a".into()]).is_err());
        assert!(ImageDataset::new(vec![1, 2], vec![1], shape, vec!["a".into()]).is_err());
    }
}
