//! `torchlet::nn::Conv2d` on torchlet's CPU kernels against Burn's own `conv2d` and
//! `max_pool2d` on the same weights and batch: outputs and every gradient (input, weight,
//! bias) within 1e-4, relative where values exceed 1, for each kernel size, padding and
//! bias setting the layer sends to the kernels, and for the shapes it leaves to Burn.
//!
//! The reference is Burn's op itself (`burn::tensor::module::conv2d`), called directly, so no
//! process-wide switch is flipped and these tests run in parallel with any other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::module::Param;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use torchlet_model::nn::{Conv2d, Conv2dConfig, MaxPool2dConfig, Padding};

/// Agreement required with Burn's layers.
const TOLERANCE: f32 = 1e-4;

/// Deterministic values in about [-1, 1) (a multiplicative hash of the index and `salt`), so
/// that every run checks the same numbers.
fn det<const D: usize>(shape: [usize; D], salt: u64, device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| {
            let h = (i ^ (salt << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            h as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn values_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Max |a − b| / max(1, |b|).
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// Output, input gradient, weight gradient and bias gradient of `f` on `conv`, under the loss
/// `Σ y ⊙ r` (a fixed `r`, so every output position carries its own gradient).
fn run(
    conv: &Conv2d,
    x: &Tensor<4>,
    r: &Tensor<4>,
    f: impl Fn(&Conv2d, Tensor<4>) -> Tensor<4>,
) -> [Vec<f32>; 4] {
    let x = x.clone().require_grad();
    let y = f(conv, x.clone());
    let grads = (y.clone() * r.clone()).sum().backward();
    let dx = x.grad(&grads).unwrap();
    let dw = conv.weight.val().grad(&grads).unwrap();
    let db = conv
        .bias
        .as_ref()
        .map(|b| values_of(b.val().grad(&grads).unwrap()))
        .unwrap_or_default();
    [values(y.inner()), values(dx), values(dw), db]
}

/// Burn's `conv2d` with the layer's own settings.
fn burn_conv(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let options = ConvOptions::new_with_padding(
        conv.stride,
        conv.padding.pairs(conv.kernel_size(), conv.dilation),
        conv.dilation,
        1,
    );
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(Param::val),
        options,
    )
}

fn check(what: &str, ours: [Vec<f32>; 4], burn: [Vec<f32>; 4]) {
    for (name, (a, b)) in ["output", "input grad", "weight grad", "bias grad"]
        .iter()
        .zip(ours.iter().zip(&burn))
    {
        let d = rel_diff(a, b);
        assert!(d <= TOLERANCE, "{what}: {name}: max relative |Δ| {d}");
    }
}

/// The layer with deterministic weights (scaled like PyTorch's initialization).
fn layer(
    c_in: usize,
    c_out: usize,
    k: usize,
    padding: Padding,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let mut conv = Conv2dConfig::new(c_in, c_out, [k, k])
        .with_padding(padding)
        .with_bias(bias)
        .init(device);
    let bound = 1.0 / ((c_in * k * k) as f32).sqrt();
    conv.weight = Param::from_tensor(det([c_out, c_in, k, k], 100, device).mul_scalar(bound));
    if bias {
        conv.bias = Some(Param::from_tensor(
            det([c_out], 101, device).mul_scalar(bound),
        ));
    }
    conv
}

#[test]
fn conv2d_matches_burn_for_every_kernel_size_padding_and_bias() {
    let device = Device::flex().autodiff();
    assert!(torchlet_model::cpu::supports(&device));
    for k in [1usize, 2, 3, 5, 7] {
        let mut paddings = vec![Padding::Valid, Padding::Explicit(k / 2, k / 2)];
        if k % 2 == 1 {
            paddings.push(Padding::Same);
        }
        for padding in paddings {
            for (bias, c_in, c_out) in [(true, 3, 8), (false, 16, 33)] {
                let conv = layer(c_in, c_out, k, padding, bias, &device);
                // Odd batch, non-square image: remainders in every split.
                let x = det([3, c_in, 9, 11], 1, &device);
                let out = conv.output_size([9, 11]).unwrap();
                let r = det([3, c_out, out[0], out[1]], 9, &device);
                let what = format!("k {k}, {padding:?}, bias {bias}, {c_in}->{c_out}");
                check(
                    &what,
                    run(&conv, &x, &r, |c, x| c.forward(x)),
                    run(&conv, &x, &r, burn_conv),
                );
            }
        }
    }
}

#[test]
fn what_the_kernels_do_not_cover_still_runs_on_burn() {
    // Stride 2, dilation 2, a non-square kernel and an even kernel's "same" padding (one
    // more zero at the end): the layer hands these to Burn, with the same results.
    let device = Device::flex().autodiff();
    let configs = [
        Conv2dConfig::new(4, 6, [3, 3])
            .with_stride([2, 2])
            .with_padding(Padding::Explicit(1, 1)),
        Conv2dConfig::new(4, 6, [3, 3]).with_dilation([2, 2]),
        Conv2dConfig::new(4, 6, [3, 5]),
        Conv2dConfig::new(4, 6, [2, 2]).with_padding(Padding::Same),
    ];
    for config in configs {
        let conv = config.init(&device);
        let x = det([2, 4, 10, 9], 2, &device);
        let [oh, ow] = conv.output_size([10, 9]).unwrap();
        let r = det([2, 6, oh, ow], 3, &device);
        let ours = run(&conv, &x, &r, |c, x| c.forward(x));
        assert_eq!(ours[0].len(), 2 * 6 * oh * ow, "{config:?}");
        check(&format!("{config:?}"), ours, run(&conv, &x, &r, burn_conv));
    }
}

#[test]
fn fused_conv_and_max_pool_match_the_two_layers() {
    // airbench94's `conv 3x3 "same" -> MaxPool2d(2)`, with and without a bias, on odd sides
    // (the last row and column of the convolution are dropped by the pooling).
    let device = Device::flex().autodiff();
    let pool = MaxPool2dConfig::new([2, 2]).init();
    for (bias, c_in, c_out, side) in [(false, 24, 64, 15), (true, 3, 8, 8), (false, 16, 32, 7)] {
        let conv = layer(c_in, c_out, 3, Padding::Same, bias, &device);
        let x = det([3, c_in, side, side], 4, &device);
        let r = det([3, c_out, side / 2, side / 2], 5, &device);
        let fused = run(&conv, &x, &r, |c, x| c.forward_max_pool(&pool, x));
        let separate = run(&conv, &x, &r, |c, x| {
            max_pool2d(burn_conv(c, x), MaxPoolOptions::new([2, 2]))
        });
        check(
            &format!("{c_in}->{c_out}, {side}x{side}, bias {bias}"),
            fused,
            separate,
        );
    }
    // A pooling the fused op does not cover (3×3) runs as the two layers.
    let conv = layer(4, 4, 3, Padding::Same, true, &device);
    let pool3 = MaxPool2dConfig::new([3, 3]).init();
    let x = det([2, 4, 9, 9], 6, &device);
    let r = det([2, 4, 3, 3], 7, &device);
    check(
        "3x3 pooling",
        run(&conv, &x, &r, |c, x| c.forward_max_pool(&pool3, x)),
        run(&conv, &x, &r, |c, x| {
            max_pool2d(burn_conv(c, x), MaxPoolOptions::new([3, 3]))
        }),
    );
}

#[test]
fn inference_without_autodiff_takes_the_same_road() {
    let device = Device::flex();
    let conv = layer(8, 16, 3, Padding::Same, true, &device);
    let x = det([5, 8, 12, 12], 8, &device);
    let ours = values(conv.forward(x.clone()));
    let burn = values(burn_conv(&conv, x));
    assert!(rel_diff(&ours, &burn) <= TOLERANCE);
}

#[test]
fn gelu_matches_burns_forward_and_backward() {
    use burn::tensor::activation::gelu;
    use torchlet_model::nn::GELU;
    let device = Device::flex().autodiff();
    // About [-4, 4), and a transposed view (not contiguous) of it.
    let base = det([3, 5, 7, 11], 10, &device).mul_scalar(4.0);
    for x in [base.clone(), base.swap_dims(2, 3)] {
        let dims = x.dims();
        let r = det(dims, 11, &device);
        let grads_of = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = x.clone().require_grad();
            let y = f(x.clone());
            let grads = (y.clone() * r.clone()).sum().backward();
            (values(y.inner()), values(x.grad(&grads).unwrap()))
        };
        let (y_ours, dx_ours) = grads_of(&|x| GELU::new().forward(x));
        let (y_burn, dx_burn) = grads_of(&|x| gelu(x));
        assert!(rel_diff(&y_ours, &y_burn) <= TOLERANCE, "{dims:?}: output");
        assert!(
            rel_diff(&dx_ours, &dx_burn) <= TOLERANCE,
            "{dims:?}: gradient"
        );
    }
    // NaN stays NaN.
    let nan = Tensor::<1>::from_data(TensorData::new(vec![f32::NAN, 1.0], [2]), &device);
    let y = values_of(GELU::new().forward(nan).inner());
    assert!(y[0].is_nan() && (y[1] - 0.841_344_7).abs() < 1e-6, "{y:?}");
}

#[test]
fn batch_norm_training_matches_burns_op_and_running_statistics() {
    use burn::tensor::module::batch_norm_train;
    use torchlet_model::nn::{BatchNorm2d, BatchNorm2dConfig};
    let device = Device::flex().autodiff();
    // Odd sizes; a mean far from zero (3 + ...) so a one-pass variance would lose digits.
    for (n, c, h, w) in [
        (3usize, 5usize, 7usize, 9usize),
        (2, 24, 31, 31),
        (4, 64, 1, 1),
    ] {
        let x = det([n, c, h, w], 12, &device)
            .mul_scalar(2.0)
            .add_scalar(3.0);
        let r = det([n, c, h, w], 13, &device);
        let bn: BatchNorm2d = BatchNorm2dConfig::new(c).with_momentum(0.4).init(&device);
        let gamma = det([c], 14, &device).add_scalar(1.5);
        let beta = det([c], 15, &device);
        let bn = BatchNorm2d {
            gamma: Param::from_tensor(gamma.clone()),
            beta: Param::from_tensor(beta.clone()),
            ..bn
        };
        // Ours, through the layer.
        let xg = x.clone().require_grad();
        let y = bn.forward(xg.clone());
        let grads = (y.clone() * r.clone()).sum().backward();
        let ours = [
            values(y.inner()),
            values(xg.grad(&grads).unwrap()),
            values_of(bn.gamma.val().grad(&grads).unwrap()),
            values_of(bn.beta.val().grad(&grads).unwrap()),
        ];
        // Burn's op on the same tensors.
        let (xb, gb, bb) = (
            x.clone().require_grad(),
            gamma.require_grad(),
            beta.require_grad(),
        );
        let out = batch_norm_train(xb.clone(), gb.clone(), bb.clone(), 1e-5);
        let grads = (out.output.clone() * r).sum().backward();
        let burn = [
            values(out.output.inner()),
            values(xb.grad(&grads).unwrap()),
            values_of(gb.grad(&grads).unwrap()),
            values_of(bb.grad(&grads).unwrap()),
        ];
        let what = format!("batch norm [{n}, {c}, {h}, {w}]");
        for (name, (a, b)) in ["output", "input grad", "gamma grad", "beta grad"]
            .iter()
            .zip(ours.iter().zip(&burn))
        {
            let d = rel_diff(a, b);
            assert!(d <= TOLERANCE, "{what}: {name}: max relative |Δ| {d}");
        }
        // Running statistics: 0.6 · (0, 1) + 0.4 · (batch mean, biased batch variance).
        let mean = values_of(bn.running_mean.value_sync());
        let var = values_of(bn.running_var.value_sync());
        let expect_mean: Vec<f32> = values_of(out.mean.inner())
            .iter()
            .map(|m| 0.4 * m)
            .collect();
        let expect_var: Vec<f32> = values_of(out.variance.inner())
            .iter()
            .map(|v| 0.6 + 0.4 * v)
            .collect();
        assert!(
            rel_diff(&mean, &expect_mean) <= TOLERANCE,
            "{what}: running mean"
        );
        assert!(
            rel_diff(&var, &expect_var) <= TOLERANCE,
            "{what}: running var"
        );
    }
}
