//! Inference with a trained model: class probabilities for one image.

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use torchlet_data::ImageShape;
use torchlet_data::image_folder::{Channels, ImageFolder};
use torchlet_model::ImageClassifier;

use crate::error::TrainError;

/// The model's answer for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the most probable class.
    pub class: usize,
    /// Its name.
    pub name: String,
    /// Probability of every class (softmax of the logits), in class order.
    pub probabilities: Vec<f32>,
}

/// Decodes a PNG or JPEG file to CHW bytes of `shape` (1 channel: grayscale, 3: RGB),
/// resizing (bilinear) when it has another size: what a model trained on `shape` takes.
///
/// The file is decoded as an image folder's files are
/// ([`ImageFolder::decode_file`](torchlet_data::ImageFolder::decode_file)), with the same
/// pixel limit ([`MAX_IMAGE_PIXELS`](torchlet_data::image_folder::MAX_IMAGE_PIXELS)).
pub fn load_image(path: &Path, shape: ImageShape) -> Result<Vec<u8>, TrainError> {
    let [c, h, w] = shape.dims();
    let channels = match c {
        1 => Channels::Gray,
        3 => Channels::Rgb,
        _ => {
            return Err(TrainError::BadImage {
                path: path.to_path_buf(),
                reason: format!("models of {c} channels take no image files (1 or 3 only)"),
            });
        }
    };
    let (chw, _) = ImageFolder::new(".")
        .channels(channels)
        .resize(h, w)
        .decode_file(path)?;
    Ok(chw)
}

/// [`load_image`] for the tutorial's 3 × 32 × 32 images.
pub fn load_image_32(path: &Path) -> Result<Vec<u8>, TrainError> {
    load_image(path, ImageShape::CIFAR)
}

/// Classifies one CHW `u8` image of `shape` with the `ToTensor` transform the training used
/// (values / 255), in eval mode and without autodiff.
pub fn classify<M: ImageClassifier>(
    model: &M,
    image_chw: &[u8],
    shape: ImageShape,
    class_names: &[String],
    device: &Device,
) -> Result<Prediction, TrainError> {
    if image_chw.len() != shape.numel() {
        return Err(TrainError::ImageSize {
            got: image_chw.len(),
            expected: shape.numel(),
            shape: shape.dims(),
        });
    }
    let values: Vec<f32> = image_chw.iter().map(|&b| f32::from(b) / 255.0).collect();
    let [c, h, w] = shape.dims();
    let x = Tensor::<4>::from_data(TensorData::new(values, [1, c, h, w]), device);
    let logits = model.valid().forward(x);
    let probabilities: Vec<f32> = softmax(logits, 1)
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainError::ReadBack {
            what: "probabilities",
            reason: format!("{e:?}"),
        })?;
    let class = probabilities
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &p)| {
            if p > best.1 { (i, p) } else { best }
        })
        .0;
    let name = class_names
        .get(class)
        .cloned()
        .unwrap_or_else(|| format!("class {class}"));
    Ok(Prediction {
        class,
        name,
        probabilities,
    })
}
