//! VGG-11 and VGG-16 with batch norm, in the CIFAR layout of `kuangliu/pytorch-cifar`.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{check_common, check_width};
use crate::nn::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, Linear,
    LinearConfig, MaxPool2d, MaxPool2dConfig, Padding, ReLU, batch_norm2d,
};
use crate::size::Count;
use crate::{ImageClassifier, ModelConfigError};

/// One entry of a VGG layer list: a 3×3 convolution to that many channels (at base width
/// 64), or a 2×2 max-pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Conv(usize),
    Pool,
}

use Item::{Conv as C, Pool as M};

/// VGG-11's layers ("A" in the paper).
const VGG11: &[Item] = &[
    C(64),
    M,
    C(128),
    M,
    C(256),
    C(256),
    M,
    C(512),
    C(512),
    M,
    C(512),
    C(512),
    M,
];
/// VGG-16's layers ("D" in the paper).
const VGG16: &[Item] = &[
    C(64),
    C(64),
    M,
    C(128),
    C(128),
    M,
    C(256),
    C(256),
    C(256),
    M,
    C(512),
    C(512),
    C(512),
    M,
    C(512),
    C(512),
    C(512),
    M,
];

/// The widths of the layer lists are given for this base width.
const REFERENCE_WIDTH: usize = 64;
/// Five 2×2 max-poolings: images need at least 2⁵ pixels a side.
const MIN_SIZE: usize = 32;

/// Which VGG.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum VggDepth {
    /// VGG-11: 8 convolutions.
    Vgg11,
    /// VGG-16: 13 convolutions.
    Vgg16,
}

impl VggDepth {
    /// The model name (`vgg11` or `vgg16`).
    pub fn name(self) -> &'static str {
        match self {
            VggDepth::Vgg11 => "vgg11",
            VggDepth::Vgg16 => "vgg16",
        }
    }

    fn items(self) -> &'static [Item] {
        match self {
            VggDepth::Vgg11 => VGG11,
            VggDepth::Vgg16 => VGG16,
        }
    }
}

macro_rules! vgg_config {
    ($name:ident, $depth:expr, $doc:literal) => {
        #[doc = $doc]
        ///
        /// `base_width` scales every layer: the convolutions have `base_width × (1, 2, 4, 8, 8)`
        /// channels (64 gives the standard network, 8 one 8× narrower), the classifier takes
        /// `8 × base_width` features.
        #[derive(Config, Debug)]
        pub struct $name {
            /// Number of classes, the width of the logits.
            #[config(default = "crate::NUM_CLASSES")]
            pub num_classes: usize,
            /// `[channels, height, width]` of the images; height and width at least 32.
            #[config(default = "[crate::IMAGE_CHANNELS, crate::IMAGE_SIZE, crate::IMAGE_SIZE]")]
            pub input: [usize; 3],
            /// Channels of the first convolutions (64 in the standard network).
            #[config(default = 64)]
            pub base_width: usize,
        }

        impl $name {
            /// Which VGG this configures.
            pub fn depth(&self) -> VggDepth {
                $depth
            }

            /// Checks the configuration without building anything.
            pub fn validate(&self) -> Result<(), ModelConfigError> {
                validate($depth, self.num_classes, self.input, self.base_width)
            }

            /// Parameters of the network as PyTorch counts them (`None`: more than a `u64`
            /// holds).
            pub fn parameter_count(&self) -> Option<u64> {
                count($depth, self.num_classes, self.input[0], self.base_width).get()
            }

            /// Builds the network on `device`, or says why the configuration is invalid.
            pub fn try_init(&self, device: &Device) -> Result<Vgg, ModelConfigError> {
                build(
                    $depth,
                    self.num_classes,
                    self.input,
                    self.base_width,
                    device,
                )
            }

            /// Builds the network on `device`.
            ///
            /// # Panics
            ///
            /// Panics if the configuration is invalid (see [`try_init`](Self::try_init)).
            pub fn init(&self, device: &Device) -> Vgg {
                match self.try_init(device) {
                    Ok(model) => model,
                    Err(err) => panic!("invalid {}: {err}", stringify!($name)),
                }
            }
        }
    };
}

vgg_config!(
    Vgg11Config,
    VggDepth::Vgg11,
    "Configuration of VGG-11 with batch norm ([`Vgg`]); 9,231,114 parameters by default (as PyTorch counts them)."
);
vgg_config!(
    Vgg16Config,
    VggDepth::Vgg16,
    "Configuration of VGG-16 with batch norm ([`Vgg`]); 14,728,266 parameters by default (as PyTorch counts them)."
);

fn validate(
    depth: VggDepth,
    num_classes: usize,
    input: [usize; 3],
    base_width: usize,
) -> Result<(), ModelConfigError> {
    let model = depth.name();
    check_common(model, num_classes, input)?;
    check_width(model, "base_width", &[base_width])?;
    if input[1] < MIN_SIZE || input[2] < MIN_SIZE {
        return Err(ModelConfigError::InputTooSmall {
            model,
            input,
            min_size: [MIN_SIZE, MIN_SIZE],
            why: "five 2x2 max-poolings halve them five times",
        });
    }
    count(depth, num_classes, input[0], base_width).check(model)
}

/// Parameters of the network: each convolution with its bias and batch norm, the classifier.
fn count(depth: VggDepth, num_classes: usize, channels: usize, base_width: usize) -> Count {
    let mut total = Count::ZERO;
    let mut c_in = channels;
    for item in depth.items() {
        if let Item::Conv(width) = *item {
            let Some(width) = (width / REFERENCE_WIDTH).checked_mul(base_width) else {
                return Count::OVERFLOW;
            };
            total = total
                .plus(Count::conv(c_in, width, 3, true))
                .plus(Count::batch_norm(width));
            c_in = width;
        }
    }
    total.plus(Count::linear(c_in, num_classes, true))
}

fn build(
    depth: VggDepth,
    num_classes: usize,
    input: [usize; 3],
    base_width: usize,
    device: &Device,
) -> Result<Vgg, ModelConfigError> {
    validate(depth, num_classes, input, base_width)?;
    let mut features = Vec::new();
    let mut channels = input[0];
    for item in depth.items() {
        match *item {
            Item::Conv(width) => {
                let width = width / REFERENCE_WIDTH * base_width;
                // nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
                let conv = Conv2dConfig::new(channels, width, [3, 3])
                    .with_padding(Padding::Explicit(1, 1))
                    .try_init(device)?;
                features.push(VggLayer::Conv(conv));
                features.push(VggLayer::Norm(batch_norm2d(width, 1e-5, 0.1, device)?));
                features.push(VggLayer::Relu(ReLU::new()));
                channels = width;
            }
            Item::Pool => features.push(VggLayer::Pool(MaxPool2dConfig::new([2, 2]).init())),
        }
    }
    Ok(Vgg {
        features,
        avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        flatten: Flatten::new(),
        classifier: LinearConfig::new(channels, num_classes).init(device),
        depth,
        input,
    })
}

/// One layer of [`Vgg::features`], PyTorch's `nn.Sequential` of the same layers.
#[derive(Module, Debug)]
pub enum VggLayer {
    /// `nn.Conv2d(in, out, 3, padding=1)`.
    Conv(Conv2d),
    /// `nn.BatchNorm2d(out)`.
    Norm(BatchNorm2d),
    /// `nn.ReLU()`.
    Relu(ReLU),
    /// `nn.MaxPool2d(2)`.
    Pool(MaxPool2d),
}

impl VggLayer {
    /// Applies the layer.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            VggLayer::Conv(conv) => conv.forward(x),
            VggLayer::Norm(bn) => bn.forward(x),
            VggLayer::Relu(relu) => relu.forward(x),
            VggLayer::Pool(pool) => pool.forward(x),
        }
    }
}

/// VGG with batch norm for CIFAR (`kuangliu/pytorch-cifar`'s `VGG('VGG11')` / `VGG('VGG16')`):
/// 3×3 convolutions with padding 1, each followed by batch norm and ReLU, a 2×2 max-pooling
/// at each `M`, then global average pooling and one linear classifier. 9,231,114 (VGG-11)
/// and 14,728,266 (VGG-16) parameters with 10 classes (as PyTorch counts them).
///
/// VGG-11, for a 3×32×32 image (VGG-16 has 2, 2, 3, 3, 3 convolutions per stage instead of
/// 1, 1, 2, 2, 2):
///
/// ```text
/// features.0-2    Conv2d(3, 64, 3, padding=1), BatchNorm2d, ReLU   [batch, 64, 32, 32]
/// features.3      MaxPool2d(2)                                     [batch, 64, 16, 16]
/// features.4-6    Conv 128                                          [batch, 128, 16, 16]
/// features.7      MaxPool2d(2)                                     [batch, 128, 8, 8]
/// features.8-13   Conv 256, Conv 256                                [batch, 256, 8, 8]
/// features.14     MaxPool2d(2)                                     [batch, 256, 4, 4]
/// features.15-20  Conv 512, Conv 512                                [batch, 512, 4, 4]
/// features.21     MaxPool2d(2)                                     [batch, 512, 2, 2]
/// features.22-27  Conv 512, Conv 512                                [batch, 512, 2, 2]
/// features.28     MaxPool2d(2)                                     [batch, 512, 1, 1]
/// avgpool         AdaptiveAvgPool2d(1)                             [batch, 512, 1, 1]
/// flatten         Flatten                                          [batch, 512]
/// classifier      Linear(512, num_classes)                         [batch, num_classes]
/// ```
///
/// The keys are those of kuangliu's module (`features.<index>.*` with the Sequential's own
/// indices, ReLUs and poolings included, and `classifier.*`), so its checkpoints load as
/// they are. Kuangliu's `AvgPool2d(1)` after 32×32 images is the identity; the adaptive
/// average pooling here is the same there and lets larger images (64×64, ...) through.
#[derive(Module, Debug)]
pub struct Vgg {
    /// Convolutions, batch norms, ReLUs and poolings, in order.
    pub features: Vec<VggLayer>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// `[batch, channels, 1, 1] → [batch, channels]`.
    pub flatten: Flatten,
    /// `Linear(8 × base_width, num_classes)`.
    pub classifier: Linear,
    /// VGG-11 or VGG-16.
    #[module(skip)]
    pub depth: VggDepth,
    /// The `[channels, height, width]` it was configured for.
    #[module(skip)]
    pub input: [usize; 3],
}

impl Vgg {
    /// Maps images `[batch, channels, height, width]` (height and width at least 32) to
    /// logits `[batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // [batch, 8 * base_width, height / 32, width / 32]
        let x = self
            .features
            .iter()
            .fold(images, |x, layer| layer.forward(x));
        // [batch, 8 * base_width, 1, 1] -> [batch, 8 * base_width]
        let x = self.flatten.forward(self.avgpool.forward(x));
        // [batch, num_classes]
        self.classifier.forward(x)
    }

    /// Width of the logits.
    pub fn num_classes(&self) -> usize {
        let [_, d_output] = self.classifier.weight.dims();
        d_output
    }
}

impl ImageClassifier for Vgg {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Vgg::forward(self, images)
    }

    fn num_classes(&self) -> usize {
        Vgg::num_classes(self)
    }

    /// The configured shape; the network also takes other sizes of at least 32×32 with the
    /// same channels.
    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(self.input)
    }

    fn name(&self) -> String {
        self.depth.name().to_string()
    }
}

impl crate::interop::TorchLayout for Vgg {
    fn torch_layers(&self) -> Vec<crate::interop::TorchLayer> {
        // Plain keys only: the model has no tutorial-style `model.<index>` layout.
        Vec::new()
    }
}
