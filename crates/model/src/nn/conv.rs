//! `Conv2d`: a 2-D convolution with PyTorch's parameters, padding modes and initialization.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

use super::LayerConfigError;

/// How a convolution pads its input, as PyTorch's `padding` argument.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding (`padding=0`, `padding="valid"`).
    Valid,
    /// Pads so that the output has the input's size (`padding="same"`, stride 1 only): a
    /// total of `dilation * (kernel - 1)` per dimension, the odd one at the end (bottom,
    /// right), as PyTorch does for even kernels.
    Same,
    /// The same number of zeros on both sides: `(height, width)` (`padding=(h, w)`).
    Explicit(usize, usize),
}

impl Padding {
    /// `(begin, end)` padding of each spatial dimension for a kernel of `kernel_size` with
    /// `dilation`.
    pub fn pairs(&self, kernel_size: [usize; 2], dilation: [usize; 2]) -> [(usize, usize); 2] {
        match *self {
            Padding::Valid => [(0, 0), (0, 0)],
            Padding::Same => [0, 1].map(|d| {
                let total = dilation[d] * kernel_size[d].saturating_sub(1);
                (total / 2, total - total / 2)
            }),
            Padding::Explicit(height, width) => [(height, height), (width, width)],
        }
    }
}

/// Configuration of [`Conv2d`], with PyTorch's defaults: stride 1, no padding, dilation 1,
/// a bias, and PyTorch's initialization.
///
/// PyTorch initializes `nn.Conv2d` weights with `kaiming_uniform_(a=sqrt(5))`, uniform in
/// `±1/sqrt(fan_in)`, and its bias uniform in the same bound; Burn's
/// `KaimingUniform { gain: 1/sqrt(3) }` (the default here, as in Burn's own `Conv2dConfig`) is
/// that same distribution for both.
#[derive(Config, Debug)]
pub struct Conv2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output (the number of filters).
    pub out_channels: usize,
    /// `[height, width]` of the kernel.
    pub kernel_size: [usize; 2],
    /// `[height, width]` stride.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// How the input is padded.
    #[config(default = "Padding::Valid")]
    pub padding: Padding,
    /// `[height, width]` spacing between kernel elements.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Whether the convolution adds a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Initialization of the weight and the bias.
    #[config(
        default = "Initializer::KaimingUniform { gain: 1.0 / f64::sqrt(3.0), fan_out_only: false }"
    )]
    pub initializer: Initializer,
}

impl Conv2dConfig {
    /// Checks the configuration without building anything.
    pub fn validate(&self) -> Result<(), LayerConfigError> {
        let zero = |setting: &'static str, value: String| LayerConfigError::Zero {
            layer: "Conv2d",
            setting,
            value,
        };
        if self.in_channels == 0 {
            return Err(zero("in_channels", "0".into()));
        }
        if self.out_channels == 0 {
            return Err(zero("out_channels", "0".into()));
        }
        for (setting, value) in [
            ("kernel_size", self.kernel_size),
            ("stride", self.stride),
            ("dilation", self.dilation),
        ] {
            if value.contains(&0) {
                return Err(zero(setting, format!("{value:?}")));
            }
        }
        if self.padding == Padding::Same && self.stride != [1, 1] {
            return Err(LayerConfigError::SameWithStride {
                stride: self.stride,
            });
        }
        Ok(())
    }

    /// Builds the layer on `device`, or says why the configuration is invalid.
    pub fn try_init(&self, device: &Device) -> Result<Conv2d, LayerConfigError> {
        self.validate()?;
        let [kh, kw] = self.kernel_size;
        let fan_in = self.in_channels * kh * kw;
        let fan_out = self.out_channels * kh * kw;
        let weight = self.initializer.init_with(
            [self.out_channels, self.in_channels, kh, kw],
            Some(fan_in),
            Some(fan_out),
            device,
        );
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([self.out_channels], Some(fan_in), Some(fan_out), device)
        });
        Ok(Conv2d {
            weight,
            bias,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        })
    }

    /// Builds the layer on `device`.
    ///
    /// # Panics
    ///
    /// Panics if the configuration is invalid (see [`try_init`](Self::try_init)).
    pub fn init(&self, device: &Device) -> Conv2d {
        match self.try_init(device) {
            Ok(conv) => conv,
            Err(err) => panic!("invalid Conv2dConfig: {err}"),
        }
    }
}

/// A 2-D convolution, `nn.Conv2d`: its weights are `weight` `[out, in, kh, kw]` and, if it
/// has one, `bias` `[out]`, the keys PyTorch gives them.
///
/// Written here rather than taken from Burn so that the keys, the padding modes and the
/// forward pass are PyTorch's and in one place: [`forward`](Self::forward) is the single
/// function that computes the convolution.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// Filters, `[out_channels, in_channels, kernel_height, kernel_width]`.
    pub weight: Param<Tensor<4>>,
    /// Bias, `[out_channels]`, if the layer has one.
    pub bias: Option<Param<Tensor<1>>>,
    /// `[height, width]` stride.
    #[module(skip)]
    pub stride: [usize; 2],
    /// How the input is padded.
    #[module(skip)]
    pub padding: Padding,
    /// `[height, width]` spacing between kernel elements.
    #[module(skip)]
    pub dilation: [usize; 2],
}

impl Conv2d {
    /// Convolves `[batch, in_channels, height, width]` into
    /// `[batch, out_channels, height_out, width_out]`, where
    /// `out = (in + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride + 1`.
    ///
    /// On a Flex device, a square kernel with stride 1, no dilation and the same padding on
    /// every side runs on torchlet's CPU kernels ([`crate::cpu::conv2d`]) unless
    /// [`crate::cpu::layer_kernels`] says Burn; everything else runs Burn's `conv2d`. Both
    /// give the same values (within rounding).
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        #[cfg(feature = "flex")]
        let input = match self.forward_cpu(input) {
            Ok(output) => return output,
            Err(input) => input,
        };
        let options = ConvOptions::new_with_padding(
            self.stride,
            self.padding.pairs(self.kernel_size(), self.dilation),
            self.dilation,
            1,
        );
        conv2d(
            input,
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
            options,
        )
    }

    /// `pool.forward(self.forward(input))`, fused into one op on torchlet's CPU kernels
    /// ([`crate::cpu::conv2d_pool2`]) where the convolution runs on them and `pool` is a 2×2
    /// max-pooling with stride 2 (`nn.MaxPool2d(2)`): the convolution's output is never
    /// stored, and its backward pass reads only the windows' maxima. Otherwise the two layers
    /// one after the other.
    pub fn forward_max_pool(&self, pool: &MaxPool2d, input: Tensor<4>) -> Tensor<4> {
        #[cfg(feature = "flex")]
        let input = if pool.kernel_size == [2, 2]
            && pool.stride == [2, 2]
            && pool.dilation == [1, 1]
            && !pool.ceil_mode
            && matches!(pool.padding, PaddingConfig2d::Valid)
        {
            match self.cpu_inputs(&input) {
                Some((weight, bias, pad)) => {
                    match crate::cpu::try_conv2d_pool2(input, weight, bias, pad) {
                        Ok(output) => return output,
                        Err(input) => input,
                    }
                }
                None => input,
            }
        } else {
            input
        };
        pool.forward(self.forward(input))
    }

    /// Weight, bias (zeros if the layer has none) and padding for torchlet's CPU kernels, if
    /// they may run this layer (they still decline tensors not on Flex).
    #[cfg(feature = "flex")]
    fn cpu_inputs(&self, input: &Tensor<4>) -> Option<(Tensor<4>, Tensor<1>, usize)> {
        // Nothing is created on other devices (an ONNX capture records every tensor made).
        if !crate::cpu::supports(&input.device()) {
            return None;
        }
        let [kh, kw] = self.kernel_size();
        let [(top, bottom), (left, right)] = self.padding.pairs([kh, kw], self.dilation);
        let square = kh == kw && [bottom, left, right] == [top; 3];
        if !square
            || self.stride != [1, 1]
            || self.dilation != [1, 1]
            || crate::cpu::layer_kernels() != crate::CpuKernels::Auto
        {
            return None;
        }
        let weight = self.weight.val();
        let bias = match &self.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([self.out_channels()], &weight.device()),
        };
        Some((weight, bias, top))
    }

    /// The convolution on torchlet's CPU kernels, or the input back when they do not apply.
    #[cfg(feature = "flex")]
    #[allow(clippy::result_large_err)]
    fn forward_cpu(&self, input: Tensor<4>) -> Result<Tensor<4>, Tensor<4>> {
        match self.cpu_inputs(&input) {
            Some((weight, bias, pad)) => crate::cpu::try_conv2d(input, weight, bias, pad),
            None => Err(input),
        }
    }

    /// `[height, width]` of the kernel.
    pub fn kernel_size(&self) -> [usize; 2] {
        let [_, _, kh, kw] = self.weight.dims();
        [kh, kw]
    }

    /// Channels of the input.
    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Channels of the output.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Spatial size `[height, width]` of the output for an input of `[height, width]`, or
    /// `None` if the input is smaller than the (dilated) kernel after padding.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let kernel = self.kernel_size();
        let pads = self.padding.pairs(kernel, self.dilation);
        let [height, width] = [0, 1].map(|d| {
            let padded = input[d] + pads[d].0 + pads[d].1;
            let span = self.dilation[d] * kernel[d].saturating_sub(1) + 1;
            let stride = self.stride[d];
            (padded >= span && stride > 0).then(|| (padded - span) / stride + 1)
        });
        Some([height?, width?])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use burn::module::Module;
    use burn::store::ModuleSnapshot;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    use super::*;

    fn input(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
    }

    #[test]
    fn same_padding_keeps_the_size_for_odd_and_even_kernels() {
        let device = Device::flex();
        for k in [1, 2, 3, 4, 5] {
            let conv = Conv2dConfig::new(3, 4, [k, k])
                .with_padding(Padding::Same)
                .init(&device);
            let y = conv.forward(input([2, 3, 7, 6], &device));
            assert_eq!(y.dims(), [2, 4, 7, 6], "kernel {k}");
            assert_eq!(conv.output_size([7, 6]), Some([7, 6]));
        }
        // A 2x3 kernel: PyTorch pads height by (0, 1) and width by (1, 1).
        assert_eq!(Padding::Same.pairs([2, 3], [1, 1]), [(0, 1), (1, 1)]);
        assert_eq!(Padding::Same.pairs([3, 3], [2, 2]), [(2, 2), (2, 2)]);
    }

    #[test]
    fn even_kernel_same_padding_puts_the_extra_zeros_at_the_end() {
        // All-ones 2x2 kernel on a 2x2 image of 1, 2, 3, 4 with one zero row and column at
        // the end: each output sums the window starting at that pixel.
        let device = Device::flex();
        let mut conv = Conv2dConfig::new(1, 1, [2, 2])
            .with_padding(Padding::Same)
            .with_bias(false)
            .init(&device);
        conv.weight = Param::from_tensor(Tensor::ones([1, 1, 2, 2], &device));
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2., 3., 4.], [1, 1, 2, 2]),
            &device,
        );
        let y = conv.forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, vec![10.0, 6.0, 7.0, 4.0]);
    }

    #[test]
    fn stride_and_explicit_padding_give_pytorchs_output_size() {
        let device = Device::flex();
        // nn.Conv2d(3, 5, 3, stride=2, padding=1) on 9x8 -> 5x4
        let conv = Conv2dConfig::new(3, 5, [3, 3])
            .with_stride([2, 2])
            .with_padding(Padding::Explicit(1, 1))
            .init(&device);
        assert_eq!(
            conv.forward(input([1, 3, 9, 8], &device)).dims(),
            [1, 5, 5, 4]
        );
        assert_eq!(conv.output_size([9, 8]), Some([5, 4]));
        assert_eq!(conv.output_size([1, 1]), Some([1, 1]));
        let valid = Conv2dConfig::new(3, 5, [3, 3]).init(&device);
        assert_eq!(valid.output_size([2, 5]), None);
    }

    #[test]
    fn keys_are_pytorchs_with_and_without_bias() {
        let device = Device::flex();
        let with = Conv2dConfig::new(3, 8, [3, 3]).init(&device);
        let without = Conv2dConfig::new(3, 8, [3, 3])
            .with_bias(false)
            .init(&device);
        let keys = |m: &Conv2d| -> Vec<(String, Vec<usize>)> {
            m.collect(None, None, true)
                .into_iter()
                .map(|t| (t.name, t.shape.to_vec()))
                .collect()
        };
        assert_eq!(
            keys(&with),
            vec![
                ("weight".to_string(), vec![8, 3, 3, 3]),
                ("bias".to_string(), vec![8])
            ]
        );
        assert_eq!(
            keys(&without),
            vec![("weight".to_string(), vec![8, 3, 3, 3])]
        );
        assert_eq!(with.num_params(), 8 * 27 + 8);
        assert_eq!(without.num_params(), 8 * 27);
    }

    #[test]
    fn initialization_is_bounded_by_one_over_sqrt_fan_in() {
        let device = Device::flex();
        let conv = Conv2dConfig::new(4, 16, [3, 3]).init(&device);
        let bound = 1.0 / ((4 * 9) as f32).sqrt();
        for values in [
            conv.weight.val().into_data().try_to_vec::<f32>().unwrap(),
            conv.bias
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        ] {
            let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                max <= bound && max > bound / 2.0,
                "max {max}, bound {bound}"
            );
        }
    }

    #[test]
    fn invalid_settings_are_typed_errors() {
        let device = Device::flex();
        let err = Conv2dConfig::new(0, 8, [3, 3])
            .try_init(&device)
            .unwrap_err();
        assert!(matches!(
            err,
            LayerConfigError::Zero {
                setting: "in_channels",
                ..
            }
        ));
        let err = Conv2dConfig::new(3, 8, [3, 0])
            .try_init(&device)
            .unwrap_err();
        assert!(matches!(
            err,
            LayerConfigError::Zero {
                setting: "kernel_size",
                ..
            }
        ));
        assert!(err.to_string().contains("[3, 0]"), "{err}");
        let err = Conv2dConfig::new(3, 8, [3, 3])
            .with_stride([2, 2])
            .with_padding(Padding::Same)
            .try_init(&device)
            .unwrap_err();
        assert_eq!(err, LayerConfigError::SameWithStride { stride: [2, 2] });
    }
}
