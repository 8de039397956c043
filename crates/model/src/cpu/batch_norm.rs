//! Batch normalization with the batch's own statistics (training), forward and backward, as
//! two passes over memory each way on Flex.
//!
//! Burn 0.22.1's `batch_norm_train` on Flex is built from tensor ops: the statistics go
//! through a transposed copy of the activation (`swap_dims` then a reduction), the
//! normalization through four broadcast ops, and the backward through as many again. Here,
//! on the `[batch, channels, h, w]` layout as it is: one pass for each channel's mean and
//! variance (per-image sums in `f32`, summed over the batch in `f64`), one for the output;
//! backward one pass for the two per-channel sums and one for the input gradient, each split
//! over rayon's threads. The values are Burn's: the biased variance, the same formula.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

use super::{shape_of, supports, tensor, values};

/// A batch norm's output with the statistics it used.
#[derive(Debug)]
pub struct BatchNormTrainOutput {
    /// The normalized, scaled and shifted input, `[batch, channels, h, w]`.
    pub output: Tensor<4>,
    /// Each channel's mean over the batch and the plane, `[channels]` (not tracked).
    pub mean: Tensor<1>,
    /// Each channel's biased variance, `[channels]` (not tracked).
    pub variance: Tensor<1>,
}

/// `batch_norm_train(x, gamma, beta, eps)` on torchlet's CPU path: `x` `[batch, channels, h,
/// w]` normalized by its own per-channel statistics, then `gamma · x̂ + beta`. `Err(x)` back
/// (nothing computed) when the tensors are not `f32` on a Flex device or their shapes do not
/// fit. Differentiable in `x`, `gamma` and `beta` on an autodiff device.
// The error variant is the input tensor handle, given back.
#[allow(clippy::result_large_err)]
pub fn try_batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Result<BatchNormTrainOutput, Tensor<4>> {
    let [batch, channels, h, w] = x.dims();
    let fits = gamma.dims() == [channels] && beta.dims() == [channels] && batch * h * w > 0;
    let f32s = [x.dtype(), gamma.dtype(), beta.dtype()]
        .iter()
        .all(|d| *d == DType::F32);
    if !(fits && f32s && supports(&x.device())) {
        return Err(x);
    }
    let (output, mean, variance) = <Dispatch as CpuBatchNormBackend>::torchlet_batch_norm_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    Ok(BatchNormTrainOutput {
        output: Tensor::from_dispatch(output),
        mean: Tensor::from_dispatch(mean),
        variance: Tensor::from_dispatch(variance),
    })
}

/// The op, as a Burn backend extension (implemented for Flex and `Autodiff<Flex>`).
#[backend_extension(Flex, Autodiff)]
pub trait CpuBatchNormBackend: Backend {
    /// See [`try_batch_norm_train`]: `(output, mean, variance)`.
    fn torchlet_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl CpuBatchNormBackend for Flex {
    fn torchlet_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, mean, var) = forward(&x, &gamma, &beta, epsilon);
        let c = Shape::new([mean.len()]);
        (y, tensor(mean, c.clone()), tensor(var, c))
    }
}

/// `[batch, channels, plane]` of a 4-D Flex tensor.
fn dims(x: &FlexTensor) -> [usize; 3] {
    let s = shape_of(x);
    [s[0], s[1], s[2] * s[3]]
}

/// Output, mean and biased variance.
fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let [n, c, plane] = dims(x);
    let xs = values(x);
    let (mean, var) = statistics(&xs, n, c, plane);
    let (g, b) = (values(gamma), values(beta));
    let inv_std = inv_std(&var, epsilon);
    let mut y = vec![0.0f32; xs.len()];
    y.par_chunks_mut(plane).enumerate().for_each(|(i, y)| {
        let ch = i % c;
        let (m, scale) = (mean[ch], inv_std[ch] * g[ch]);
        let shift = b[ch] - m * scale;
        for (o, &v) in y.iter_mut().zip(&xs[i * plane..(i + 1) * plane]) {
            *o = v * scale + shift;
        }
    });
    (tensor(y, shape_of(x)), mean, var)
}

fn inv_std(var: &[f32], epsilon: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// Each channel's mean and biased variance (two passes over the channel: the mean, then
/// the squared deviations from it).
fn statistics(xs: &[f32], n: usize, c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (n * plane) as f64;
    let planes = |ch: usize| (0..n).map(move |img| &xs[(img * c + ch) * plane..][..plane]);
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let sum: f64 = planes(ch).map(|p| p.iter().sum::<f32>() as f64).sum();
            let mean = (sum / count) as f32;
            let sq: f64 = planes(ch)
                .map(|p| p.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() as f64)
                .sum();
            (mean, (sq / count) as f32)
        })
        .unzip()
}

/// What the backward pass needs.
#[derive(Debug, Clone)]
struct State {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// The backward pass: `dβ = Σ dy`, `dγ = Σ dy·x̂`,
/// `dx = γ/σ · (dy − dβ/m − x̂·dγ/m)` over each channel's `m` values.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let State {
            x,
            gamma,
            mean,
            inv_std,
        } = ops.state;
        let [n, c, plane] = dims(&x);
        let (xs, dys, g) = (values(&x), values(&dy), values(&gamma));
        let range = |img: usize, ch: usize| (img * c + ch) * plane..(img * c + ch + 1) * plane;
        let (sum_dy, sum_dy_xhat): (Vec<f32>, Vec<f32>) = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (m, s) = (mean[ch], inv_std[ch]);
                let (mut a, mut b) = (0.0f64, 0.0f64);
                for img in 0..n {
                    let r = range(img, ch);
                    let (xp, dp) = (&xs[r.clone()], &dys[r]);
                    a += dp.iter().sum::<f32>() as f64;
                    b += xp.iter().zip(dp).map(|(v, d)| d * (v - m) * s).sum::<f32>() as f64;
                }
                (a as f32, b as f32)
            })
            .unzip();
        if let Some(node) = node_x {
            let count = (n * plane) as f32;
            let mut dx = vec![0.0f32; xs.len()];
            dx.par_chunks_mut(plane).enumerate().for_each(|(i, dx)| {
                let ch = i % c;
                let (m, s) = (mean[ch], inv_std[ch]);
                let k = g[ch] * s;
                let (mean_dy, mean_dy_xhat) = (sum_dy[ch] / count, sum_dy_xhat[ch] / count);
                let r = i * plane..(i + 1) * plane;
                for ((o, &v), &d) in dx.iter_mut().zip(&xs[r.clone()]).zip(&dys[r]) {
                    let xhat = (v - m) * s;
                    *o = k * (d - mean_dy - xhat * mean_dy_xhat);
                }
            });
            grads.register::<Flex>(node.id, tensor(dx, shape_of(&x)));
        }
        let channels = Shape::new([c]);
        if let Some(node) = node_g {
            grads.register::<Flex>(node.id, tensor(sum_dy_xhat, channels.clone()));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, tensor(sum_dy, channels));
        }
    }
}

impl<C: CheckpointStrategy> CpuBatchNormBackend for Autodiff<Flex, C> {
    fn torchlet_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, mean, var) = forward(x.primitive(), gamma.primitive(), beta.primitive(), epsilon);
        let c = Shape::new([mean.len()]);
        // Untracked: the statistics feed only the running averages.
        let stats = |v: &[f32]| FloatTensor::<Self>::new(tensor(v.to_vec(), c.clone()));
        let (mean_t, var_t) = (stats(&mean), stats(&var));
        let output = match BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = State {
                    x: x.primitive().clone(),
                    gamma: gamma.primitive().clone(),
                    inv_std: inv_std(&var, epsilon),
                    mean,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (output, mean_t, var_t)
    }
}
