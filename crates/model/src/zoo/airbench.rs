//! The airbench94 network of `KellerJordan/cifar10-airbench` (94% on CIFAR-10 in seconds).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{check_common, check_width};
use crate::nn::{
    BatchNorm2d, Conv2d, Conv2dConfig, Flatten, GELU, Linear, LinearConfig, MaxPool2d,
    MaxPool2dConfig, Padding, batch_norm2d,
};
use crate::size::Count;
use crate::{ImageClassifier, ModelConfigError};

/// Name of the model.
const NAME: &str = "airbench94";

/// airbench multiplies the logits by this (`hyp['net']['scaling_factor']`).
pub const AIRBENCH_SCALE: f64 = 1.0 / 9.0;
/// Side of the whitening convolution's kernel.
const WHITEN_KERNEL: usize = 2;
/// Batch norm epsilon of airbench.
const BN_EPS: f64 = 1e-12;
/// airbench's batch norm momentum 0.6 is the weight of the old running statistics; in
/// PyTorch's (and Burn's) convention, the weight of the new batch, that is `1 - 0.6`.
const BN_MOMENTUM: f64 = 1.0 - 0.6;
/// The final max-pooling's kernel (and stride).
const FINAL_POOL: usize = 3;
/// Smallest image side: 2×2 whitening (−1), three 2×2 poolings and one 3×3 pooling.
const MIN_SIZE: usize = 1 + 2 * 2 * 2 * FINAL_POOL;

/// Configuration of [`Airbench94`]; 1,972,792 parameters by default (as PyTorch counts them).
#[derive(Config, Debug)]
pub struct Airbench94Config {
    /// Number of classes, the width of the logits.
    #[config(default = "crate::NUM_CLASSES")]
    pub num_classes: usize,
    /// `[channels, height, width]` of the images; height and width at least 25.
    #[config(default = "[crate::IMAGE_CHANNELS, crate::IMAGE_SIZE, crate::IMAGE_SIZE]")]
    pub input: [usize; 3],
    /// Channels of `block1`, `block2` and `block3` (airbench94: 64, 256, 256).
    #[config(default = "[64, 256, 256]")]
    pub widths: [usize; 3],
}

impl Airbench94Config {
    /// Checks the configuration without building anything.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        check_common(NAME, self.num_classes, self.input)?;
        check_width(NAME, "widths", &self.widths)?;
        if self.input[1] < MIN_SIZE || self.input[2] < MIN_SIZE {
            return Err(ModelConfigError::InputTooSmall {
                model: NAME,
                input: self.input,
                min_size: [MIN_SIZE, MIN_SIZE],
                why: "the 2x2 whitening convolution, three 2x2 max-poolings and a final 3x3 \
                      max-pooling shrink them",
            });
        }
        self.count().check(NAME)
    }

    /// Parameters of the network as PyTorch counts them (`None`: more than a `u64` holds).
    pub fn parameter_count(&self) -> Option<u64> {
        self.count().get()
    }

    fn count(&self) -> Count {
        let Some(whiten) = self.input[0].checked_mul(2 * WHITEN_KERNEL * WHITEN_KERNEL) else {
            return Count::OVERFLOW;
        };
        let group = |c_in: usize, c_out: usize| {
            Count::conv(c_in, c_out, 3, false)
                .plus(Count::conv(c_out, c_out, 3, false))
                .plus(Count::product(&[2, 2, c_out]))
        };
        let [w1, w2, w3] = self.widths;
        let [sh, sw] = self.head_size();
        Count::conv(self.input[0], whiten, WHITEN_KERNEL, true)
            .plus(group(whiten, w1))
            .plus(group(w1, w2))
            .plus(group(w2, w3))
            .plus(Count::product(&[w3, sh, sw, self.num_classes]))
    }

    /// Channels of the whitening convolution: `2 × channels × 2 × 2` (24 for RGB), one
    /// filter per eigenvector of the input patches' covariance and one for its negation, as
    /// airbench initializes it.
    pub fn whiten_width(&self) -> usize {
        2 * self.input[0] * WHITEN_KERNEL * WHITEN_KERNEL
    }

    /// `[height, width]` left before the head: 1×1 for 32×32 images.
    pub fn head_size(&self) -> [usize; 2] {
        [self.input[1], self.input[2]]
            .map(|side| (side + 1).saturating_sub(WHITEN_KERNEL) / 8 / FINAL_POOL)
    }

    /// Builds the network on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<Airbench94, ModelConfigError> {
        self.validate()?;
        let [w1, w2, w3] = self.widths;
        let whiten = self.whiten_width();
        let [sh, sw] = self.head_size();
        Ok(Airbench94 {
            whiten: Conv2dConfig::new(self.input[0], whiten, [WHITEN_KERNEL, WHITEN_KERNEL])
                .try_init(device)?,
            activ: GELU::new(),
            block1: ConvGroup::try_new(whiten, w1, device)?,
            block2: ConvGroup::try_new(w1, w2, device)?,
            block3: ConvGroup::try_new(w2, w3, device)?,
            pool: MaxPool2dConfig::new([FINAL_POOL, FINAL_POOL]).init(),
            flatten: Flatten::new(),
            head: LinearConfig::new(w3 * sh * sw, self.num_classes)
                .with_bias(false)
                .init(device),
            input: self.input,
        })
    }

    /// Builds the network on `device`.
    ///
    /// # Panics
    ///
    /// Panics if the configuration is invalid (see [`try_init`](Self::try_init)).
    pub fn init(&self, device: &Device) -> Airbench94 {
        match self.try_init(device) {
            Ok(model) => model,
            Err(err) => panic!("invalid Airbench94Config: {err}"),
        }
    }
}

/// One of airbench's three blocks (its `ConvGroup`): convolution, 2×2 max-pooling, batch
/// norm, GELU, convolution, batch norm, GELU.
#[derive(Module, Debug)]
pub struct ConvGroup {
    /// `Conv2d(in, out, 3, padding="same", bias=False)`.
    pub conv1: Conv2d,
    /// `MaxPool2d(2)`, right after `conv1`.
    pub pool: MaxPool2d,
    /// Batch norm (eps 1e-12, PyTorch momentum 0.4).
    pub norm1: BatchNorm2d,
    /// `Conv2d(out, out, 3, padding="same", bias=False)`.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub norm2: BatchNorm2d,
    /// GELU after each batch norm.
    pub activ: GELU,
}

impl ConvGroup {
    /// The block from `c_in` to `c_out` channels.
    fn try_new(c_in: usize, c_out: usize, device: &Device) -> Result<Self, ModelConfigError> {
        let conv = |c_in: usize| {
            Conv2dConfig::new(c_in, c_out, [3, 3])
                .with_padding(Padding::Same)
                .with_bias(false)
                .try_init(device)
        };
        Ok(ConvGroup {
            conv1: conv(c_in)?,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            norm1: batch_norm2d(c_out, BN_EPS, BN_MOMENTUM, device)?,
            conv2: conv(c_out)?,
            norm2: batch_norm2d(c_out, BN_EPS, BN_MOMENTUM, device)?,
            activ: GELU::new(),
        })
    }

    /// `[batch, in, h, w]` → `[batch, out, h / 2, w / 2]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [batch, out, h, w] -> [batch, out, h / 2, w / 2]
        let x = self.conv1.forward_max_pool(&self.pool, x);
        let x = self.activ.forward(self.norm1.forward(x));
        self.activ
            .forward(self.norm2.forward(self.conv2.forward(x)))
    }
}

/// airbench94's network (`make_net()` of `airbench94.py`, `KellerJordan/cifar10-airbench`);
/// 1,972,792 parameters with 10 classes (as PyTorch counts them).
///
/// For a 3×32×32 image:
///
/// ```text
/// whiten    Conv2d(3, 24, 2, padding=0, bias=True)                [batch, 24, 31, 31]
/// activ     GELU                                                  [batch, 24, 31, 31]
/// block1    ConvGroup(24 -> 64): conv, MaxPool2d(2), bn, GELU,
///           conv, bn, GELU                                        [batch, 64, 15, 15]
/// block2    ConvGroup(64 -> 256)                                  [batch, 256, 7, 7]
/// block3    ConvGroup(256 -> 256)                                 [batch, 256, 3, 3]
/// pool      MaxPool2d(3)                                          [batch, 256, 1, 1]
/// flatten   Flatten                                               [batch, 256]
/// head      Linear(256, num_classes, bias=False), then × 1/9      [batch, num_classes]
/// ```
///
/// Larger images leave more than 1×1 before the head, which then takes
/// `256 × s_h × s_w` features ([`Airbench94Config::head_size`]); the network only takes
/// images of the configured size.
///
/// The keys are `whiten.*`, `block1.conv1.weight`, `block1.norm1.*`, ..., `head.weight`
/// (airbench's `nn.Sequential` indices 0, 2, 3, 4 and 7 under these names). What airbench
/// does around the network is not part of it: the whitening weights computed from the
/// training images, the batch norms' weights kept frozen at 1, half precision and
/// channels-last memory, test-time flipping; here they are an ordinary
/// (Kaiming-initialized) convolution and ordinary trainable parameters.
#[derive(Module, Debug)]
pub struct Airbench94 {
    /// `Conv2d(channels, 24, 2)`: airbench's whitening layer.
    pub whiten: Conv2d,
    /// GELU after `whiten`.
    pub activ: GELU,
    /// First block, 64 channels.
    pub block1: ConvGroup,
    /// Second block, 256 channels.
    pub block2: ConvGroup,
    /// Third block, 256 channels.
    pub block3: ConvGroup,
    /// `MaxPool2d(3)`.
    pub pool: MaxPool2d,
    /// `[batch, 256, s, s] → [batch, 256 s²]`.
    pub flatten: Flatten,
    /// `Linear(256 s², num_classes, bias=False)`.
    pub head: Linear,
    /// The `[channels, height, width]` it was configured for.
    #[module(skip)]
    pub input: [usize; 3],
}

impl Airbench94 {
    /// Maps images of the configured shape `[batch, channels, height, width]` to logits
    /// `[batch, num_classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // [batch, 24, h - 1, w - 1]
        let x = self.activ.forward(self.whiten.forward(images));
        // [batch, 64, (h - 1) / 2, ..] -> [batch, 256, .. / 4, ..] -> [batch, 256, .. / 8, ..]
        let x = self
            .block3
            .forward(self.block2.forward(self.block1.forward(x)));
        // [batch, 256, s, s] -> [batch, 256 * s * s]
        let x = self.flatten.forward(self.pool.forward(x));
        // [batch, num_classes]
        self.head.forward(x).mul_scalar(AIRBENCH_SCALE)
    }

    /// Width of the logits.
    pub fn num_classes(&self) -> usize {
        let [_, d_output] = self.head.weight.dims();
        d_output
    }
}

/// Whitening epsilon of airbench (added to each eigenvalue).
pub const WHITEN_EPS: f64 = 5e-4;

impl Airbench94 {
    /// airbench's initialisation on top of [`Airbench94Config::try_init`]'s: the whitening
    /// filters from the patches of `images` (normalised training images, `[n, channels, h,
    /// w]` of the configured shape; airbench takes the first 5,000) and every 3×3 convolution
    /// Dirac-initialised on its first `in_channels` filters. The whitening layer's weight is
    /// meant to stay frozen (and its bias to train only for the first epochs), the batch
    /// norms' `gamma` to stay at 1: the speed-run's parameter groups do that.
    pub fn recipe_init(mut self, images: Tensor<4>) -> Result<Self, ModelConfigError> {
        let [_, c, h, w] = images.dims();
        if [c, h, w] != self.input {
            return Err(ModelConfigError::Invalid {
                model: NAME,
                reason: format!(
                    "whitening images are {c}x{h}x{w}, the network takes {:?}",
                    self.input
                ),
            });
        }
        let device = self.whiten.weight.val().device();
        let filters = crate::init::whitening_filters(images, WHITEN_KERNEL, WHITEN_EPS, &device)?;
        let set = |p: burn::module::Param<Tensor<4>>, v: Tensor<4>| {
            p.map(|old| v.set_require_grad(old.is_require_grad()))
        };
        self.whiten.weight = set(self.whiten.weight, filters);
        for block in [&mut self.block1, &mut self.block2, &mut self.block3] {
            for conv in [&mut block.conv1, &mut block.conv2] {
                let w = crate::init::dirac(conv.weight.val());
                conv.weight = set(conv.weight.clone(), w);
            }
        }
        Ok(self)
    }
}

impl ImageClassifier for Airbench94 {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Airbench94::forward(self, images)
    }

    fn num_classes(&self) -> usize {
        Airbench94::num_classes(self)
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(self.input)
    }

    fn name(&self) -> String {
        NAME.to_string()
    }
}

impl crate::interop::TorchLayout for Airbench94 {
    fn torch_layers(&self) -> Vec<crate::interop::TorchLayer> {
        // Plain keys only.
        Vec::new()
    }
}
