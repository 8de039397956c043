//! Kernel tests: every op against its definition, on every instruction set the CPU has.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use super::*;

/// Deterministic values in [-0.5, 0.5).
pub(super) fn values(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// The definition, in f64: y[n, co, oy, ox] = b[co] + Σ x[n, ci, oy+kh−p, ox+kw−p]·w[co, ci, kh, kw].
pub(super) fn naive_forward(g: &ConvGeometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
    let mut y = vec![0.0; g.batch * g.c_out * oh * ow];
    for n in 0..g.batch {
        for co in 0..g.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = f64::from(b[co]);
                    for ci in 0..g.c_in {
                        for kh in 0..k {
                            for kw in 0..k {
                                let (iy, ix) = (oy + kh, ox + kw);
                                if iy < g.pad || ix < g.pad {
                                    continue;
                                }
                                let (iy, ix) = (iy - g.pad, ix - g.pad);
                                if iy >= g.height || ix >= g.width {
                                    continue;
                                }
                                let xv = x[((n * g.c_in + ci) * g.height + iy) * g.width + ix];
                                let wv = w[((co * g.c_in + ci) * k + kh) * k + kw];
                                s += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    y[((n * g.c_out + co) * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
    }
    y
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum::<f64>() as f32
}

pub(super) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Odd sizes on purpose: channels that are not multiples of any tile, widths that are not
/// multiples of MR, padding larger than the kernel's half, more images than tasks.
const GEOMETRIES: [ConvGeometry; 6] = [
    ConvGeometry {
        batch: 3,
        c_in: 3,
        c_out: 5,
        height: 7,
        width: 9,
        kernel: 5,
        pad: 2,
    },
    ConvGeometry {
        batch: 2,
        c_in: 4,
        c_out: 33,
        height: 6,
        width: 6,
        kernel: 3,
        pad: 0,
    },
    ConvGeometry {
        batch: 5,
        c_in: 2,
        c_out: 7,
        height: 5,
        width: 4,
        kernel: 5,
        pad: 4,
    },
    ConvGeometry {
        batch: 17,
        c_in: 32,
        c_out: 64,
        height: 8,
        width: 8,
        kernel: 5,
        pad: 2,
    },
    // Output rows 32 wide: the fused first-layer kernel where the CPU has one.
    ConvGeometry {
        batch: 2,
        c_in: 3,
        c_out: 8,
        height: 7,
        width: 32,
        kernel: 5,
        pad: 2,
    },
    // A 2 × 2 map: several images share each pass over the weights, with a remainder.
    ConvGeometry {
        batch: 19,
        c_in: 16,
        c_out: 40,
        height: 2,
        width: 2,
        kernel: 3,
        pad: 1,
    },
];

#[test]
fn flipped_rows_are_the_rows_of_the_flipped_weights() {
    let mut seed = 11;
    for g in GEOMETRIES {
        let w = values(g.c_out * g.k_dim(), &mut seed);
        for nr in [8, 16, 32] {
            let want = weight_rows(&g.transposed(), &flipped(&g, &w), nr);
            assert_eq!(flipped_rows(&g, &w, nr).get(), want.get(), "{g:?}, nr {nr}");
        }
    }
}

#[test]
fn forward_matches_the_definition() {
    let mut seed = 1;
    for g in GEOMETRIES {
        let x = values(g.batch * g.c_in * g.height * g.width, &mut seed);
        let w = values(g.c_out * g.c_in * g.kernel * g.kernel, &mut seed);
        let b = values(g.c_out, &mut seed);
        let mut y = vec![f32::NAN; g.batch * g.c_out * g.out_height() * g.out_width()];
        conv2d_forward(&g, &x, &w, Some(&b), &mut y).unwrap();
        let diff = max_diff(&y, &naive_forward(&g, &x, &w, &b));
        assert!(diff < 1e-4, "{g:?}: {diff}");
    }
}

/// Gradients by linearity: ⟨dy, conv(e_i)⟩ for each unit input e_i (small shapes only).
#[test]
fn gradients_match_the_definition() {
    let mut seed = 2;
    for g in GEOMETRIES[..3].iter().chain(&GEOMETRIES[5..]) {
        let x = values(g.batch * g.c_in * g.height * g.width, &mut seed);
        let w = values(g.c_out * g.c_in * g.kernel * g.kernel, &mut seed);
        let dy = values(
            g.batch * g.c_out * g.out_height() * g.out_width(),
            &mut seed,
        );
        let zero = vec![0.0; g.c_out];
        let unit = |n: usize, i: usize| {
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            e
        };
        let mut dw = vec![f32::NAN; w.len()];
        conv2d_weight_grad(g, &x, &dy, &mut dw).unwrap();
        let dw_ref: Vec<f32> = (0..w.len())
            .map(|i| dot(&dy, &naive_forward(g, &x, &unit(w.len(), i), &zero)))
            .collect();
        assert!(max_diff(&dw, &dw_ref) < 1e-4, "{g:?}: dw");
        let mut db = vec![f32::NAN; g.c_out];
        conv2d_bias_grad(g, &dy, &mut db).unwrap();
        let db_ref: Vec<f32> = (0..g.c_out)
            .map(|i| {
                dot(
                    &dy,
                    &naive_forward(
                        g,
                        &vec![0.0; x.len()],
                        &vec![0.0; w.len()],
                        &unit(g.c_out, i),
                    ),
                )
            })
            .collect();
        assert!(max_diff(&db, &db_ref) < 1e-4, "{g:?}: db");
        if g.pad < g.kernel {
            let mut dx = vec![f32::NAN; x.len()];
            conv2d_input_grad(g, &dy, &w, &mut dx).unwrap();
            let dx_ref: Vec<f32> = (0..x.len())
                .map(|i| dot(&dy, &naive_forward(g, &unit(x.len(), i), &w, &zero)))
                .collect();
            assert!(max_diff(&dx, &dx_ref) < 1e-4, "{g:?}: dx");
        } else {
            let mut dx = vec![0.0; x.len()];
            assert!(conv2d_input_grad(g, &dy, &w, &mut dx).is_none());
        }
    }
}

/// The fused conv + pool against the dense convolution pooled by hand, and its backward
/// against the dense gradients of the unpooled output gradient.
#[test]
fn pooled_forward_and_backward_match_the_unfused_ops() {
    let mut seed = 3;
    for g in [GEOMETRIES[0], GEOMETRIES[1], GEOMETRIES[3], GEOMETRIES[4]] {
        let x = values(g.batch * g.c_in * g.height * g.width, &mut seed);
        let w = values(g.c_out * g.c_in * g.kernel * g.kernel, &mut seed);
        let b = values(g.c_out, &mut seed);
        let (oh, ow) = (g.out_height(), g.out_width());
        let (ph, pw) = pooled_size(&g);
        let y = naive_forward(&g, &x, &w, &b);
        let n = g.batch * g.c_out * ph * pw;
        let (mut yp, mut idx) = (vec![f32::NAN; n], vec![9u8; n]);
        conv2d_pool2_forward(&g, &x, &w, Some(&b), &mut yp, &mut idx).unwrap();
        let dyp = values(n, &mut seed);
        let mut dconv = vec![0.0; y.len()];
        for plane in 0..g.batch * g.c_out {
            for py in 0..ph {
                for px in 0..pw {
                    let at = |k: usize| plane * oh * ow + (2 * py + k / 2) * ow + 2 * px + k % 2;
                    let best = (0..4).fold(0, |b, k| if y[at(k)] > y[at(b)] { k } else { b });
                    let p = (plane * ph + py) * pw + px;
                    assert_eq!(usize::from(idx[p]), best, "{g:?}: window {p}");
                    assert!((yp[p] - y[at(best)]).abs() < 1e-4, "{g:?}: value {p}");
                    dconv[at(best)] = dyp[p];
                }
            }
        }
        let (mut dx, mut dw, mut db) = (
            vec![f32::NAN; x.len()],
            vec![f32::NAN; w.len()],
            vec![f32::NAN; g.c_out],
        );
        conv2d_pool2_backward(
            &g,
            &x,
            &w,
            &dyp,
            &idx,
            Some(&mut dx),
            Some(&mut dw),
            Some(&mut db),
        )
        .unwrap();
        let (mut dx_ref, mut dw_ref, mut db_ref) =
            (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; g.c_out]);
        conv2d_input_grad(&g, &dconv, &w, &mut dx_ref).unwrap();
        conv2d_weight_grad(&g, &x, &dconv, &mut dw_ref).unwrap();
        conv2d_bias_grad(&g, &dconv, &mut db_ref).unwrap();
        assert!(max_diff(&dx, &dx_ref) < 1e-4, "{g:?}: dx");
        assert!(max_diff(&dw, &dw_ref) < 1e-4, "{g:?}: dw");
        assert!(max_diff(&db, &db_ref) < 1e-4, "{g:?}: db");
    }
}

#[test]
fn pooling_takes_the_first_maximum_and_propagates_nan() {
    let g = ConvGeometry {
        batch: 1,
        c_in: 1,
        c_out: 1,
        height: 2,
        width: 4,
        kernel: 1,
        pad: 0,
    };
    // A 1×1 identity convolution, so the pooled values are the inputs.
    let x = [1.0, 3.0, f32::NAN, 0.0, 3.0, 2.0, 5.0, 5.0];
    let (mut y, mut idx) = ([0.0; 2], [0u8; 2]);
    conv2d_pool2_forward(&g, &x, &[1.0], None, &mut y, &mut idx).unwrap();
    assert_eq!(y[0], 3.0);
    assert_eq!(idx[0], 1, "the first of two equal maxima wins");
    assert!(y[1].is_nan() && idx[1] == 0, "NaN wins over any number");
}

#[test]
fn the_instruction_set_cap_names_a_set_or_is_refused() {
    assert_eq!(Isa::cap(None), Ok(Isa::Avx512), "unset: no cap");
    assert_eq!(Isa::cap(Some("avx512")), Ok(Isa::Avx512));
    assert_eq!(Isa::cap(Some("avx2")), Ok(Isa::Avx2));
    assert_eq!(Isa::cap(Some("portable")), Ok(Isa::Portable));
    assert_eq!(Isa::cap(Some("AVX2")), Err("AVX2"));
    assert_eq!(Isa::cap(Some("sse4")), Err("sse4"));
    // Whatever the cap, the choice is one this CPU supports.
    assert!(Isa::supported().contains(&Isa::detect()));
}

#[test]
fn pooling_rows_32_wide_follows_the_same_rules() {
    // A 1×1 convolution of one input channel into 4 (scaled by 1, 2, −1, 0.5), rows 32
    // wide (the fused first-layer kernel where the CPU has one): ties and NaNs in every
    // position of the windows, and the order flipped in one channel.
    let g = ConvGeometry {
        batch: 1,
        c_in: 1,
        c_out: 4,
        height: 4,
        width: 32,
        kernel: 1,
        pad: 0,
    };
    let x: Vec<f32> = (0..4 * 32)
        .map(|i: usize| match (i * 7 + i / 5) % 11 {
            0 => f32::NAN,
            v => (v % 3) as f32,
        })
        .collect();
    let w = [1.0f32, 2.0, -1.0, 0.5];
    let (ph, pw) = pooled_size(&g);
    let n = 4 * ph * pw;
    for isa in Isa::supported() {
        let (mut y, mut idx) = (vec![0.0; n], vec![9u8; n]);
        forward_on(
            isa,
            &g,
            Maps::Dense(&x),
            &w,
            None,
            Out::Pooled(&mut y, &mut idx),
        );
        check_pooling_rules(isa, &x, &w, ph, pw, &y, &idx);
    }
}

/// Checks pooled values of the 1×1, one-input-channel convolution of
/// `pooling_rows_32_wide_follows_the_same_rules` against the rules.
fn check_pooling_rules(
    isa: Isa,
    x: &[f32],
    w: &[f32],
    ph: usize,
    pw: usize,
    y: &[f32],
    idx: &[u8],
) {
    for (c, wc) in w.iter().enumerate() {
        for py in 0..ph {
            for px in 0..pw {
                let v = |k: usize| wc * x[(2 * py + k / 2) * 32 + 2 * px + k % 2];
                let mut best = 0;
                for k in 1..4 {
                    if v(k) > v(best) || (v(k).is_nan() && !v(best).is_nan()) {
                        best = k;
                    }
                }
                let p = (c * ph + py) * pw + px;
                assert_eq!(usize::from(idx[p]), best, "{isa:?}: window {p}");
                let same = y[p] == v(best) || (y[p].is_nan() && v(best).is_nan());
                assert!(same, "{isa:?}: value {p}: {} vs {}", y[p], v(best));
            }
        }
    }
}

#[test]
fn wrong_lengths_are_refused_without_writing() {
    let g = GEOMETRIES[0];
    let x = vec![0.0; g.batch * g.c_in * g.height * g.width];
    let w = vec![0.0; g.c_out * g.c_in * g.kernel * g.kernel];
    let mut y = vec![7.0; g.batch * g.c_out * g.out_height() * g.out_width()];
    assert!(conv2d_forward(&g, &x[1..], &w, None, &mut y).is_none());
    assert!(conv2d_forward(&g, &x, &w[1..], None, &mut y).is_none());
    assert!(conv2d_forward(&g, &x, &w, Some(&[0.0]), &mut y).is_none());
    assert!(y.iter().all(|v| *v == 7.0));
    let too_big = ConvGeometry { kernel: 20, ..g };
    assert!(!too_big.is_valid());
}

/// The weight and input gradients behind a pooling from the windows' maxima alone
/// ([`weight_grad_points`], [`input_grad_points`]) against the dense ones of the unpooled
/// gradient, on every instruction set: channel counts the points kernels take on some
/// sets and not on others, odd sizes (pooling drops the last row and column), several
/// tasks.
#[test]
fn gradients_from_window_maxima_match_the_dense_ones() {
    let mut seed = 21;
    // The last two have no pooling window: nothing to visit, every gradient zero.
    let shapes = [
        (8, 7, 9),
        (16, 8, 8),
        (32, 16, 16),
        (64, 5, 6),
        (16, 1, 6),
        (32, 6, 1),
    ];
    for (c_in, height, width) in shapes {
        let g = ConvGeometry {
            batch: 11,
            c_in,
            c_out: 12,
            height,
            width,
            kernel: 5,
            pad: 2,
        };
        let (oh, ow) = (g.out_height(), g.out_width());
        let (ph, pw) = pooled_size(&g);
        let x = values(g.batch * g.in_image(), &mut seed);
        let pooled = g.batch * g.c_out * ph * pw;
        let dyp = values(pooled, &mut seed);
        let idx: Vec<u8> = values(pooled, &mut seed)
            .iter()
            .map(|v| ((v + 0.5) * 4.0) as u8 & 3)
            .collect();
        let mut dense = vec![0.0; g.batch * g.out_image()];
        for (p, (v, k)) in dyp.iter().zip(&idx).enumerate() {
            let (plane, py, px) = (p / (ph * pw), p / pw % ph, p % pw);
            let k = usize::from(*k);
            dense[(plane * oh + 2 * py + k / 2) * ow + 2 * px + k % 2] = *v;
        }
        let w = values(g.c_out * g.k_dim(), &mut seed);
        for isa in Isa::supported() {
            let mut dw = vec![f32::NAN; g.c_out * g.k_dim()];
            let mut dw_ref = dw.clone();
            weight_grad_on(isa, &g, &x, Maps::Unpooled(&dyp, &idx), &mut dw);
            weight_grad_on(isa, &g, &x, Maps::Dense(&dense), &mut dw_ref);
            assert!(max_diff(&dw, &dw_ref) < 1e-4, "{isa:?} {g:?}: dw");
            let mut dx = vec![f32::NAN; x.len()];
            let mut dx_ref = dx.clone();
            input_grad_on(isa, &g, Maps::Unpooled(&dyp, &idx), &w, &mut dx).unwrap();
            input_grad_on(isa, &g, Maps::Dense(&dense), &w, &mut dx_ref).unwrap();
            assert!(max_diff(&dx, &dx_ref) < 1e-4, "{isa:?} {g:?}: dx");
        }
    }
}

#[test]
fn every_instruction_set_this_cpu_has_agrees() {
    // Each instruction set this CPU has, against the plain-Rust kernels: forward, fused
    // pooled forward and weight gradient (the general tiles, and the kernels for rows 32
    // wide where there are some).
    let mut seed = 4;
    for g in [GEOMETRIES[3], GEOMETRIES[4]] {
        let x = values(g.batch * g.c_in * g.height * g.width, &mut seed);
        let w = values(g.c_out * g.c_in * g.kernel * g.kernel, &mut seed);
        let n = g.batch * g.c_out * g.out_height() * g.out_width();
        let dy = values(n, &mut seed);
        let (ph, pw) = pooled_size(&g);
        let pooled = g.batch * g.c_out * ph * pw;
        let run = |isa| {
            let (mut y, mut dw) = (vec![f32::NAN; n], vec![f32::NAN; w.len()]);
            let (mut yp, mut idx) = (vec![f32::NAN; pooled], vec![9u8; pooled]);
            forward_on(isa, &g, Maps::Dense(&x), &w, None, Out::Conv(&mut y));
            let out = Out::Pooled(&mut yp, &mut idx);
            forward_on(isa, &g, Maps::Dense(&x), &w, None, out);
            weight_grad_on(isa, &g, &x, Maps::Dense(&dy), &mut dw);
            (y, yp, idx, dw)
        };
        let (y_ref, yp_ref, idx_ref, dw_ref) = run(Isa::Portable);
        for isa in Isa::supported() {
            let (y, yp, idx, dw) = run(isa);
            assert!(max_diff(&y, &y_ref) < 1e-4, "{isa:?} {g:?}: forward");
            assert!(max_diff(&yp, &yp_ref) < 1e-4, "{isa:?} {g:?}: pooled");
            assert_eq!(idx, idx_ref, "{isa:?} {g:?}: window positions");
            assert!(
                max_diff(&dw, &dw_ref) < 1e-4,
                "{isa:?} {g:?}: weight gradient"
            );
        }
    }
    eprintln!("instruction sets checked: {:?}", Isa::supported());
}
