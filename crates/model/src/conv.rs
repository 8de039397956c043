//! The tutorial's convolutional network (`MyConvModel`), with the options its text argues for.

use std::fmt;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::{Device, Tensor};

use crate::size::Count;
use crate::{DEFAULT_INPUT, ImageClassifier, ModelConfigError};

/// Channels after each of the three convolutions.
pub const CONV_CHANNELS: [usize; 3] = [32, 32, 64];
/// The image shape `[channels, height, width]` whose network torchlet's CPU kernels run:
/// CIFAR-10's. Networks built for other shapes use Burn's `Conv2d` and `MaxPool2d`.
pub const KERNEL_INPUT: [usize; 3] = [3, 32, 32];
/// Side of the square convolution kernels.
pub const KERNEL_SIZE: usize = 5;
/// Inputs of `fc1` for the default 3 × 32 × 32 input: 64 channels × 4 × 4 after three 2×2
/// poolings of a 32 × 32 image (other inputs: [`SeedConvNetConfig::fc1_inputs`]).
pub const FC1_INPUTS: usize = 64 * 4 * 4;
/// The smallest height and width [`SeedConvNet`] takes: three 2×2 poolings leave 1 × 1 of 8 × 8.
pub const MIN_INPUT_SIDE: usize = 8;
/// Outputs of `fc1`.
pub const FC1_OUTPUTS: usize = 64;

/// Non-linearity applied after each convolution (and after `fc1`).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Activation {
    /// No non-linearity, exactly as the tutorial's code: the whole network is then a
    /// composition of linear maps and max-poolings.
    None,
    /// `ReLU`, as the tutorial's text recommends for a network that should learn more than a
    /// (piecewise) linear function.
    Relu,
}

impl Activation {
    /// Applies the non-linearity.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::None => x,
            Activation::Relu => burn::tensor::activation::relu(x),
        }
    }
}

/// Which implementation runs the convolutions of [`SeedConvNet`].
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum CpuKernels {
    /// torchlet's own CPU kernels ([`crate::cpu`]) when the tensors are on a Flex device,
    /// Burn's `Conv2d` everywhere else.
    Auto,
    /// Always Burn's `Conv2d` (for comparison).
    Burn,
}

/// Configuration of [`SeedConvNet`]; [`new`](Self::new) gives exactly the tutorial's network.
///
/// The options are the improvements the tutorial's own text talks about, all off by default:
/// a non-linearity, batch normalization after each convolution and dropout before each fully
/// connected layer. [`input`](Self::input) sizes the network for images other than
/// CIFAR-10's 3 × 32 × 32.
///
/// Serialized as JSON like a `#[derive(Config)]` struct (it implements Burn's [`Config`]);
/// written by hand so that configurations saved before `input` existed still load, as
/// 3 × 32 × 32 (Burn's derive requires every field with a default to be present).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeedConvNetConfig {
    /// Number of classes, the width of the logits.
    pub num_classes: usize,
    /// Non-linearity after each convolution (after its batch norm, before its pooling) and
    /// after `fc1`.
    pub activation: Activation,
    /// Adds `BatchNorm2d` after each convolution (`bn1`, `bn2`, `bn3`).
    pub batch_norm: bool,
    /// Dropout probability applied to the inputs of `fc1` and of `fc2`; `0` means no dropout.
    pub dropout: f64,
    /// Which implementation runs the convolutions; results agree within float rounding.
    /// `None` (the default, and what configurations saved before this option read as) means
    /// [`CpuKernels::Auto`].
    #[serde(default)]
    pub cpu_kernels: Option<CpuKernels>,
    /// The images the network takes, `[channels, height, width]`: `conv1` reads `channels`
    /// channels and `fc1` the `64 × ⌊⌊⌊height/2⌋/2⌋/2⌋ × ⌊⌊⌊width/2⌋/2⌋/2⌋` values left after
    /// the three poolings. At least `[1, 8, 8]`. Default (and what configurations saved
    /// before this option read as): [`DEFAULT_INPUT`], CIFAR-10's `[3, 32, 32]`.
    #[serde(default = "default_input")]
    pub input: [usize; 3],
}

/// Serde's default for the `input` fields of the built-in models' configurations.
pub(crate) fn default_input() -> [usize; 3] {
    DEFAULT_INPUT
}

impl Config for SeedConvNetConfig {}

impl fmt::Display for SeedConvNetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&burn::config::config_to_json(self))
    }
}

impl Default for SeedConvNetConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl SeedConvNetConfig {
    /// The tutorial's network: 10 classes, no activation, batch norm or dropout, 3 × 32 × 32
    /// images, torchlet's CPU kernels where they run.
    pub fn new() -> Self {
        Self {
            num_classes: crate::NUM_CLASSES,
            activation: Activation::None,
            batch_norm: false,
            dropout: 0.0,
            cpu_kernels: None,
            input: DEFAULT_INPUT,
        }
    }

    /// Sets [`num_classes`](Self::num_classes) (default 10).
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Sets [`activation`](Self::activation) (default [`Activation::None`]).
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets [`batch_norm`](Self::batch_norm) (default `false`).
    pub fn with_batch_norm(mut self, batch_norm: bool) -> Self {
        self.batch_norm = batch_norm;
        self
    }

    /// Sets [`dropout`](Self::dropout) (default `0.0`).
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets [`cpu_kernels`](Self::cpu_kernels) (default `None`, meaning [`CpuKernels::Auto`]).
    pub fn with_cpu_kernels(mut self, cpu_kernels: Option<CpuKernels>) -> Self {
        self.cpu_kernels = cpu_kernels;
        self
    }

    /// Sets [`input`](Self::input), `[channels, height, width]` (default `[3, 32, 32]`).
    pub fn with_input(mut self, input: [usize; 3]) -> Self {
        self.input = input;
        self
    }

    /// Checks the configuration without building anything.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        if self.num_classes == 0 {
            return Err(ModelConfigError::NoClasses);
        }
        if !self.dropout.is_finite() || !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelConfigError::Dropout(self.dropout));
        }
        self.fc1_inputs()?;
        self.count().check("SeedConvNet")
    }

    /// Parameters of the network (`None`: more than a `u64` holds, or an invalid input).
    pub fn parameter_count(&self) -> Option<u64> {
        self.count().get()
    }

    fn count(&self) -> Count {
        let Ok(fc1_inputs) = self.fc1_inputs() else {
            return Count::OVERFLOW;
        };
        let [c1, c2, c3] = CONV_CHANNELS;
        let norms = if self.batch_norm {
            CONV_CHANNELS.iter().map(|&c| Count::batch_norm(c)).sum()
        } else {
            Count::ZERO
        };
        Count::conv(self.input[0], c1, KERNEL_SIZE, true)
            .plus(Count::conv(c1, c2, KERNEL_SIZE, true))
            .plus(Count::conv(c2, c3, KERNEL_SIZE, true))
            .plus(norms)
            .plus(Count::linear(fc1_inputs, FC1_OUTPUTS, true))
            .plus(Count::linear(FC1_OUTPUTS, self.num_classes, true))
    }

    /// Inputs of `fc1` for [`input`](Self::input): 64 × the height × the width left after three
    /// 2×2 poolings (floor at each), 1,024 for 3 × 32 × 32 ([`FC1_INPUTS`]). An error when
    /// the input is smaller than `[1, 8, 8]`.
    pub fn fc1_inputs(&self) -> Result<usize, ModelConfigError> {
        let [c, h, w] = self.input;
        if c < 1 || h < MIN_INPUT_SIDE || w < MIN_INPUT_SIDE {
            return Err(ModelConfigError::InputBelowMinimum {
                model: "SeedConvNet",
                input: self.input,
                smallest: [1, MIN_INPUT_SIDE, MIN_INPUT_SIDE],
            });
        }
        let too_large = ModelConfigError::InputTooLarge {
            model: "SeedConvNet",
            input: self.input,
        };
        // Values per image of the input and of conv1's output (32 channels at full size).
        c.max(CONV_CHANNELS[0])
            .checked_mul(h)
            .and_then(|n| n.checked_mul(w))
            .ok_or_else(|| too_large.clone())?;
        let pooled = |side: usize| side / 2 / 2 / 2;
        CONV_CHANNELS[2]
            .checked_mul(pooled(h))
            .and_then(|n| n.checked_mul(pooled(w)))
            .ok_or(too_large)
    }

    /// Builds the network on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<SeedConvNet, ModelConfigError> {
        self.validate()?;
        let fc1_inputs = self.fc1_inputs()?;
        let [c1, c2, c3] = CONV_CHANNELS;
        // PyTorch's `padding=2`; burn's explicit padding is (top, left, bottom, right).
        let conv = |c_in: usize, c_out: usize| {
            Conv2dConfig::new([c_in, c_out], [KERNEL_SIZE, KERNEL_SIZE])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device)
        };
        let bn = |channels: usize| {
            self.batch_norm
                .then(|| BatchNormConfig::new(channels).init(device))
        };
        Ok(SeedConvNet {
            conv1: conv(self.input[0], c1),
            bn1: bn(c1),
            conv2: conv(c1, c2),
            bn2: bn(c2),
            conv3: conv(c2, c3),
            bn3: bn(c3),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            fc1: LinearConfig::new(fc1_inputs, FC1_OUTPUTS).init(device),
            fc2: LinearConfig::new(FC1_OUTPUTS, self.num_classes).init(device),
            activation: self.activation,
            cpu_kernels: self.cpu_kernels.unwrap_or(CpuKernels::Auto),
            input: self.input,
        })
    }

    /// Builds the network on `device`.
    ///
    /// # Panics
    ///
    /// Panics if the configuration is invalid (see [`try_init`](Self::try_init)).
    pub fn init(&self, device: &Device) -> SeedConvNet {
        match self.try_init(device) {
            Ok(model) => model,
            Err(err) => panic!("invalid SeedConvNetConfig: {err}"),
        }
    }

    /// The configuration of the tutorial's `MyConvModel`, the same as [`new`](Self::new).
    pub fn tutorial() -> Self {
        Self::new()
    }
}

/// The tutorial's `MyConvModel`: three 5×5 convolutions with 2×2 max-pooling, then two
/// fully connected layers; 145,578 parameters with the default configuration.
///
/// With the default 3 × 32 × 32 input ([`SeedConvNetConfig::input`]):
///
/// ```text
/// Conv2d(3, 32, 5, padding=2)  -> MaxPool2d(2)   [batch, 32, 16, 16]
/// Conv2d(32, 32, 5, padding=2) -> MaxPool2d(2)   [batch, 32, 8, 8]
/// Conv2d(32, 64, 5, padding=2) -> MaxPool2d(2)   [batch, 64, 4, 4]
/// Flatten                                         [batch, 1024]
/// Linear(1024, 64)                                [batch, 64]
/// Linear(64, 10)                                  [batch, 10]
/// ```
///
/// For `C × H × W` images `conv1` reads `C` channels and each pooling halves the height and
/// width, rounding down: 1 × 28 × 28 gives `[batch, 64, 3, 3]` and `Linear(576, 64)`.
///
/// Fields are named like the attributes of an equivalent PyTorch module (`conv1`, …, `fc2`),
/// which are also the keys of its weights; see [`crate::interop`] for the tutorial's
/// `model.<index>` keys. The optional layers ([`SeedConvNetConfig`]) sit at:
/// `conv → bn → activation → pool` for each block and `dropout → fc1 → activation →
/// dropout → fc2` for the head.
#[derive(Module, Debug)]
pub struct SeedConvNet {
    /// `Conv2d(3, 32, 5, padding=2)` (`Conv2d(C, 32, ...)` for `C`-channel images).
    pub conv1: Conv2d,
    /// Batch norm after `conv1`, if enabled.
    pub bn1: Option<BatchNorm>,
    /// `Conv2d(32, 32, 5, padding=2)`.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`, if enabled.
    pub bn2: Option<BatchNorm>,
    /// `Conv2d(32, 64, 5, padding=2)`.
    pub conv3: Conv2d,
    /// Batch norm after `conv3`, if enabled.
    pub bn3: Option<BatchNorm>,
    /// `MaxPool2d(2)`, shared by the three blocks (it has no parameters).
    pub pool: MaxPool2d,
    /// Dropout before `fc1` and before `fc2`, if enabled.
    pub dropout: Option<Dropout>,
    /// `Linear(1024, 64)` for 3 × 32 × 32 images (see [`SeedConvNetConfig::fc1_inputs`]).
    pub fc1: Linear,
    /// `Linear(64, num_classes)`.
    pub fc2: Linear,
    /// Non-linearity after each block and after `fc1`.
    #[module(skip)]
    pub activation: Activation,
    /// Which implementation runs the convolutions.
    #[module(skip)]
    pub cpu_kernels: CpuKernels,
    /// The images the network was built for, `[channels, height, width]`. Not a weight: the
    /// record's keys stay those of the layers; the height and width cannot be read back
    /// from `fc1` (28 × 28 and 30 × 30 give the same one).
    #[module(skip)]
    pub input: [usize; 3],
}

impl SeedConvNet {
    /// Maps images `[batch, channels, height, width]` (the shape it was configured for,
    /// [`input_shape`](ImageClassifier::input_shape)) to logits `[batch, num_classes]`.
    ///
    /// The shapes in the comments are those of the default 3 × 32 × 32 input.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // [batch, 3, 32, 32] -> [batch, 64, 4, 4]: the three blocks as one op on torchlet's
        // CPU kernels where they run, else one block at a time:
        let x = match self.fused_blocks(&images) {
            Some(x) => x,
            None => {
                // [batch, 3, 32, 32] -> [batch, 32, 16, 16]
                let x = self.block(&self.conv1, self.bn1.as_ref(), images);
                // -> [batch, 32, 8, 8]
                let x = self.block(&self.conv2, self.bn2.as_ref(), x);
                // -> [batch, 64, 4, 4]
                self.block(&self.conv3, self.bn3.as_ref(), x)
            }
        };
        // -> [batch, 1024], channel-major like PyTorch's `nn.Flatten()`
        let x: Tensor<2> = x.flatten(1, 3);
        let x = self.drop(x);
        // -> [batch, 64]
        let x = self.activation.apply(self.fc1.forward(x));
        let x = self.drop(x);
        // -> [batch, num_classes]
        self.fc2.forward(x)
    }

    /// Width of the logits.
    pub fn num_classes(&self) -> usize {
        let [_, d_output] = self.fc2.weight.dims();
        d_output
    }

    /// The configuration this network was built from (read back from its layers; the image
    /// height and width from [`input`](Self::input), the channels from `conv1`).
    pub fn config(&self) -> SeedConvNetConfig {
        let [_, height, width] = self.input;
        let [_, channels, _, _] = self.conv1.weight.dims();
        SeedConvNetConfig::new()
            .with_input([channels, height, width])
            .with_num_classes(self.num_classes())
            .with_activation(self.activation)
            .with_batch_norm(self.bn1.is_some())
            .with_dropout(self.dropout.as_ref().map_or(0.0, |d| d.prob))
            .with_cpu_kernels((self.cpu_kernels != CpuKernels::Auto).then_some(self.cpu_kernels))
    }

    /// The three blocks as one op of torchlet's CPU kernels ([`crate::cpu::conv_pool_stack3`]),
    /// when they run these tensors and the network has no batch norm.
    fn fused_blocks(&self, images: &Tensor<4>) -> Option<Tensor<4>> {
        #[cfg(feature = "flex")]
        if self.bn1.is_none() && self.bn2.is_none() && self.bn3.is_none() && self.fusable_pool() {
            let block = |conv: &Conv2d| {
                let pad = self.kernel_padding(conv)?;
                Some((conv.weight.val(), conv.bias.as_ref()?.val(), pad))
            };
            let blocks = [
                block(&self.conv1)?,
                block(&self.conv2)?,
                block(&self.conv3)?,
            ];
            let relu = match self.activation {
                Activation::None => false,
                Activation::Relu => true,
            };
            return crate::cpu::conv_pool_stack3(images.clone(), blocks, relu);
        }
        let _ = images;
        None
    }

    /// Whether `pool` is the plain 2×2 max-pooling the fused kernels compute.
    #[cfg(feature = "flex")]
    fn fusable_pool(&self) -> bool {
        self.pool.kernel_size == [2, 2]
            && self.pool.stride == [2, 2]
            && self.pool.dilation == [1, 1]
            && !self.pool.ceil_mode
            && matches!(self.pool.padding, PaddingConfig2d::Valid)
    }

    /// One block: convolution, optional batch norm, activation, 2×2 max-pooling.
    fn block(&self, conv: &Conv2d, bn: Option<&BatchNorm>, x: Tensor<4>) -> Tensor<4> {
        #[cfg(feature = "flex")]
        if bn.is_none()
            && self.fusable_pool()
            && let Some(pad) = self.kernel_padding(conv)
            && let Some(bias) = &conv.bias
            && let Some(y) = crate::cpu::conv2d_pool2(x.clone(), conv.weight.val(), bias.val(), pad)
        {
            // Fused convolution and pooling; max-pooling commutes with ReLU (both are
            // monotone), so the activation can follow the pooling, on 4× fewer values.
            return self.activation.apply(y);
        }
        // [batch, c_out, h, w]: padding 2 keeps the spatial size of a 5×5 convolution
        let x = self.convolve(conv, x);
        let x = match bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        let x = self.activation.apply(x);
        // [batch, c_out, h / 2, w / 2]
        self.pool.forward(x)
    }

    /// The (symmetric) padding of `conv` when torchlet's CPU kernels may run it (they still
    /// decline tensors that are not on Flex). They run the network built for
    /// [`KERNEL_INPUT`] images, the geometry they are tested and measured on; other image
    /// shapes run on Burn's `Conv2d` until the kernels cover them.
    #[cfg(feature = "flex")]
    fn kernel_padding(&self, conv: &Conv2d) -> Option<usize> {
        if self.cpu_kernels == CpuKernels::Auto
            && self.input == KERNEL_INPUT
            && conv.stride == [1, 1]
            && conv.dilation == [1, 1]
            && conv.groups == 1
            && let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding
            && [left, bottom, right] == [top; 3]
        {
            return Some(top);
        }
        None
    }

    /// `conv.forward(x)`, on torchlet's CPU kernels where they apply.
    fn convolve(&self, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
        #[cfg(feature = "flex")]
        if let Some(pad) = self.kernel_padding(conv)
            && let Some(bias) = &conv.bias
            && let Some(y) = crate::cpu::conv2d(x.clone(), conv.weight.val(), bias.val(), pad)
        {
            return y;
        }
        conv.forward(x)
    }

    fn drop(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.dropout {
            Some(dropout) => dropout.forward(x),
            None => x,
        }
    }
}

impl ImageClassifier for SeedConvNet {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        SeedConvNet::forward(self, images)
    }

    fn num_classes(&self) -> usize {
        SeedConvNet::num_classes(self)
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(self.config().input)
    }
}
