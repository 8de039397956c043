//! torchlet's own CPU ops for convolutional networks, used on Burn's Flex backend.
//!
//! Burn 0.22.1's Flex backend runs convolutions (forward, and a backward through its generic
//! fallback), max-pooling, batch norm and GELU at a fraction of the CPU's speed. This module
//! replaces those ops with [`kernels`] (implicit-GEMM convolutions on a register-tiled
//! AVX-512 / AVX2 micro-kernel, the pooling fused into them, images split over rayon's
//! threads) and with one-pass batch norm and GELU, wired into Burn through its backend
//! extension API: [`conv2d`], [`conv2d_pool2`], [`conv_pool_stack3`] (the three blocks of the
//! tutorial's network in one op), [`try_batch_norm_train`] and [`try_gelu`] are
//! differentiable ops on Flex and on `Autodiff<Flex>`, with a hand-written backward pass.
//! Everything else (linear layers, loss, autodiff, optimizer) stays Burn's.
//!
//! The layers of [`crate::nn`] ([`Conv2d`](crate::nn::Conv2d),
//! [`BatchNorm2d`](crate::nn::BatchNorm2d), [`GELU`](crate::nn::GELU)) choose these ops by
//! themselves on a Flex device, so the model zoo and any network written with them run on
//! them; [`set_layer_kernels`]`(CpuKernels::Burn)` (or `TORCHLET_CPU_KERNELS=burn`) keeps
//! Burn's ops everywhere for comparison. [`SeedConvNet`](crate::SeedConvNet), written with
//! Burn's layers, has its own switch ([`CpuKernels`](crate::CpuKernels) in its config):
//! [`conv_pool_stack3`] without batch norm, [`conv2d`] (then Burn's batch norm and pooling)
//! with it.
//!
//! [`crate::set_precision`]`(Precision::Bf16)` (or `TORCHLET_CPU_PRECISION=bf16`, or
//! `TrainConfig::precision`) gives the convolutions bf16 products with `f32` accumulation
//! where the CPU has AVX512-BF16, like PyTorch's bf16 autocast; [`kernels::describe`] says
//! what a precision computes in on this CPU.
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use torchlet_model::cpu;
//!
//! let device = Device::flex();
//! let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
//! let w = Tensor::<4>::random([4, 3, 5, 5], Distribution::Default, &device);
//! let b = Tensor::<1>::zeros([4], &device);
//! assert!(cpu::supports(&device));
//! let y = cpu::conv2d(x, w, b, 2).expect("a Flex tensor and a supported geometry");
//! assert_eq!(y.dims(), [2, 4, 8, 8]);
//! ```

pub mod kernels;

mod batch_norm;
mod gelu;

pub use batch_norm::{BatchNormTrainOutput, CpuBatchNormBackend, try_batch_norm_train};
pub use gelu::{CpuGeluBackend, try_gelu};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::{Bytes, Device, Shape, Tensor};

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::CpuKernels;

use kernels::ConvGeometry;

/// `TORCHLET_CPU_KERNELS` not yet read.
const KERNELS_UNSET: u8 = 0;
/// [`CpuKernels::Auto`] for the layers.
const KERNELS_AUTO: u8 = 1;
/// [`CpuKernels::Burn`] for the layers.
const KERNELS_BURN: u8 = 2;

/// What [`layer_kernels`] returns; read from `TORCHLET_CPU_KERNELS` on first use.
static LAYER_KERNELS: AtomicU8 = AtomicU8::new(KERNELS_UNSET);

/// Which convolution the layers of [`crate::nn`] run on a Flex device, for the whole process
/// (like PyTorch's `torch.backends.mkldnn.enabled`): [`CpuKernels::Auto`], torchlet's kernels
/// wherever they apply (the default), or [`CpuKernels::Burn`], Burn's `conv2d` always, for
/// comparison. The first call reads `TORCHLET_CPU_KERNELS` (`burn` or `auto`; any other
/// value, or none, is `auto`); [`set_layer_kernels`] overrides it.
pub fn layer_kernels() -> CpuKernels {
    match LAYER_KERNELS.load(Ordering::Relaxed) {
        KERNELS_AUTO => CpuKernels::Auto,
        KERNELS_BURN => CpuKernels::Burn,
        _ => {
            let burn = std::env::var("TORCHLET_CPU_KERNELS").is_ok_and(|v| v == "burn");
            let kernels = if burn {
                CpuKernels::Burn
            } else {
                CpuKernels::Auto
            };
            set_layer_kernels(kernels);
            kernels
        }
    }
}

/// Sets [`layer_kernels`] for the whole process (a switch such as `--burn-kernels`).
pub fn set_layer_kernels(kernels: CpuKernels) {
    let value = match kernels {
        CpuKernels::Auto => KERNELS_AUTO,
        CpuKernels::Burn => KERNELS_BURN,
    };
    LAYER_KERNELS.store(value, Ordering::Relaxed);
}

/// Whether `device` runs on Flex (with or without autodiff), where [`conv2d`] works.
pub fn supports(device: &Device) -> bool {
    matches!(
        device.clone().without_autodiff().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}

/// Convolution with stride 1, no dilation, one group, a square kernel and `pad` zeros on every
/// side, on Flex: `x` `[batch, c_in, h, w]`, `weight` `[c_out, c_in, k, k]`, `bias` `[c_out]`
/// → `[batch, c_out, h + 2·pad − k + 1, w + 2·pad − k + 1]`.
///
/// Differentiable on an autodiff device. Returns `None` (nothing computed) when the tensors are
/// not on a Flex device, not `f32`, or their shapes do not fit together; callers then use
/// Burn's `conv2d`.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, pad: usize) -> Option<Tensor<4>> {
    try_conv2d(x, weight, bias, pad).ok()
}

/// [`conv2d`], giving `x` back (`Err`) instead of `None` when it declines, so that the caller
/// can run Burn's `conv2d` on it without having cloned it.
// Both variants are the same tensor handle, given back either way.
#[allow(clippy::result_large_err)]
pub fn try_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    pad: usize,
) -> Result<Tensor<4>, Tensor<4>> {
    if !accepts(&x, &weight, &bias, pad) {
        return Err(x);
    }
    Ok(Tensor::from_dispatch(
        <Dispatch as CpuConvBackend>::torchlet_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            pad,
        ),
    ))
}

/// [`conv2d`] followed by 2×2 max-pooling (stride 2, floor), fused: the convolution's output
/// exists only one image at a time, and the backward pass keeps one byte per pooled value
/// (which input of its window won). `[batch, c_out, oh / 2, ow / 2]`.
///
/// Returns `None` under the same conditions as [`conv2d`].
pub fn conv2d_pool2(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    pad: usize,
) -> Option<Tensor<4>> {
    try_conv2d_pool2(x, weight, bias, pad).ok()
}

/// [`conv2d_pool2`], giving `x` back (`Err`) when it declines.
#[allow(clippy::result_large_err)]
pub fn try_conv2d_pool2(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    pad: usize,
) -> Result<Tensor<4>, Tensor<4>> {
    if !accepts(&x, &weight, &bias, pad) {
        return Err(x);
    }
    Ok(Tensor::from_dispatch(
        <Dispatch as CpuConvBackend>::torchlet_conv2d_pool2(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            pad,
        ),
    ))
}

/// Three [`conv2d_pool2`] blocks (the tutorial's feature extractor), each optionally followed
/// by ReLU, as one op: `blocks[l]` is block `l`'s weight, bias and padding. Each task takes a
/// few images through all three blocks (and back in the backward pass), so rayon's threads meet
/// once per pass instead of once per layer, and a chunk's activations stay in its core's cache.
/// The values are those of the three blocks run one after the other.
///
/// Returns `None` under the conditions of [`conv2d`], or when a block's input is not the
/// previous block's pooled output.
pub fn conv_pool_stack3(
    x: Tensor<4>,
    blocks: [(Tensor<4>, Tensor<1>, usize); 3],
    relu: bool,
) -> Option<Tensor<4>> {
    let f32s = blocks
        .iter()
        .all(|(w, b, _)| w.dtype() == DType::F32 && b.dtype() == DType::F32);
    let shapes = blocks
        .each_ref()
        .map(|(w, b, pad)| (w.shape(), b.shape(), *pad));
    if !(supports(&x.device()) && x.dtype() == DType::F32 && f32s)
        || stack_geometries(&x.shape(), &shapes).is_none()
    {
        return None;
    }
    let [(w1, b1, p1), (w2, b2, p2), (w3, b3, p3)] = blocks;
    Some(Tensor::from_dispatch(
        <Dispatch as CpuConvBackend>::torchlet_conv_pool_stack3(
            x.into_dispatch(),
            w1.into_dispatch(),
            b1.into_dispatch(),
            w2.into_dispatch(),
            b2.into_dispatch(),
            w3.into_dispatch(),
            b3.into_dispatch(),
            [p1, p2, p3],
            relu,
        ),
    ))
}

/// The geometries of a stack of `conv → 2×2 max-pool` blocks on an input of shape `x`, given
/// each block's weight shape, bias shape and padding; `None` unless every block fits its input
/// and the stack has something to compute.
fn stack_geometries(x: &Shape, blocks: &[(Shape, Shape, usize); 3]) -> Option<[ConvGeometry; 3]> {
    let mut input = x.clone();
    let mut gs = Vec::with_capacity(blocks.len());
    for (w, b, pad) in blocks {
        let g = geometry(&input, w, b, *pad)?;
        let (ph, pw) = kernels::pooled_size(&g);
        input = Shape::new([g.batch, g.c_out, ph, pw]);
        gs.push(g);
    }
    let gs: [ConvGeometry; 3] = gs.try_into().ok()?;
    // Empty maps anywhere: nothing for the fused op to do; the plain ops handle it.
    let nonempty = gs.iter().all(|g| {
        let (ph, pw) = kernels::pooled_size(g);
        g.c_in * g.height * g.width > 0 && g.c_out * ph * pw > 0
    });
    nonempty.then_some(gs)
}

/// Whether the kernels can run these tensors: a Flex device, `f32`, shapes that fit together.
fn accepts(x: &Tensor<4>, weight: &Tensor<4>, bias: &Tensor<1>, pad: usize) -> bool {
    supports(&x.device())
        && [x.dtype(), weight.dtype(), bias.dtype()]
            .iter()
            .all(|d| *d == DType::F32)
        && geometry(&x.shape(), &weight.shape(), &bias.shape(), pad).is_some()
}

/// The geometry of `x ⋆ weight (+ bias)`, or `None` when the shapes do not fit together.
fn geometry(x: &Shape, weight: &Shape, bias: &Shape, pad: usize) -> Option<ConvGeometry> {
    let (&[batch, c_in, height, width], &[c_out, wc_in, kh, kw], &[nb]) =
        (x.as_slice(), weight.as_slice(), bias.as_slice())
    else {
        return None;
    };
    let g = ConvGeometry {
        batch,
        c_in,
        c_out,
        height,
        width,
        kernel: kh,
        pad,
    };
    (wc_in == c_in && kh == kw && nb == c_out && pad < kh && g.is_valid()).then_some(g)
}

/// The op, as a Burn backend extension (implemented for Flex and `Autodiff<Flex>`).
#[backend_extension(Flex, Autodiff)]
pub trait CpuConvBackend: Backend {
    /// See [`conv2d`].
    fn torchlet_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self>;

    /// See [`conv2d_pool2`].
    fn torchlet_conv2d_pool2(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self>;

    /// See [`conv_pool_stack3`].
    #[allow(clippy::too_many_arguments)]
    fn torchlet_conv_pool_stack3(
        x: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        w3: FloatTensor<Self>,
        b3: FloatTensor<Self>,
        pads: [usize; 3],
        relu: bool,
    ) -> FloatTensor<Self>;
}

/// The `f32` values of a Flex tensor, contiguous (copied only when the tensor is a view).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => {
            std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().unwrap_or(&[]).to_vec())
        }
    }
}

/// `n` zeros, written by rayon's threads side by side: outputs are megabytes, and zeroing
/// (and first touching) them on one thread held the other idle.
fn zeroed<T: Default + Clone + Send>(n: usize) -> Vec<T> {
    use rayon::iter::ParallelExtend;
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(T::default(), n));
    v
}

/// A contiguous `f32` Flex tensor holding `data`.
fn tensor(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        DType::F32,
    )
}

fn shape_of(t: &FlexTensor) -> Shape {
    t.layout().shape().clone()
}

/// The geometry of an op's Flex tensors; [`accepts`] checked it before dispatching.
fn checked_geometry(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor, pad: usize) -> ConvGeometry {
    match geometry(&shape_of(x), &shape_of(w), &shape_of(b), pad) {
        Some(g) => g,
        None => panic!("torchlet conv op: shapes are checked before dispatch"),
    }
}

/// The forward pass on Flex tensors: the output, and the window positions when `pooled`.
fn forward(
    g: &ConvGeometry,
    x: &FlexTensor,
    w: &FlexTensor,
    b: &FlexTensor,
    pooled: bool,
) -> (FlexTensor, Option<Vec<u8>>) {
    let (x, w, b) = (values(x), values(w), values(b));
    if pooled {
        let (ph, pw) = kernels::pooled_size(g);
        let n = g.batch * g.c_out * ph * pw;
        let (mut y, mut idx) = (zeroed(n), zeroed(n));
        let done = kernels::conv2d_pool2_forward(g, &x, &w, Some(&b), &mut y, &mut idx);
        assert!(
            done.is_some(),
            "torchlet conv op: lengths are checked before dispatch"
        );
        let shape = Shape::new([g.batch, g.c_out, ph, pw]);
        (tensor(y, shape), Some(idx))
    } else {
        let mut y = zeroed(g.batch * g.c_out * g.out_height() * g.out_width());
        let done = kernels::conv2d_forward(g, &x, &w, Some(&b), &mut y);
        assert!(
            done.is_some(),
            "torchlet conv op: lengths are checked before dispatch"
        );
        let shape = Shape::new([g.batch, g.c_out, g.out_height(), g.out_width()]);
        (tensor(y, shape), None)
    }
}

impl CpuConvBackend for Flex {
    fn torchlet_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self> {
        let g = checked_geometry(&x, &weight, &bias, pad);
        forward(&g, &x, &weight, &bias, false).0
    }

    fn torchlet_conv2d_pool2(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self> {
        let g = checked_geometry(&x, &weight, &bias, pad);
        forward(&g, &x, &weight, &bias, true).0
    }

    fn torchlet_conv_pool_stack3(
        x: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        w3: FloatTensor<Self>,
        b3: FloatTensor<Self>,
        pads: [usize; 3],
        relu: bool,
    ) -> FloatTensor<Self> {
        let [_, _, y] = stack_forward(x, [(w1, b1), (w2, b2), (w3, b3)], pads, relu).ys;
        y
    }
}

/// What the stack's forward pass returns and keeps for its backward pass.
#[derive(Debug, Clone)]
struct StackState {
    /// The first block's input.
    x: FlexTensor,
    /// Each block's weights and bias.
    params: [(FlexTensor, FlexTensor); 3],
    gs: [ConvGeometry; 3],
    /// Each block's (pooled, rectified) output; the last one is the op's output.
    ys: [FlexTensor; 3],
    /// Each block's window positions.
    idx: Arc<[Vec<u8>; 3]>,
    relu: bool,
}

/// The forward pass of [`conv_pool_stack3`] on Flex tensors (checked before dispatch).
fn stack_forward(
    x: FlexTensor,
    params: [(FlexTensor, FlexTensor); 3],
    pads: [usize; 3],
    relu: bool,
) -> StackState {
    let shapes = [0, 1, 2].map(|l| (shape_of(&params[l].0), shape_of(&params[l].1), pads[l]));
    let Some(gs) = stack_geometries(&shape_of(&x), &shapes) else {
        panic!("torchlet conv stack: shapes are checked before dispatch");
    };
    let pooled = gs.map(|g| {
        let (ph, pw) = kernels::pooled_size(&g);
        g.batch * g.c_out * ph * pw
    });
    // Zeroed by `calloc` on this thread (fresh pages cost nothing until the workers write
    // them; recycled heap memory is cleared here): zeroing them on both threads would be six
    // more parallel sections for the threads to meet at.
    let mut ys: [Vec<f32>; 3] = pooled.map(|n| vec![0.0; n]);
    let mut idx: [Vec<u8>; 3] = pooled.map(|n| vec![0; n]);
    {
        let wb = params.each_ref().map(|(w, b)| (values(w), values(b)));
        let blocks = [0, 1, 2].map(|l| kernels::Block {
            g: gs[l],
            w: &wb[l].0,
            b: &wb[l].1,
        });
        let mut y_refs = ys.each_mut().map(|y| y.as_mut_slice());
        let mut i_refs = idx.each_mut().map(|i| i.as_mut_slice());
        let done =
            kernels::conv_pool_stack_forward(&blocks, &values(&x), relu, &mut y_refs, &mut i_refs);
        assert!(
            done.is_some(),
            "torchlet conv stack: lengths are checked before dispatch"
        );
    }
    let ys = [0, 1, 2].map(|l| {
        let (ph, pw) = kernels::pooled_size(&gs[l]);
        let shape = Shape::new([gs[l].batch, gs[l].c_out, ph, pw]);
        tensor(std::mem::take(&mut ys[l]), shape)
    });
    StackState {
        x,
        params,
        gs,
        ys,
        idx: Arc::new(idx),
        relu,
    }
}

/// The backward pass of [`conv_pool_stack3`].
#[derive(Debug)]
struct StackBackward;

impl Backward<Flex, 7> for StackBackward {
    type State = StackState;

    fn backward(self, ops: Ops<Self::State, 7>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, w1, b1, w2, b2, w3, b3] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let params = s.params.each_ref().map(|(w, b)| (values(w), values(b)));
        let blocks = [0, 1, 2].map(|l| kernels::Block {
            g: s.gs[l],
            w: &params[l].0,
            b: &params[l].1,
        });
        let ys = s.ys.each_ref().map(values);
        let y_refs = ys.each_ref().map(|y| &**y);
        let i_refs = s.idx.each_ref().map(|i| i.as_slice());
        let x = values(&s.x);
        let mut dx = node_x.as_ref().map(|_| zeroed(x.len()));
        let mut dw = params.each_ref().map(|(w, _)| vec![0.0f32; w.len()]);
        let mut db = params.each_ref().map(|(_, b)| vec![0.0f32; b.len()]);
        let done = kernels::conv_pool_stack_backward(
            &blocks,
            &x,
            &y_refs,
            &i_refs,
            s.relu,
            &values(&dy),
            dx.as_deref_mut(),
            &mut dw.each_mut().map(|v| v.as_mut_slice()),
            &mut db.each_mut().map(|v| v.as_mut_slice()),
        );
        assert!(
            done.is_some(),
            "torchlet conv stack backward: shapes were checked in the forward pass"
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, tensor(dx, shape_of(&s.x)));
        }
        let nodes = [(w1, b1), (w2, b2), (w3, b3)];
        for (((w_node, b_node), (w, b)), (dw, db)) in
            nodes.into_iter().zip(&s.params).zip(dw.into_iter().zip(db))
        {
            if let Some(node) = w_node {
                grads.register::<Flex>(node.id, tensor(dw, shape_of(w)));
            }
            if let Some(node) = b_node {
                grads.register::<Flex>(node.id, tensor(db, shape_of(b)));
            }
        }
    }
}

/// The backward pass of [`conv2d`]: input, weight and bias gradients from the saved input and
/// weight.
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    /// (input, weight, geometry, window positions when the output was max-pooled)
    type State = (FlexTensor, FlexTensor, ConvGeometry, Option<Arc<Vec<u8>>>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, g, pooled) = ops.state;
        let (dy, x, w) = (values(&dy), values(&x), values(&w));
        let mut dx = node_x
            .as_ref()
            .map(|_| zeroed(g.batch * g.c_in * g.height * g.width));
        let mut dw = node_w.as_ref().map(|_| vec![0.0f32; w.len()]);
        let mut db = node_b.as_ref().map(|_| vec![0.0f32; g.c_out]);
        let done = match &pooled {
            Some(idx) => kernels::conv2d_pool2_backward(
                &g,
                &x,
                &w,
                &dy,
                idx,
                dx.as_deref_mut(),
                dw.as_deref_mut(),
                db.as_deref_mut(),
            ),
            None => (|| {
                if let Some(dx) = dx.as_deref_mut() {
                    kernels::conv2d_input_grad(&g, &dy, &w, dx)?;
                }
                if let Some(dw) = dw.as_deref_mut() {
                    kernels::conv2d_weight_grad(&g, &x, &dy, dw)?;
                }
                if let Some(db) = db.as_deref_mut() {
                    kernels::conv2d_bias_grad(&g, &dy, db)?;
                }
                Some(())
            })(),
        };
        assert!(
            done.is_some(),
            "torchlet conv backward: shapes were checked in the forward pass"
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            let shape = Shape::new([g.batch, g.c_in, g.height, g.width]);
            grads.register::<Flex>(node.id, tensor(dx, shape));
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            let shape = Shape::new([g.c_out, g.c_in, g.kernel, g.kernel]);
            grads.register::<Flex>(node.id, tensor(dw, shape));
        }
        if let (Some(node), Some(db)) = (node_b, db) {
            grads.register::<Flex>(node.id, tensor(db, Shape::new([g.c_out])));
        }
    }
}

/// The autodiff op: the forward on the primitives, and the backward recorded when any input is
/// tracked.
fn tracked<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    bias: FloatTensor<Autodiff<Flex, C>>,
    pad: usize,
    pooled: bool,
) -> FloatTensor<Autodiff<Flex, C>> {
    let (xp, wp, bp) = (x.primitive(), weight.primitive(), bias.primitive());
    let g = checked_geometry(xp, wp, bp, pad);
    let (out, idx) = forward(&g, xp, wp, bp, pooled);
    match Conv2dBackward
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((xp.clone(), wp.clone(), g, idx.map(Arc::new)), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

impl<C: CheckpointStrategy> CpuConvBackend for Autodiff<Flex, C> {
    fn torchlet_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self> {
        tracked::<C>(x, weight, bias, pad, false)
    }

    fn torchlet_conv2d_pool2(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self> {
        tracked::<C>(x, weight, bias, pad, true)
    }

    fn torchlet_conv_pool_stack3(
        x: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        w3: FloatTensor<Self>,
        b3: FloatTensor<Self>,
        pads: [usize; 3],
        relu: bool,
    ) -> FloatTensor<Self> {
        let nodes = [&x, &w1, &b1, &w2, &b2, &w3, &b3].map(|t| t.node());
        let p = |t: &FloatTensor<Self>| t.primitive().clone();
        let params = [(p(&w1), p(&b1)), (p(&w2), p(&b2)), (p(&w3), p(&b3))];
        let state = stack_forward(p(&x), params, pads, relu);
        let out = state.ys[2].clone();
        match StackBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(state, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}
