//! A stack of `conv → 2×2 max-pool (→ ReLU)` blocks, run one chunk of images at a time
//! through every block.
//!
//! Run block by block, each layer is its own parallel section: the threads meet at its end,
//! the faster one waits for the slower, and the layer's output leaves the cache before the
//! next layer reads it. Here each task takes a few images through the whole stack — forward
//! through every block; backward from the last block's output gradient down to the first,
//! each block's input gradient becoming the output gradient of the block below — so the
//! threads meet once per pass, and a chunk's activations stay in that core's L2 cache.
//! The weight and bias gradients are summed per task and added up in task order at the end,
//! so they are the same bits whatever the thread scheduling (a resumed run stays bit-exact).
//!
//! The arithmetic is that of the per-block kernels ([`super::conv2d_pool2_forward`],
//! [`super::conv2d_pool2_backward`]); only the order of the gradient sums differs.

use rayon::prelude::*;

use super::{
    Aligned, ChunkKernels, ConvGeometry, Isa, Maps, Out, flipped_rows, point_rows, points_fit,
    pooled_size, round_up, weight_grad_out, weight_rows,
};

/// Images per task: as for one layer ([`super::chunk_len`]), but at most 8, so that what a
/// task reads and writes (about 1 MiB for 8 of the tutorial's images in the backward pass:
/// activations, their gradients, its share of the weight gradients) fits a core's L2 cache at
/// any batch size.
fn chunk_len(batch: usize) -> usize {
    super::chunk_len(batch).min(8)
}

/// One `conv → 2×2 max-pool` block of a stack.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// The convolution's geometry; `batch` is the whole stack's.
    pub g: ConvGeometry,
    /// Weights `[c_out, c_in, k, k]`.
    pub w: &'a [f32],
    /// Bias `[c_out]`.
    pub b: &'a [f32],
}

/// Values per image of a block's pooled output.
fn pooled_image(g: &ConvGeometry) -> usize {
    let (ph, pw) = pooled_size(g);
    g.c_out * ph * pw
}

/// Whether the blocks are non-empty, valid, share a batch, chain (each block's input is the
/// pooled output of the one before), their weights and biases fit, and `x` has `x` values.
fn chains(blocks: &[Block<'_>], x: usize) -> bool {
    let Some(first) = blocks.first() else {
        return false;
    };
    let fits = |b: &Block<'_>| {
        b.g.is_valid()
            && b.g.batch == first.g.batch
            && b.g.in_image() > 0
            && pooled_image(&b.g) > 0
            && b.w.len() == b.g.c_out * b.g.k_dim()
            && b.b.len() == b.g.c_out
    };
    let linked = |pair: &[Block<'_>]| {
        let (ph, pw) = pooled_size(&pair[0].g);
        (pair[1].g.c_in, pair[1].g.height, pair[1].g.width) == (pair[0].g.c_out, ph, pw)
    };
    x == first.g.batch * first.g.in_image()
        && blocks.iter().all(fits)
        && blocks.windows(2).all(linked)
}

/// Whether `ys` (and `idx`, when given) hold one pooled output per block.
fn outputs_fit(blocks: &[Block<'_>], ys: &[usize], idx: &[usize]) -> bool {
    ys.len() == blocks.len()
        && idx.len() == blocks.len()
        && blocks
            .iter()
            .zip(ys.iter().zip(idx))
            .all(|(b, (y, i))| *y == b.g.batch * pooled_image(&b.g) && i == y)
}

/// `v = max(v, 0)` as Burn's `relu` does it: values `≤ 0` become `0`, NaN stays.
fn relu_in_place(v: &mut [f32]) {
    for x in v {
        if *x <= 0.0 {
            *x = 0.0;
        }
    }
}

/// ReLU's backward: the gradient is zero where the ReLU's output `y` is `≤ 0`.
fn relu_mask(grad: &mut [f32], y: &[f32]) {
    for (d, y) in grad.iter_mut().zip(y) {
        if *y <= 0.0 {
            *d = 0.0;
        }
    }
}

/// The forward pass of the stack: block `l`'s pooled (and, with `relu`, rectified) output
/// `[batch, c_out, oh / 2, ow / 2]` into `ys[l]`, the window position of each maximum into
/// `idx[l]` (as [`super::conv2d_pool2_forward`]). `x`: `[batch, c_in, h, w]` of the first
/// block.
///
/// Returns `None` (nothing written) when the blocks do not chain or a length does not fit.
pub fn conv_pool_stack_forward(
    blocks: &[Block<'_>],
    x: &[f32],
    relu: bool,
    ys: &mut [&mut [f32]],
    idx: &mut [&mut [u8]],
) -> Option<()> {
    let y_lens: Vec<usize> = ys.iter().map(|y| y.len()).collect();
    let idx_lens: Vec<usize> = idx.iter().map(|i| i.len()).collect();
    if !chains(blocks, x.len()) || !outputs_fit(blocks, &y_lens, &idx_lens) {
        return None;
    }
    forward_on(Isa::detect().chunk_kernels(), blocks, x, relu, ys, idx);
    Some(())
}

/// [`conv_pool_stack_forward`] on the chunk kernels `k`, arguments checked.
fn forward_on(
    k: ChunkKernels,
    blocks: &[Block<'_>],
    x: &[f32],
    relu: bool,
    ys: &mut [&mut [f32]],
    idx: &mut [&mut [u8]],
) {
    let rows: Vec<Aligned> = blocks
        .iter()
        .map(|b| weight_rows(&b.g, b.w, k.forward_nr))
        .collect();
    let images = chunk_len(blocks[0].g.batch);
    let per_x = images * blocks[0].g.in_image();
    // Each task's slices of every block's outputs.
    let mut jobs: Vec<Vec<(&mut [f32], &mut [u8])>> = x
        .chunks(per_x)
        .map(|_| Vec::with_capacity(blocks.len()))
        .collect();
    for ((y, i), b) in ys.iter_mut().zip(idx.iter_mut()).zip(blocks) {
        let per = images * pooled_image(&b.g);
        for (job, out) in jobs
            .iter_mut()
            .zip(y.chunks_mut(per).zip(i.chunks_mut(per)))
        {
            job.push(out);
        }
    }
    jobs.into_par_iter()
        .zip(x.par_chunks(per_x))
        .for_each(|(mut outs, xc)| {
            for (l, (b, w_rows)) in blocks.iter().zip(&rows).enumerate() {
                let (below, rest) = outs.split_at_mut(l);
                let input = below.last().map_or(xc, |(y, _)| &**y);
                if let Some((y, i)) = rest.first_mut() {
                    let out = Out::Pooled(y, i);
                    (k.forward)(&b.g, Maps::Dense(input), w_rows.get(), Some(b.b), out);
                    if relu {
                        relu_in_place(y);
                    }
                }
            }
        });
}

/// The backward pass of [`conv_pool_stack_forward`], from `dy`, the gradient of the last
/// block's output: each block's weight and bias gradients into `dw[l]` and `db[l]` (shaped
/// like its weights and bias), and the gradient of `x` into `dx` when asked for. `ys` and
/// `idx` are what the forward pass wrote.
///
/// Returns `None` (nothing written) when the blocks do not chain or a length does not fit.
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_stack_backward(
    blocks: &[Block<'_>],
    x: &[f32],
    ys: &[&[f32]],
    idx: &[&[u8]],
    relu: bool,
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [&mut [f32]],
    db: &mut [&mut [f32]],
) -> Option<()> {
    let y_lens: Vec<usize> = ys.iter().map(|y| y.len()).collect();
    let idx_lens: Vec<usize> = idx.iter().map(|i| i.len()).collect();
    let grads_fit = dw.len() == blocks.len()
        && db.len() == blocks.len()
        && blocks
            .iter()
            .zip(dw.iter().zip(db.iter()))
            .all(|(b, (w, d))| w.len() == b.w.len() && d.len() == b.b.len());
    if !chains(blocks, x.len())
        || !outputs_fit(blocks, &y_lens, &idx_lens)
        || !grads_fit
        || y_lens.last() != Some(&dy.len())
        || dx.as_ref().is_some_and(|dx| dx.len() != x.len())
    {
        return None;
    }
    let k = Isa::detect().chunk_kernels();
    backward_on(k, blocks, x, ys, idx, relu, dy, dx, dw, db);
    Some(())
}

/// How a block's input gradient is computed.
enum InputGrad {
    /// The forward of the unpooled gradient through the flipped kernel: its convolution and
    /// weight rows ([`flipped_rows`]).
    Dense(ConvGeometry, Aligned),
    /// From the windows' maxima alone ([`super::input_grad_points`]), weights as
    /// [`point_rows`].
    Points(Aligned),
}

/// [`conv_pool_stack_backward`] on the chunk kernels `k`, arguments checked.
#[allow(clippy::too_many_arguments)]
fn backward_on(
    k: ChunkKernels,
    blocks: &[Block<'_>],
    x: &[f32],
    ys: &[&[f32]],
    idx: &[&[u8]],
    relu: bool,
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [&mut [f32]],
    db: &mut [&mut [f32]],
) {
    let images = chunk_len(blocks[0].g.batch);
    let per_x = images * blocks[0].g.in_image();
    let want_dx = dx.is_some();
    let (mr, nr) = k.weight_grad_tile;
    // How each block's input gradient is computed, with its weights, for every block whose
    // input gradient is needed (all but the first, and the first when `dx` is wanted).
    let input_grads: Vec<Option<InputGrad>> = blocks
        .iter()
        .enumerate()
        .map(|(l, b)| {
            (l > 0 || want_dx).then(|| {
                if points_fit(&b.g, true, nr) {
                    InputGrad::Points(point_rows(&b.g, b.w))
                } else {
                    InputGrad::Dense(b.g.transposed(), flipped_rows(&b.g, b.w, k.forward_nr))
                }
            })
        })
        .collect();
    let zero = || -> Vec<(Vec<f32>, Vec<f32>)> {
        blocks
            .iter()
            .map(|b| {
                let dwt = round_up(b.g.k_dim(), mr) * round_up(b.g.c_out, nr);
                (vec![0.0; dwt], vec![0.0; b.g.c_out])
            })
            .collect()
    };
    // The last block's output gradient starts each task (`chains` checked there is one).
    let top = blocks.len() - 1;
    let per_top = pooled_image(&blocks[top].g);
    let dx_parts: Vec<Option<&mut [f32]>> = match dx {
        Some(dx) => dx.chunks_mut(per_x).map(Some).collect(),
        None => x.chunks(per_x).map(|_| None).collect(),
    };
    // Each task's gradients are kept apart and summed in task order afterwards, so the sums
    // do not depend on how rayon happened to split the work: the same bits on every run.
    let parts: Vec<_> = dx_parts
        .into_par_iter()
        .enumerate()
        .map(|(c, mut dxc)| {
            let mut acc = zero();
            let first = c * images;
            let n = images.min(blocks[0].g.batch - first);
            // Images `first..first + n` of a batch of `per`-value images.
            let part = |per: usize| first * per..(first + n) * per;
            let mut grad = dy[part(per_top)].to_vec();
            if relu {
                relu_mask(&mut grad, &ys[top][part(per_top)]);
            }
            for l in (0..blocks.len()).rev() {
                let g = &blocks[l].g;
                let per = pooled_image(g);
                let maps = Maps::Unpooled(&grad, &idx[l][part(per)]);
                let input = match l.checked_sub(1) {
                    None => &x[part(g.in_image())],
                    Some(below) => &ys[below][part(g.in_image())],
                };
                let (dwt, dbias) = &mut acc[l];
                (k.weight_grad)(g, input, maps, dwt);
                // Unpooling only moves values: the bias gradient sums the pooled gradient.
                let (ph, pw) = pooled_size(g);
                for image in grad.chunks_exact(per) {
                    for (s, plane) in dbias.iter_mut().zip(image.chunks_exact(ph * pw)) {
                        *s += plane.iter().sum::<f32>();
                    }
                }
                let Some(how) = &input_grads[l] else {
                    continue;
                };
                let input_grad = |dx: &mut [f32]| match how {
                    InputGrad::Dense(t, rows) => {
                        (k.forward)(t, maps, rows.get(), None, Out::Conv(dx))
                    }
                    InputGrad::Points(rows) => {
                        (k.input_grad)(g, &grad, &idx[l][part(per)], rows.get(), dx)
                    }
                };
                match l.checked_sub(1) {
                    None => {
                        if let Some(dxc) = dxc.as_deref_mut() {
                            input_grad(dxc);
                        }
                    }
                    Some(below) => {
                        let mut next = vec![0.0f32; n * g.in_image()];
                        input_grad(&mut next);
                        if relu {
                            relu_mask(&mut next, &ys[below][part(g.in_image())]);
                        }
                        grad = next;
                    }
                }
            }
            acc
        })
        .collect();
    let sums = parts.into_iter().fold(zero(), |mut a, b| {
        for ((aw, ab), (bw, bb)) in a.iter_mut().zip(&b) {
            aw.iter_mut().zip(bw).for_each(|(s, v)| *s += v);
            ab.iter_mut().zip(bb).for_each(|(s, v)| *s += v);
        }
        a
    });
    for ((b, (dwt, dbias)), (dw, db)) in blocks
        .iter()
        .zip(&sums)
        .zip(dw.iter_mut().zip(db.iter_mut()))
    {
        weight_grad_out(&b.g, true, nr, dwt, dw);
        db.copy_from_slice(dbias);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::values;
    use super::super::{conv2d_pool2_backward, conv2d_pool2_forward};
    use super::*;

    /// Largest difference, relative to the largest magnitude when that is above 1.
    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
            / scale
    }

    fn geometry(
        batch: usize,
        c: (usize, usize),
        hw: (usize, usize),
        kp: (usize, usize),
    ) -> ConvGeometry {
        ConvGeometry {
            batch,
            c_in: c.0,
            c_out: c.1,
            height: hw.0,
            width: hw.1,
            kernel: kp.0,
            pad: kp.1,
        }
    }

    /// Stacks with odd sizes (more images than tasks and not a multiple of them, channels no
    /// tile divides, a 1 × 1 last output), and one whose first outputs are 32 wide.
    fn stacks() -> Vec<Vec<ConvGeometry>> {
        vec![
            vec![
                geometry(19, (3, 5), (12, 10), (5, 2)),
                geometry(19, (5, 7), (6, 5), (3, 1)),
                geometry(19, (7, 33), (3, 2), (3, 1)),
            ],
            vec![
                geometry(3, (3, 8), (4, 32), (5, 2)),
                geometry(3, (8, 6), (2, 16), (3, 1)),
            ],
        ]
    }

    struct Net {
        gs: Vec<ConvGeometry>,
        w: Vec<Vec<f32>>,
        b: Vec<Vec<f32>>,
        x: Vec<f32>,
    }

    impl Net {
        fn new(gs: Vec<ConvGeometry>, seed: &mut u64) -> Net {
            let w = gs
                .iter()
                .map(|g| values(g.c_out * g.k_dim(), seed))
                .collect();
            let b = gs.iter().map(|g| values(g.c_out, seed)).collect();
            let x = values(gs[0].batch * gs[0].in_image(), seed);
            Net { gs, w, b, x }
        }

        fn blocks(&self) -> Vec<Block<'_>> {
            (0..self.gs.len())
                .map(|l| Block {
                    g: self.gs[l],
                    w: &self.w[l],
                    b: &self.b[l],
                })
                .collect()
        }

        fn pooled(&self) -> Vec<usize> {
            self.gs.iter().map(|g| g.batch * pooled_image(g)).collect()
        }

        /// Block by block on the per-block kernels: each block's output and window positions.
        fn forward_by_blocks(&self, relu: bool) -> (Vec<Vec<f32>>, Vec<Vec<u8>>) {
            let (mut ys, mut idx): (Vec<Vec<f32>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
            for (l, g) in self.gs.iter().enumerate() {
                let input: &[f32] = if l == 0 { &self.x } else { &ys[l - 1] };
                let n = g.batch * pooled_image(g);
                let (mut y, mut i) = (vec![f32::NAN; n], vec![9u8; n]);
                conv2d_pool2_forward(g, input, &self.w[l], Some(&self.b[l]), &mut y, &mut i)
                    .unwrap();
                if relu {
                    relu_in_place(&mut y);
                }
                ys.push(y);
                idx.push(i);
            }
            (ys, idx)
        }

        /// Block by block on the per-block kernels: dx, then each block's dw and db.
        fn backward_by_blocks(
            &self,
            ys: &[Vec<f32>],
            idx: &[Vec<u8>],
            relu: bool,
            dy: &[f32],
        ) -> (Vec<f32>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
            let mut grad = dy.to_vec();
            let (mut dws, mut dbs) = (Vec::new(), Vec::new());
            for (l, g) in self.gs.iter().enumerate().rev() {
                if relu {
                    relu_mask(&mut grad, &ys[l]);
                }
                let input: &[f32] = if l == 0 { &self.x } else { &ys[l - 1] };
                let mut dx = vec![f32::NAN; input.len()];
                let mut dw = vec![f32::NAN; self.w[l].len()];
                let mut db = vec![f32::NAN; g.c_out];
                let (w, i) = (&self.w[l], &idx[l]);
                let (dx_, dw_, db_) = (Some(&mut dx[..]), Some(&mut dw[..]), Some(&mut db[..]));
                conv2d_pool2_backward(g, input, w, &grad, i, dx_, dw_, db_).unwrap();
                dws.insert(0, dw);
                dbs.insert(0, db);
                grad = dx;
            }
            (grad, dws, dbs)
        }
    }

    #[test]
    fn a_stack_computes_what_its_blocks_compute() {
        let mut seed = 7;
        for gs in stacks() {
            let net = Net::new(gs, &mut seed);
            let blocks = net.blocks();
            for relu in [false, true] {
                let (ys, idx) = net.forward_by_blocks(relu);
                let dy = values(ys[ys.len() - 1].len(), &mut seed);
                let (dx, dws, dbs) = net.backward_by_blocks(&ys, &idx, relu, &dy);
                for isa in Isa::supported() {
                    let k = isa.chunk_kernels();
                    let what = format!("{:?}, relu {relu}, {isa:?}", net.gs);
                    let mut sy: Vec<Vec<f32>> =
                        net.pooled().iter().map(|n| vec![f32::NAN; *n]).collect();
                    let mut si: Vec<Vec<u8>> = net.pooled().iter().map(|n| vec![9; *n]).collect();
                    {
                        let mut y_refs: Vec<&mut [f32]> =
                            sy.iter_mut().map(|v| &mut v[..]).collect();
                        let mut i_refs: Vec<&mut [u8]> =
                            si.iter_mut().map(|v| &mut v[..]).collect();
                        forward_on(k, &blocks, &net.x, relu, &mut y_refs, &mut i_refs);
                    }
                    for l in 0..ys.len() {
                        assert!(max_diff(&sy[l], &ys[l]) < 1e-5, "{what}: output {l}");
                        if isa == Isa::detect() {
                            assert_eq!(si[l], idx[l], "{what}: window positions {l}");
                        }
                    }
                    // The backward pass from the same forward results.
                    let y_refs: Vec<&[f32]> = ys.iter().map(|v| &v[..]).collect();
                    let i_refs: Vec<&[u8]> = idx.iter().map(|v| &v[..]).collect();
                    let mut sdx = vec![f32::NAN; net.x.len()];
                    let mut sdw: Vec<Vec<f32>> =
                        net.w.iter().map(|w| vec![f32::NAN; w.len()]).collect();
                    let mut sdb: Vec<Vec<f32>> =
                        net.b.iter().map(|b| vec![f32::NAN; b.len()]).collect();
                    {
                        let mut dw_refs: Vec<&mut [f32]> =
                            sdw.iter_mut().map(|v| &mut v[..]).collect();
                        let mut db_refs: Vec<&mut [f32]> =
                            sdb.iter_mut().map(|v| &mut v[..]).collect();
                        let (x, d) = (&net.x, &dy);
                        backward_on(
                            k,
                            &blocks,
                            x,
                            &y_refs,
                            &i_refs,
                            relu,
                            d,
                            Some(&mut sdx),
                            &mut dw_refs,
                            &mut db_refs,
                        );
                    }
                    assert!(max_diff(&sdx, &dx) < 1e-5, "{what}: dx");
                    for l in 0..ys.len() {
                        assert!(max_diff(&sdw[l], &dws[l]) < 1e-5, "{what}: dw {l}");
                        assert!(max_diff(&sdb[l], &dbs[l]) < 1e-5, "{what}: db {l}");
                    }
                }
            }
        }
    }

    #[test]
    fn stacks_that_do_not_fit_are_refused_without_writing() {
        let mut seed = 3;
        let net = Net::new(stacks().remove(0), &mut seed);
        let pooled = net.pooled();
        let mut ys: Vec<Vec<f32>> = pooled.iter().map(|n| vec![1.5; *n]).collect();
        let mut idx: Vec<Vec<u8>> = pooled.iter().map(|n| vec![9; *n]).collect();
        let mut run = |blocks: &[Block<'_>], x: &[f32], ys: &mut Vec<Vec<f32>>| {
            let mut y_refs: Vec<&mut [f32]> = ys.iter_mut().map(|v| &mut v[..]).collect();
            let mut i_refs: Vec<&mut [u8]> = idx.iter_mut().map(|v| &mut v[..]).collect();
            conv_pool_stack_forward(blocks, x, false, &mut y_refs, &mut i_refs)
        };
        let blocks = net.blocks();
        // Blocks that do not chain: the second block reads 5 channels, not 4.
        let mut broken = blocks.clone();
        broken[1].g.c_in = 4;
        assert!(run(&broken, &net.x, &mut ys).is_none());
        // An input one value short; no blocks at all.
        assert!(run(&blocks, &net.x[1..], &mut ys).is_none());
        assert!(run(&[], &net.x, &mut ys).is_none());
        assert!(ys.iter().flatten().all(|v| *v == 1.5));
        // An output gradient one value short.
        let y_refs: Vec<&[f32]> = ys.iter().map(|v| &v[..]).collect();
        let i_refs: Vec<&[u8]> = idx.iter().map(|v| &v[..]).collect();
        let mut dw: Vec<Vec<f32>> = net.w.iter().map(|w| vec![2.5; w.len()]).collect();
        let mut db: Vec<Vec<f32>> = net.b.iter().map(|b| vec![2.5; b.len()]).collect();
        let mut dw_refs: Vec<&mut [f32]> = dw.iter_mut().map(|v| &mut v[..]).collect();
        let mut db_refs: Vec<&mut [f32]> = db.iter_mut().map(|v| &mut v[..]).collect();
        let refused =
            |dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [&mut [f32]], db: &mut [&mut [f32]]| {
                conv_pool_stack_backward(&blocks, &net.x, &y_refs, &i_refs, false, dy, dx, dw, db)
                    .is_none()
            };
        let dy = vec![0.0; pooled[pooled.len() - 1] - 1];
        assert!(refused(&dy, None, &mut dw_refs, &mut db_refs));
        // A right-sized output gradient with a weight gradient or an input gradient of the
        // wrong length.
        let dy = vec![0.0; pooled[pooled.len() - 1]];
        let mut short = vec![2.5; net.w[1].len() - 1];
        dw_refs[1] = &mut short;
        assert!(refused(&dy, None, &mut dw_refs, &mut db_refs));
        let mut dw_refs: Vec<&mut [f32]> = dw.iter_mut().map(|v| &mut v[..]).collect();
        let mut dx = vec![2.5; net.x.len() + 1];
        assert!(refused(&dy, Some(&mut dx), &mut dw_refs, &mut db_refs));
        assert!(dw.iter().chain(&db).flatten().chain(&dx).all(|v| *v == 2.5));
        assert!(short.iter().all(|v| *v == 2.5));
    }
}
