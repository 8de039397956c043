//! The kernels compiled once per instruction set (`Isa`), chosen at run time, and the
//! dispatch of each op to them.

use super::*;

pub(crate) fn forward_generic<T: ShiftTile>(
    g: &ConvGeometry,
    x: Maps<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    out: Out<'_>,
    chunk: ForwardFn,
) {
    let w_rows = weight_rows(g, w, T::NR);
    let w_rows = w_rows.get();
    let images = chunk_len(g.batch);
    let part = |c: usize, n: usize| x.images(g.c_in, g.height, g.width, c * images, n);
    match out {
        Out::Conv(y) => y
            .par_chunks_mut(images * g.out_image())
            .enumerate()
            .for_each(|(c, yc)| {
                let n = yc.len() / g.out_image();
                chunk(g, part(c, n), w_rows, bias, Out::Conv(yc))
            }),
        Out::Pooled(y, idx) => {
            let pooled = g.c_out * (g.out_height() / 2) * (g.out_width() / 2);
            y.par_chunks_mut(images * pooled)
                .zip(idx.par_chunks_mut(images * pooled))
                .enumerate()
                .for_each(|(c, (yc, ic))| {
                    let n = yc.len() / pooled;
                    chunk(g, part(c, n), w_rows, bias, Out::Pooled(yc, ic))
                })
        }
    }
}

pub(crate) fn weight_grad_generic<T: Tile>(
    g: &ConvGeometry,
    x: &[f32],
    dy: Maps<'_>,
    dw: &mut [f32],
    chunk: WeightGradFn,
) {
    let k_dim = g.k_dim();
    let rows = round_up(k_dim, T::MR);
    let ldn = round_up(g.c_out, T::NR);
    let images = chunk_len(g.batch);
    let (oh, ow) = (g.out_height(), g.out_width());
    let dwt = x
        .par_chunks(images * g.in_image())
        .enumerate()
        .map(|(c, xc)| {
            let n = xc.len() / g.in_image();
            let mut dwt = vec![0.0f32; rows * ldn];
            chunk(g, xc, dy.images(g.c_out, oh, ow, c * images, n), &mut dwt);
            dwt
        })
        .collect::<Vec<_>>()
        .into_iter()
        // Summed in chunk order: the same bits whatever the thread scheduling.
        .fold(vec![0.0f32; rows * ldn], |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        });
    let unpooled = matches!(dy, Maps::Unpooled(..));
    weight_grad_out(g, unpooled, T::NR, &dwt, dw);
}

/// Instantiates the chunk kernels for one instruction set: `$fwd` and `$wgrad` are safe
/// wrappers around `#[target_feature]` copies of [`forward_chunk`] and [`weight_grad_chunk`],
/// so the padding copies and packing are compiled for that instruction set too.
#[cfg(target_arch = "x86_64")]
macro_rules! chunk_kernels {
    ($features:literal, $fwd_tile:ty, $wgrad_tile:ty, $fwd:ident, $wgrad:ident, $igrad:ident) => {
        fn $igrad(g: &ConvGeometry, vals: &[f32], idx: &[u8], w: &[f32], dx: &mut [f32]) {
            #[target_feature(enable = $features)]
            fn inner(g: &ConvGeometry, vals: &[f32], idx: &[u8], w: &[f32], dx: &mut [f32]) {
                input_grad_points::<$wgrad_tile>(g, vals, idx, w, dx)
            }
            // SAFETY: only reachable through `Isa::supported`, which checked these CPU features.
            #[allow(unsafe_code)]
            unsafe {
                inner(g, vals, idx, w, dx)
            }
        }
        fn $fwd(g: &ConvGeometry, x: Maps<'_>, w: &[f32], b: Option<&[f32]>, out: Out<'_>) {
            #[target_feature(enable = $features)]
            fn inner(g: &ConvGeometry, x: Maps<'_>, w: &[f32], b: Option<&[f32]>, out: Out<'_>) {
                forward_chunk::<$fwd_tile>(g, x, w, b, out)
            }
            // SAFETY: only reachable through `Isa::supported`, which checked these CPU features.
            #[allow(unsafe_code)]
            unsafe {
                inner(g, x, w, b, out)
            }
        }
        fn $wgrad(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
            #[target_feature(enable = $features)]
            fn inner(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
                weight_grad_chunk::<$wgrad_tile>(g, x, dy, dwt)
            }
            // SAFETY: only reachable through `Isa::supported`, which checked these CPU features.
            #[allow(unsafe_code)]
            unsafe {
                inner(g, x, dy, dwt)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
chunk_kernels!(
    "avx512f,avx2,fma",
    Avx512Tile,
    Avx512Tile,
    forward_avx512,
    weight_grad_avx512,
    input_grad_avx512
);
#[cfg(target_arch = "x86_64")]
chunk_kernels!(
    "avx2,fma",
    Avx2FwdTile,
    Avx2Tile,
    forward_avx2,
    weight_grad_avx2,
    input_grad_avx2
);

pub(crate) fn forward_portable(
    g: &ConvGeometry,
    x: Maps<'_>,
    w: &[f32],
    b: Option<&[f32]>,
    out: Out<'_>,
) {
    forward_chunk::<PortableTile>(g, x, w, b, out)
}

pub(crate) fn weight_grad_portable(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dwt: &mut [f32]) {
    weight_grad_chunk::<PortableTile>(g, x, dy, dwt)
}

pub(crate) fn input_grad_portable(
    g: &ConvGeometry,
    vals: &[f32],
    idx: &[u8],
    w: &[f32],
    dx: &mut [f32],
) {
    input_grad_points::<PortableTile>(g, vals, idx, w, dx)
}

/// The instruction set the kernels run with, detected once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F (x86-64-v4): 8 × 32 tiles.
    Avx512,
    /// AVX2 with FMA (x86-64-v3): 4 × 16 tiles (forward), 6 × 16 (weight gradient).
    Avx2,
    /// Plain Rust for any CPU: 4 × 8 tiles.
    Portable,
}

impl Isa {
    /// The best instruction set this CPU supports, capped by the environment variable
    /// `TORCHLET_CPU_ISA` (`avx512`, `avx2` or `portable`: to measure another code path on the
    /// same machine; any other value is logged as a warning and ignored). Read once per
    /// process.
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let value = std::env::var("TORCHLET_CPU_ISA").ok();
            let cap = Isa::cap(value.as_deref()).unwrap_or_else(|bad| {
                tracing::warn!(
                    "TORCHLET_CPU_ISA={bad:?} names no instruction set (avx512, avx2, portable); \
                     ignored"
                );
                Isa::Avx512
            });
            Isa::supported()
                .into_iter()
                .find(|isa| isa.rank() <= cap.rank())
                .unwrap_or(Isa::Portable)
        })
    }

    /// The cap a `TORCHLET_CPU_ISA` value sets (no cap when unset), or the value back when it
    /// names no instruction set.
    pub(crate) fn cap(value: Option<&str>) -> Result<Isa, &str> {
        match value {
            None | Some("avx512") => Ok(Isa::Avx512),
            Some("avx2") => Ok(Isa::Avx2),
            Some("portable") => Ok(Isa::Portable),
            Some(bad) => Err(bad),
        }
    }

    /// The instruction sets this CPU supports, best first.
    pub(crate) fn supported() -> Vec<Isa> {
        let mut all = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            if fma && std::is_x86_feature_detected!("avx512f") {
                all.push(Isa::Avx512);
            }
            if fma {
                all.push(Isa::Avx2);
            }
        }
        all.push(Isa::Portable);
        all
    }

    pub(crate) fn rank(self) -> u8 {
        match self {
            Isa::Portable => 0,
            Isa::Avx2 => 1,
            Isa::Avx512 => 2,
        }
    }
}

/// The chunk kernels of one instruction set, with the tile sizes their operands are padded to.
#[derive(Clone, Copy)]
pub(crate) struct ChunkKernels {
    /// [`forward_chunk`] for the set.
    pub(crate) forward: ForwardFn,
    /// `NR` of its forward tile: the weight rows' width is padded to it.
    pub(crate) forward_nr: usize,
    /// [`weight_grad_chunk`] for the set.
    pub(crate) weight_grad: WeightGradFn,
    /// `MR` and `NR` of its weight-gradient tile: `dwt` is padded to them.
    pub(crate) weight_grad_tile: (usize, usize),
    /// [`input_grad_points`] for the set, on the weight-gradient tile (where [`points_fit`]
    /// with its `NR`).
    pub(crate) input_grad: InputGradFn,
}

impl Isa {
    /// The chunk kernels of this set, which must be one of [`Isa::supported`].
    pub(crate) fn chunk_kernels(self) -> ChunkKernels {
        fn of<F: ShiftTile, W: Tile>(
            forward: ForwardFn,
            weight_grad: WeightGradFn,
            input_grad: InputGradFn,
        ) -> ChunkKernels {
            ChunkKernels {
                forward,
                forward_nr: F::NR,
                weight_grad,
                weight_grad_tile: (W::MR, W::NR),
                input_grad,
            }
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                of::<Avx512Tile, Avx512Tile>(forward_avx512, weight_grad_avx512, input_grad_avx512)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                of::<Avx2FwdTile, Avx2Tile>(forward_avx2, weight_grad_avx2, input_grad_avx2)
            }
            _ => of::<PortableTile, PortableTile>(
                forward_portable,
                weight_grad_portable,
                input_grad_portable,
            ),
        }
    }
}

pub(crate) fn forward_dispatch(
    g: &ConvGeometry,
    x: Maps<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    out: Out<'_>,
) {
    match bf16_active() {
        Some(bf16) => forward_bf16_on(bf16, g, x, w, bias, out),
        None => forward_on(Isa::detect(), g, x, w, bias, out),
    }
}

/// The forward on the kernels of `isa`, which must be one of [`Isa::supported`].
pub(crate) fn forward_on(
    isa: Isa,
    g: &ConvGeometry,
    x: Maps<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    out: Out<'_>,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => forward_generic::<Avx512Tile>(g, x, w, bias, out, forward_avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => forward_generic::<Avx2FwdTile>(g, x, w, bias, out, forward_avx2),
        _ => forward_generic::<PortableTile>(g, x, w, bias, out, forward_portable),
    }
}

/// The weight gradient in the [`precision`] asked for (the maxima-only path behind a pooling
/// stays fp32: it does a quarter of the products).
pub(crate) fn weight_grad_dispatch(g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dw: &mut [f32]) {
    let isa = Isa::detect();
    let points = matches!(dy, Maps::Unpooled(..))
        && points_fit(g, true, isa.chunk_kernels().weight_grad_tile.1);
    match bf16_active() {
        Some(bf16) if !points => weight_grad_bf16_on(bf16, g, x, dy, dw),
        _ => weight_grad_on(isa, g, x, dy, dw),
    }
}

/// The weight gradient on the kernels of `isa`, which must be one of [`Isa::supported`].
pub(crate) fn weight_grad_on(isa: Isa, g: &ConvGeometry, x: &[f32], dy: Maps<'_>, dw: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => weight_grad_generic::<Avx512Tile>(g, x, dy, dw, weight_grad_avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => weight_grad_generic::<Avx2Tile>(g, x, dy, dw, weight_grad_avx2),
        _ => weight_grad_generic::<PortableTile>(g, x, dy, dw, weight_grad_portable),
    }
}
