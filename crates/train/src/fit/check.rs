//! Does the model fit the data? Checked once, before the first step, so a mismatch is a
//! [`DataMismatch`] naming both shapes and what to change, never a panic inside a layer.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::{Device, Tensor};
use torchlet_data::ImageDataset;
use torchlet_model::ImageClassifier;

/// How a model and its data disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataMismatch {
    /// The model takes another image shape than the data has.
    #[error(
        "the model takes images of {model:?} (channels, height, width) but the {split} data has {data:?}; \
         build the model for {data:?} or resize the images to {model:?} (ImageFolder::resize)"
    )]
    Shape {
        /// `train` or `test`.
        split: &'static str,
        /// What the model takes.
        model: [usize; 3],
        /// What the data has.
        data: [usize; 3],
    },
    /// The training and test images differ in shape.
    #[error("the training images are {train:?} but the test images are {test:?}")]
    Splits {
        /// `[channels, height, width]` of the training images.
        train: [usize; 3],
        /// `[channels, height, width]` of the test images.
        test: [usize; 3],
    },
    /// The training and test sets name other classes.
    #[error("the training classes {train:?} differ from the test classes {test:?}")]
    ClassNames {
        /// The training set's classes.
        train: Vec<String>,
        /// The test set's classes.
        test: Vec<String>,
    },
    /// The model has another number of outputs than the data has classes.
    #[error(
        "the model has {model} outputs but the data has {data} classes; build it with {data} classes"
    )]
    Classes {
        /// The model's `num_classes()`.
        model: usize,
        /// The data's classes.
        data: usize,
    },
    /// The model's forward pass failed on one image of the data's shape.
    #[error("the model fails on one image of {data:?} (channels, height, width): {reason}")]
    Forward {
        /// The data's image shape.
        data: [usize; 3],
        /// What the failing layer said.
        reason: String,
    },
    /// The model's forward pass returned logits of the wrong shape.
    #[error("the model maps one image of {data:?} to {got:?}; expected logits [1, {classes}]")]
    Logits {
        /// The data's image shape.
        data: [usize; 3],
        /// The shape returned.
        got: Vec<usize>,
        /// Number of classes.
        classes: usize,
    },
}

/// Checks the two splits against each other and `model` against them: its declared input
/// shape and class count, then one forward pass on one blank image (on `device`, no autodiff,
/// eval mode) whose failure or wrong output shape is reported instead of the panic it would
/// cause at the first step.
pub fn check_model_fits<M: ImageClassifier>(
    model: &M,
    train: &ImageDataset,
    test: &ImageDataset,
    device: &Device,
) -> Result<(), DataMismatch> {
    let data = train.shape().dims();
    let test_shape = test.shape().dims();
    if data != test_shape {
        return Err(DataMismatch::Splits {
            train: data,
            test: test_shape,
        });
    }
    if train.classes() != test.classes() {
        return Err(DataMismatch::ClassNames {
            train: train.classes().to_vec(),
            test: test.classes().to_vec(),
        });
    }
    if let Some(shape) = model.input_shape()
        && shape != data
    {
        return Err(DataMismatch::Shape {
            split: "train",
            model: shape,
            data,
        });
    }
    let classes = train.classes().len();
    if model.num_classes() != classes {
        return Err(DataMismatch::Classes {
            model: model.num_classes(),
            data: classes,
        });
    }
    let probe = model.valid();
    let [c, h, w] = data;
    let images = Tensor::<4>::zeros([1, c, h, w], &device.clone().inner());
    let dims =
        catch_unwind(AssertUnwindSafe(|| probe.forward(images).dims())).map_err(|panic| {
            DataMismatch::Forward {
                data,
                reason: panic_message(panic.as_ref()),
            }
        })?;
    if dims != [1, classes] {
        return Err(DataMismatch::Logits {
            data,
            got: dims.to_vec(),
            classes,
        });
    }
    Ok(())
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "the forward pass panicked".to_string()
    }
}
