//! ResNet-18 for CIFAR, in the layout of `kuangliu/pytorch-cifar`.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{check_common, check_width};
use crate::nn::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, BasicBlock, BasicBlockConfig, BatchNorm2d, Conv2d,
    Conv2dConfig, Flatten, Linear, LinearConfig, Padding, ReLU, batch_norm2d,
};
use crate::size::Count;
use crate::{ImageClassifier, ModelConfigError};

/// Name of the model.
const NAME: &str = "resnet18";

/// Configuration of [`Resnet18`]; 11,173,962 parameters by default (as PyTorch counts them).
///
/// `base_width` scales every layer: the stages have `base_width × (1, 2, 4, 8)` channels (64
/// gives the standard network), the classifier takes `8 × base_width` features.
#[derive(Config, Debug)]
pub struct Resnet18Config {
    /// Number of classes, the width of the logits.
    #[config(default = "crate::NUM_CLASSES")]
    pub num_classes: usize,
    /// `[channels, height, width]` of the images.
    #[config(default = "[crate::IMAGE_CHANNELS, crate::IMAGE_SIZE, crate::IMAGE_SIZE]")]
    pub input: [usize; 3],
    /// Channels of `conv1` and `layer1` (64 in the standard network).
    #[config(default = 64)]
    pub base_width: usize,
}

impl Resnet18Config {
    /// Checks the configuration without building anything.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        check_common(NAME, self.num_classes, self.input)?;
        check_width(NAME, "base_width", &[self.base_width])?;
        self.count().check(NAME)
    }

    /// Parameters of the network as PyTorch counts them (`None`: more than a `u64` holds).
    pub fn parameter_count(&self) -> Option<u64> {
        self.count().get()
    }

    fn count(&self) -> Count {
        let w = self.base_width;
        let Some(widths) = [1, 2, 4, 8].iter().try_fold(Vec::new(), |mut v, &m| {
            v.push(w.checked_mul(m)?);
            Some(v)
        }) else {
            return Count::OVERFLOW;
        };
        // Two blocks per stage; the first one of a stage changes width and stride.
        let block = |c_in: usize, c_out: usize, projects: bool| {
            let shortcut = if projects {
                Count::conv(c_in, c_out, 1, false).plus(Count::batch_norm(c_out))
            } else {
                Count::ZERO
            };
            Count::conv(c_in, c_out, 3, false)
                .plus(Count::conv(c_out, c_out, 3, false))
                .plus(Count::product(&[2, 2, c_out]))
                .plus(shortcut)
        };
        let mut total = Count::conv(self.input[0], w, 3, false).plus(Count::batch_norm(w));
        let mut c_in = w;
        for (stage, &c_out) in widths.iter().enumerate() {
            total = total
                .plus(block(c_in, c_out, stage > 0))
                .plus(block(c_out, c_out, false));
            c_in = c_out;
        }
        total.plus(Count::linear(c_in, self.num_classes, true))
    }

    /// Builds the network on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<Resnet18, ModelConfigError> {
        self.validate()?;
        let width = self.base_width;
        // Two blocks per stage; the first one of a stage changes width and stride.
        let stage = |c_in: usize, c_out: usize, stride: usize| {
            Ok::<_, ModelConfigError>(vec![
                BasicBlockConfig::new(c_in, c_out)
                    .with_stride(stride)
                    .try_init(device)?,
                BasicBlockConfig::new(c_out, c_out).try_init(device)?,
            ])
        };
        Ok(Resnet18 {
            conv1: Conv2dConfig::new(self.input[0], width, [3, 3])
                .with_padding(Padding::Explicit(1, 1))
                .with_bias(false)
                .try_init(device)?,
            bn1: batch_norm2d(width, 1e-5, 0.1, device)?,
            relu: ReLU::new(),
            layer1: stage(width, width, 1)?,
            layer2: stage(width, 2 * width, 2)?,
            layer3: stage(2 * width, 4 * width, 2)?,
            layer4: stage(4 * width, 8 * width, 2)?,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            flatten: Flatten::new(),
            linear: LinearConfig::new(8 * width, self.num_classes).init(device),
            input: self.input,
        })
    }

    /// Builds the network on `device`.
    ///
    /// # Panics
    ///
    /// Panics if the configuration is invalid (see [`try_init`](Self::try_init)).
    pub fn init(&self, device: &Device) -> Resnet18 {
        match self.try_init(device) {
            Ok(model) => model,
            Err(err) => panic!("invalid Resnet18Config: {err}"),
        }
    }
}

/// ResNet-18 for CIFAR (`kuangliu/pytorch-cifar`'s `ResNet18()`): a 3×3 stem without max
/// pooling, four stages of two [`BasicBlock`]s, global average pooling and one linear
/// classifier; 11,173,962 parameters with 10 classes (as PyTorch counts them).
///
/// For a 3×32×32 image:
///
/// ```text
/// conv1, bn1, relu   Conv2d(3, 64, 3, padding=1, bias=False), BN, ReLU   [batch, 64, 32, 32]
/// layer1             2 × BasicBlock(64), stride 1                         [batch, 64, 32, 32]
/// layer2             2 × BasicBlock(128), first stride 2                  [batch, 128, 16, 16]
/// layer3             2 × BasicBlock(256), first stride 2                  [batch, 256, 8, 8]
/// layer4             2 × BasicBlock(512), first stride 2                  [batch, 512, 4, 4]
/// avgpool            AdaptiveAvgPool2d(1)                                 [batch, 512, 1, 1]
/// flatten            Flatten                                              [batch, 512]
/// linear             Linear(512, num_classes)                             [batch, num_classes]
/// ```
///
/// Keys are kuangliu's: `conv1.weight`, `bn1.*`, `layer1.0.conv1.weight`, `layer1.0.bn1.*`,
/// ..., `layer2.0.shortcut.0.weight` / `layer2.0.shortcut.1.*` (the projection shortcuts of
/// the first blocks of layers 2 to 4), `linear.*`. Kuangliu pools with `avg_pool2d(out, 4)`,
/// the same as the adaptive pooling here for 32×32 images; any image size works here.
#[derive(Module, Debug)]
pub struct Resnet18 {
    /// The stem: `Conv2d(channels, 64, 3, padding=1, bias=False)`.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm2d,
    /// ReLU after `bn1`.
    pub relu: ReLU,
    /// Stage 1: 64 channels, full resolution.
    pub layer1: Vec<BasicBlock>,
    /// Stage 2: 128 channels, 1/2 resolution.
    pub layer2: Vec<BasicBlock>,
    /// Stage 3: 256 channels, 1/4 resolution.
    pub layer3: Vec<BasicBlock>,
    /// Stage 4: 512 channels, 1/8 resolution.
    pub layer4: Vec<BasicBlock>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// `[batch, 512, 1, 1] → [batch, 512]`.
    pub flatten: Flatten,
    /// `Linear(8 × base_width, num_classes)`.
    pub linear: Linear,
    /// The `[channels, height, width]` it was configured for.
    #[module(skip)]
    pub input: [usize; 3],
}

impl Resnet18 {
    /// Maps images `[batch, channels, height, width]` to logits `[batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // [batch, 64, h, w]
        let x = self
            .relu
            .forward(self.bn1.forward(self.conv1.forward(images)));
        // [batch, 64, h, w] -> [batch, 128, h/2, w/2] -> [batch, 256, h/4, w/4]
        //   -> [batch, 512, h/8, w/8]
        let x = [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(x, |x, block| block.forward(x));
        // [batch, 512, 1, 1] -> [batch, 512]
        let x = self.flatten.forward(self.avgpool.forward(x));
        // [batch, num_classes]
        self.linear.forward(x)
    }

    /// Width of the logits.
    pub fn num_classes(&self) -> usize {
        let [_, d_output] = self.linear.weight.dims();
        d_output
    }
}

impl ImageClassifier for Resnet18 {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Resnet18::forward(self, images)
    }

    fn num_classes(&self) -> usize {
        Resnet18::num_classes(self)
    }

    /// The configured shape; the network also takes other image sizes with the same
    /// channels.
    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(self.input)
    }

    fn name(&self) -> String {
        NAME.to_string()
    }
}

impl crate::interop::TorchLayout for Resnet18 {
    fn torch_layers(&self) -> Vec<crate::interop::TorchLayer> {
        // Plain keys only.
        Vec::new()
    }
}
