//! CIFAR networks written with [`crate::nn`], with PyTorch's parameter names.
//!
//! | model | config | parameters (10 classes) | smallest image |
//! |---|---|---|---|
//! | [`Vgg`] VGG-11 with batch norm | [`Vgg11Config`] | 9,231,114 | 32×32 |
//! | [`Vgg`] VGG-16 with batch norm | [`Vgg16Config`] | 14,728,266 | 32×32 |
//! | [`Resnet18`] | [`Resnet18Config`] | 11,173,962 | 1×1 |
//! | [`Airbench94`] | [`Airbench94Config`] | 1,972,792 | 25×25 |
//!
//! The parameter counts are those of the same networks built in PyTorch
//! (`sum(p.numel() for p in model.parameters())`, `scripts/zoo_fixtures.py`), which
//! [`interop::pytorch_num_params`](crate::interop::pytorch_num_params) reproduces; the tests
//! check that they agree. Burn's [`num_params`](burn::module::Module::num_params) is larger by
//! the batch norms' running means and variances (2 per channel), which PyTorch keeps as
//! buffers, not parameters.
//!
//! Every config has `num_classes` (default 10), `input` (`[channels, height, width]`, default
//! `[3, 32, 32]`: the first convolution takes `input[0]` channels, and images too small for
//! the network's downsampling are a [`ModelConfigError`] at build
//! time) and a width setting, to build the same architecture narrower.
//!
//! Their weights load from, and export to, PyTorch `state_dict`s of the equivalent PyTorch
//! modules ([`crate::interop`], plain key layout).

mod airbench;
mod resnet;
mod vgg;

pub use airbench::{AIRBENCH_SCALE, Airbench94, Airbench94Config, ConvGroup};
pub use resnet::{Resnet18, Resnet18Config};
pub use vgg::{Vgg, Vgg11Config, Vgg16Config, VggDepth, VggLayer};

use crate::ModelConfigError;

/// Checks what every zoo config has: classes and a non-empty image shape.
fn check_common(
    model: &'static str,
    num_classes: usize,
    input: [usize; 3],
) -> Result<(), ModelConfigError> {
    if num_classes == 0 {
        return Err(ModelConfigError::NoClasses);
    }
    if input.contains(&0) {
        return Err(ModelConfigError::EmptyInput { model, input });
    }
    Ok(())
}

/// Checks that a width setting is at least 1.
fn check_width(
    model: &'static str,
    setting: &'static str,
    values: &[usize],
) -> Result<(), ModelConfigError> {
    if values.contains(&0) {
        let value = match values {
            [one] => one.to_string(),
            _ => format!("{values:?}"),
        };
        return Err(ModelConfigError::ZeroWidth {
            model,
            setting,
            value,
        });
    }
    Ok(())
}
