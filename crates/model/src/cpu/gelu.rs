//! The exact (erf) GELU as one pass over memory, forward and backward, on Flex.
//!
//! Burn 0.22.1 builds `gelu` from tensor ops (a scale, `erf`, an add and two products, each a
//! pass over memory) and Flex evaluates `erf` with a scalar `libm` call per element; its
//! backward is as many passes again. Here the forward is `y = x·Φ(x)` and the backward
//! `dx = dy·(Φ(x) + x·φ(x))`, each one pass split over rayon's threads, with `Φ` from
//! Abramowitz and Stegun's erf approximation 7.1.26 (absolute error below 1.5·10⁻⁷) and a
//! polynomial `exp`, both branch-free so the loops vectorise (compiled for AVX-512 and AVX2
//! and chosen at run time like the convolution kernels).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::kernels::Isa;
use super::{shape_of, supports, tensor, values};

/// Elements per rayon task: big enough that a task costs more than its scheduling.
const CHUNK: usize = 1 << 14;

/// `x·Φ(x)` on torchlet's CPU path; `Err(x)` back (nothing computed) when `x` is not an `f32`
/// tensor on a Flex device. Differentiable on an autodiff device.
// Both variants are the same tensor handle, given back either way.
#[allow(clippy::result_large_err)]
pub fn try_gelu<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    if !(supports(&x.device()) && x.dtype() == DType::F32) {
        return Err(x);
    }
    Ok(Tensor::from_dispatch(
        <Dispatch as CpuGeluBackend>::torchlet_gelu(x.into_dispatch()),
    ))
}

/// The op, as a Burn backend extension (implemented for Flex and `Autodiff<Flex>`).
#[backend_extension(Flex, Autodiff)]
pub trait CpuGeluBackend: Backend {
    /// See [`try_gelu`].
    fn torchlet_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl CpuGeluBackend for Flex {
    fn torchlet_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(&x)
    }
}

fn forward(x: &FlexTensor) -> FlexTensor {
    let xs = values(x);
    let mut y = vec![0.0f32; xs.len()];
    map_chunks(&xs, None, &mut y);
    tensor(y, shape_of(x))
}

/// The backward pass: `dx = dy·(Φ(x) + x·φ(x))`.
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let Some(node) = node else { return };
        let x = ops.state;
        let (xs, dys) = (values(&x), values(&dy));
        let mut dx = vec![0.0f32; xs.len()];
        map_chunks(&xs, Some(&dys), &mut dx);
        grads.register::<Flex>(node.id, tensor(dx, shape_of(&x)));
    }
}

impl<C: CheckpointStrategy> CpuGeluBackend for Autodiff<Flex, C> {
    fn torchlet_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let out = forward(x.primitive());
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(x.primitive().clone(), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// `out = gelu(x)`, or `out = dy·gelu'(x)` with `dy`, over rayon's threads.
fn map_chunks(x: &[f32], dy: Option<&[f32]>, out: &mut [f32]) {
    let isa = Isa::detect();
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, out)| {
        let x = &x[i * CHUNK..i * CHUNK + out.len()];
        let dy = dy.map(|dy| &dy[i * CHUNK..i * CHUNK + out.len()]);
        run(isa, x, dy, out);
    });
}

/// One chunk on the best instruction set the CPU has.
fn run(isa: Isa, x: &[f32], dy: Option<&[f32]>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `Isa::detect` found these features on this CPU.
        #[allow(unsafe_code)]
        match isa {
            Isa::Avx512 => return unsafe { chunk_avx512(x, dy, out) },
            Isa::Avx2 => return unsafe { chunk_avx2(x, dy, out) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    chunk(x, dy, out);
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f")]
unsafe fn chunk_avx512(x: &[f32], dy: Option<&[f32]>, out: &mut [f32]) {
    chunk(x, dy, out);
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(x: &[f32], dy: Option<&[f32]>, out: &mut [f32]) {
    chunk(x, dy, out);
}

/// The loop itself, inlined into each instruction set's copy.
#[inline(always)]
fn chunk(x: &[f32], dy: Option<&[f32]>, out: &mut [f32]) {
    match dy {
        None => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v * phi_cdf(v).0;
            }
        }
        Some(dy) => {
            for ((o, &v), &g) in out.iter_mut().zip(x).zip(dy) {
                let (cdf, pdf) = phi_cdf(v);
                *o = g * (cdf + v * pdf);
            }
        }
    }
}

/// `(Φ(x), φ(x))`: the standard normal's distribution function and density.
#[inline(always)]
pub(crate) fn phi_cdf(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    // e^{-z²} = e^{-x²/2}: the erf term and, scaled, the density.
    let e = exp_neg(z * z);
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    // erf(|x|/√2) = 1 − poly·e^{-z²}; Φ(x) = (1 ± erf) / 2.
    let tail = 0.5 * poly * e;
    let cdf = if x >= 0.0 { 1.0 - tail } else { tail };
    (cdf, FRAC_1_SQRT_2PI * e)
}

/// `e^{-u}` for `u ≥ 0` (0 below `e^{-87}`), within a few units in the last place: `2^k`
/// from the exponent bits times a degree-6 polynomial on `[−ln2/2, ln2/2]`.
#[inline(always)]
fn exp_neg(u: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let v = (-u).max(-87.0);
    let m = v * std::f32::consts::LOG2_E + ROUND;
    let k = m - ROUND;
    let r = v - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // The integer k sits in m's low mantissa bits (k ≥ −126 here).
    let k_bits = m.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let scale = f32::from_bits(((k_bits + 127) as u32) << 23);
    if u > 87.0 { 0.0 } else { p * scale }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Φ in f64, the reference.
    fn cdf64(x: f64) -> f64 {
        0.5 * (1.0 + erf64(x / std::f64::consts::SQRT_2))
    }

    /// erf in f64 (Taylor series below 3, asymptotic above; accurate to ~1e-13 here).
    fn erf64(x: f64) -> f64 {
        let a = x.abs();
        let r = if a < 3.0 {
            let mut term = a;
            let mut sum = a;
            for n in 1..200 {
                term *= -a * a / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut s = 1.0;
            let mut term = 1.0;
            for n in 1..8 {
                term *= -((2 * n - 1) as f64) / (2.0 * a * a);
                s += term;
            }
            1.0 - (-a * a).exp() / (a * std::f64::consts::PI.sqrt()) * s
        };
        r.copysign(x)
    }

    #[test]
    fn exp_matches_std() {
        for i in 0..10_000 {
            let u = i as f32 * 0.0087;
            let (ours, std) = (exp_neg(u), (-u).exp());
            assert!(
                (ours - std).abs() <= 4.0 * f32::EPSILON * std,
                "e^-{u}: {ours} vs {std}"
            );
        }
        assert_eq!(exp_neg(100.0), 0.0);
        assert_eq!(exp_neg(0.0), 1.0);
    }

    #[test]
    fn gelu_and_its_derivative_match_f64() {
        let mut worst = [0.0f64; 2];
        for i in -20_000..=20_000 {
            let x = i as f64 * 0.0005; // [-10, 10]
            let (cdf, pdf) = phi_cdf(x as f32);
            let y = x as f32 * cdf;
            let dy = cdf + x as f32 * pdf;
            let pdf64 = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let (y64, dy64) = (x * cdf64(x), cdf64(x) + x * pdf64);
            worst[0] = worst[0].max((y as f64 - y64).abs() / y64.abs().max(1.0));
            worst[1] = worst[1].max((dy as f64 - dy64).abs() / dy64.abs().max(1.0));
        }
        assert!(worst[0] < 1e-6 && worst[1] < 1e-6, "{worst:?}");
        // Far tails: exactly x (and 1) above, 0 below.
        assert_eq!(phi_cdf(40.0).0, 1.0);
        assert_eq!(phi_cdf(-40.0), (0.0, 0.0));
    }

    #[test]
    fn every_instruction_set_gives_the_same_values() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let dy: Vec<f32> = (0..1000).map(|i| (i % 7) as f32 - 3.0).collect();
        let mut reference = vec![0.0; 1000];
        chunk(&x, Some(&dy), &mut reference);
        for isa in Isa::supported() {
            let mut out = vec![0.0; 1000];
            run(isa, &x, Some(&dy), &mut out);
            for (a, b) in out.iter().zip(&reference) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{isa:?}: {a} vs {b}"
                );
            }
        }
    }
}
