//! Inference with a trained model: class probabilities for one image.

use std::path::Path;

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::FilterType;
use torchlet_data::ImageShape;
use torchlet_data::image_folder::{decode, hwc_to_chw};
use torchlet_model::Model;

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

/// Decodes a PNG or JPEG file to 32×32 CHW bytes, resizing (bilinear) when it has another
/// size: what the tutorial's models take.
pub fn load_image_32(path: &Path) -> Result<Vec<u8>, TrainError> {
    let mut img = decode(path)?;
    let side = ImageShape::CIFAR.width as u32;
    if img.width() != side || img.height() != side {
        img = image::imageops::resize(&img, side, side, FilterType::Triangle);
    }
    let mut chw = vec![0u8; ImageShape::CIFAR.numel()];
    hwc_to_chw(img.as_raw(), ImageShape::CIFAR, &mut chw);
    Ok(chw)
}

/// Classifies one CHW `u8` image of `shape` with the `ToTensor` transform the training used
/// (values / 255), in eval mode and without autodiff.
pub fn classify(
    model: &Model,
    image_chw: &[u8],
    shape: ImageShape,
    class_names: &[String],
    device: &Device,
) -> Result<Prediction, TrainError> {
    if image_chw.len() != shape.numel() {
        return Err(TrainError::InvalidConfig(format!(
            "image has {} bytes, expected {} for {:?}",
            image_chw.len(),
            shape.numel(),
            shape.dims()
        )));
    }
    let values: Vec<f32> = image_chw.iter().map(|&b| f32::from(b) / 255.0).collect();
    let [c, h, w] = shape.dims();
    let x = Tensor::<4>::from_data(TensorData::new(values, [1, c, h, w]), device);
    let logits = model.valid().forward(x);
    let probabilities: Vec<f32> = softmax(logits, 1)
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainError::Training(format!("reading probabilities: {e:?}")))?;
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
