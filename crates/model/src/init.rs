//! Weight initialisations Burn's `Initializer` does not have: `torch.nn.init.dirac_` and the
//! patch-whitening filters of airbench (the eigenvectors of the training patches'
//! covariance), with the small symmetric eigen-solver they need. Written here because Burn
//! 0.22 has neither and a 12 × 12 Jacobi solver is shorter than a linear-algebra dependency.

use burn::tensor::{Device, Tensor, TensorData};

use crate::ModelConfigError;

/// `torch.nn.init.dirac_(w[:w.size(1)])`: filter `i < in_channels` becomes the identity on
/// input channel `i` (a 1 at the kernel's centre, zeros elsewhere); the other filters keep
/// their values. `weight` is `[out_channels, in_channels, kh, kw]`.
pub fn dirac(weight: Tensor<4>) -> Tensor<4> {
    let [c_out, c_in, kh, kw] = weight.dims();
    let device = weight.device();
    let mut values: Vec<f32> = weight
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    if values.len() != c_out * c_in * kh * kw {
        values = vec![0.0; c_out * c_in * kh * kw];
    }
    let tap = kh / 2 * kw + kw / 2;
    for o in 0..c_out.min(c_in) {
        let filter = &mut values[o * c_in * kh * kw..(o + 1) * c_in * kh * kw];
        filter.fill(0.0);
        filter[o * kh * kw + tap] = 1.0;
    }
    Tensor::from_data(TensorData::new(values, [c_out, c_in, kh, kw]), &device)
}

/// Eigenvalues (descending) and unit eigenvectors (`vectors[i]` belongs to `values[i]`) of the
/// symmetric `n × n` matrix `a` (row-major), by cyclic Jacobi rotations in f64.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut a = a.to_vec();
    a.resize(n * n, 0.0);
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- Jᵀ A J, V <- V J, with J the rotation in the (p, q) plane.
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let vectors = order
        .iter()
        .map(|&i| (0..n).map(|k| v[k * n + i]).collect())
        .collect();
    (values, vectors)
}

/// airbench's whitening filters for a `k × k` convolution, computed from `images`
/// (`[n, channels, h, w]`, already normalised): the covariance `Pᵀ P / m` of all `m` patches
/// `P` (each flattened as `[channel, row, column]`, no mean removed), its eigenvectors `e_i`
/// scaled by `1 / sqrt(λ_i + eps)`, largest eigenvalue first, then the same filters negated:
/// `[2 · channels · k², channels, k, k]`.
pub fn whitening_filters(
    images: Tensor<4>,
    kernel: usize,
    eps: f64,
    device: &Device,
) -> Result<Tensor<4>, ModelConfigError> {
    let [n, c, h, w] = images.dims();
    if kernel == 0 || h < kernel || w < kernel || n == 0 {
        return Err(ModelConfigError::Invalid {
            model: "whitening",
            reason: format!(
                "{kernel}x{kernel} patches need at least one image of at least that size, got \
                 [{n}, {c}, {h}, {w}]"
            ),
        });
    }
    let x: Vec<f32> = images
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ModelConfigError::Invalid {
            model: "whitening",
            reason: format!("cannot read the images back: {e:?}"),
        })?;
    let d = c * kernel * kernel;
    let mut cov = vec![0.0f64; d * d];
    let mut patch = vec![0.0f64; d];
    let (oh, ow) = (h - kernel + 1, w - kernel + 1);
    for img in x.chunks_exact(c * h * w) {
        for y in 0..oh {
            for xo in 0..ow {
                for ch in 0..c {
                    for ky in 0..kernel {
                        for kx in 0..kernel {
                            let at = ch * h * w + (y + ky) * w + xo + kx;
                            patch[(ch * kernel + ky) * kernel + kx] = f64::from(img[at]);
                        }
                    }
                }
                for i in 0..d {
                    for j in 0..d {
                        cov[i * d + j] += patch[i] * patch[j];
                    }
                }
            }
        }
    }
    let m = (n * oh * ow) as f64;
    cov.iter_mut().for_each(|v| *v /= m);
    let (values, vectors) = symmetric_eigen(&cov, d);
    let mut filters = Vec::with_capacity(2 * d * d);
    for sign in [1.0, -1.0] {
        for (value, vector) in values.iter().zip(&vectors) {
            let scale = sign / (value.max(0.0) + eps).sqrt();
            filters.extend(vector.iter().map(|&e| (e * scale) as f32));
        }
    }
    Ok(Tensor::from_data(
        TensorData::new(filters, [2 * d, c, kernel, kernel]),
        device,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn eigen_reconstructs_the_matrix() {
        // A random symmetric 5 × 5 matrix: A = Σ λ_i e_i e_iᵀ and the e_i orthonormal.
        let n = 5;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = ((i * 7 + j * 3) % 11) as f64 - 4.5;
                a[i * n + j] = v;
                a[j * n + i] = v;
            }
        }
        let (values, vectors) = symmetric_eigen(&a, n);
        assert!(values.windows(2).all(|w| w[0] >= w[1]));
        for i in 0..n {
            for j in 0..n {
                let back: f64 = (0..n)
                    .map(|k| values[k] * vectors[k][i] * vectors[k][j])
                    .sum();
                assert!((back - a[i * n + j]).abs() < 1e-9, "({i}, {j})");
                let dot: f64 = (0..n).map(|k| vectors[i][k] * vectors[j][k]).sum();
                assert!((dot - f64::from(u8::from(i == j))).abs() < 1e-9);
            }
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn whitening_filters_whiten_the_patches() {
        let device = Device::flex();
        // Correlated 2-channel images: channel 1 = 0.8 channel 0 + noise.
        let (n, c, h, w) = (6, 2, 5, 5);
        let mut x = Vec::new();
        for i in 0..n * h * w {
            let a = ((i * 2_654_435_761usize) >> 7 & 255) as f32 / 64.0 - 2.0;
            let b = ((i * 40_503usize) >> 3 & 255) as f32 / 256.0 - 0.5;
            x.push((a, 0.8 * a + b));
        }
        let mut data = vec![0.0f32; n * c * h * w];
        for img in 0..n {
            for p in 0..h * w {
                let (a, b) = x[img * h * w + p];
                data[img * c * h * w + p] = a;
                data[img * c * h * w + h * w + p] = b;
            }
        }
        let images = Tensor::<4>::from_data(TensorData::new(data, [n, c, h, w]), &device);
        let filters = whitening_filters(images.clone(), 2, 0.0, &device).unwrap();
        assert_eq!(filters.dims(), [16, 2, 2, 2]);
        // The first 8 filters' responses have the identity as their second moment.
        let out = burn::tensor::module::conv2d(
            images,
            filters.narrow(0, 0, 8),
            None,
            burn::tensor::ops::ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        ); // [n, 8, 4, 4]
        let r: Vec<f32> = out
            .permute([0, 2, 3, 1])
            .reshape([n * 16, 8])
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        for i in 0..8 {
            for j in 0..8 {
                let m: f64 = r
                    .chunks(8)
                    .map(|row| f64::from(row[i]) * f64::from(row[j]))
                    .sum::<f64>()
                    / (n * 16) as f64;
                let want = f64::from(u8::from(i == j));
                assert!((m - want).abs() < 1e-3, "moment ({i}, {j}) = {m}");
            }
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn dirac_is_the_identity_convolution() {
        let device = Device::flex();
        let w = Tensor::<4>::ones([5, 3, 3, 3], &device);
        let d: Vec<f32> = dirac(w).into_data().try_into_vec::<f32>().unwrap();
        for o in 0..5 {
            for i in 0..3 {
                for t in 0..9 {
                    let v = d[((o * 3 + i) * 9) + t];
                    let want = if o >= 3 || (o == i && t == 4) {
                        1.0
                    } else {
                        0.0
                    };
                    assert_eq!(v, want, "filter {o}, channel {i}, tap {t}");
                }
            }
        }
    }
}
