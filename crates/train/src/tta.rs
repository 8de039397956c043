//! Test-time augmentation for any [`ImageClassifier`]: the logits averaged over mirrored and
//! shifted views of each test image (airbench's `tta_level` 1 and 2). Burn has none; the
//! views are a few tensor ops, so they run on whatever device the model is on.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};
use torchlet_data::DataLoader;
use torchlet_model::ImageClassifier;

use crate::error::TrainError;

/// Which views are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tta {
    /// The image alone.
    #[default]
    None,
    /// The image and its mirror image, weighted equally (2 views).
    Mirror,
    /// Half the weight on the image and its mirror, half on the image shifted one pixel up
    /// and left and one pixel down and right (reflect-padded), each with its mirror (6 views,
    /// airbench94's default).
    MirrorTranslate,
}

impl Tta {
    /// Number of forward passes per image.
    pub fn views(self) -> usize {
        match self {
            Tta::None => 1,
            Tta::Mirror => 2,
            Tta::MirrorTranslate => 6,
        }
    }
}

/// `x` shifted by one pixel along `dim` (2: rows, 3: columns), reflect-padded:
/// `forward = true` takes rows `1..` and repeats the second-to-last at the end
/// (`F.pad(x, 1, mode="reflect")` cropped at offset 2), otherwise repeats row 1 at the start
/// and drops the last (offset 0).
fn shift(x: Tensor<4>, dim: usize, forward: bool) -> Tensor<4> {
    let n = x.dims()[dim];
    if n < 2 {
        return x;
    }
    if forward {
        Tensor::cat(
            vec![x.clone().narrow(dim, 1, n - 1), x.narrow(dim, n - 2, 1)],
            dim,
        )
    } else {
        Tensor::cat(
            vec![x.clone().narrow(dim, 1, 1), x.narrow(dim, 0, n - 1)],
            dim,
        )
    }
}

/// The model's logits for `images` (`[batch, channels, h, w]`), averaged over `tta`'s views.
pub fn tta_logits<M: ImageClassifier>(model: &M, images: Tensor<4>, tta: Tta) -> Tensor<2> {
    let mirror = |x: Tensor<4>| {
        let flipped = x.clone().flip([3]);
        model.forward(x).add(model.forward(flipped)).mul_scalar(0.5)
    };
    match tta {
        Tta::None => model.forward(images),
        Tta::Mirror => mirror(images),
        Tta::MirrorTranslate => {
            let up_left = shift(shift(images.clone(), 2, false), 3, false);
            let down_right = shift(shift(images.clone(), 2, true), 3, true);
            let shifted = mirror(up_left).add(mirror(down_right)).mul_scalar(0.5);
            mirror(images).mul_scalar(0.5).add(shifted.mul_scalar(0.5))
        }
    }
}

/// Mean cross-entropy and accuracy of `model` (in eval mode: pass `model.valid()`) over every
/// batch of `loader`, with `tta`'s views.
pub fn evaluate_tta<M: ImageClassifier>(
    model: &M,
    loader: &DataLoader,
    tta: Tta,
) -> Result<(f64, f64), TrainError> {
    let loss_fn = CrossEntropyLossConfig::new().init(loader.device());
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0i64, 0usize);
    let mut batches = loader.iter_epoch(0);
    while let Some(item) = batches.try_next() {
        let item = item.map_err(|source| TrainError::Loader {
            split: "test",
            source,
        })?;
        let n = item.targets.dims()[0];
        let logits = tta_logits(model, item.images, tta);
        let loss = loss_fn
            .forward(logits.clone(), item.targets.clone())
            .into_scalar::<f64>();
        correct += count_correct(logits, item.targets);
        loss_sum += loss * n as f64;
        seen += n;
    }
    Ok((
        loss_sum / seen.max(1) as f64,
        correct as f64 / seen.max(1) as f64,
    ))
}

fn count_correct(logits: Tensor<2>, targets: Tensor<1, Int>) -> i64 {
    let predicted = logits.argmax(1).flatten::<1>(0, 1);
    predicted.equal(targets).int().sum().into_scalar::<i64>()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use torchlet_model::SeedConvNetConfig;

    fn values(x: Tensor<4>) -> Vec<f32> {
        x.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn shifts_are_reflect_padded_crops() {
        // x = torch.arange(4.).view(1, 1, 1, 4); p = F.pad(x, (1, 1), mode="reflect")
        // p[..., 2:6] -> [1, 2, 3, 2];  p[..., 0:4] -> [1, 0, 1, 2]
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0f32, 1., 2., 3.], [1, 1, 1, 4]),
            &device,
        );
        assert_eq!(values(shift(x.clone(), 3, true)), [1., 2., 3., 2.]);
        assert_eq!(values(shift(x.clone(), 3, false)), [1., 0., 1., 2.]);
        let rows = x.reshape([1, 1, 4, 1]);
        assert_eq!(values(shift(rows, 2, true)), [1., 2., 3., 2.]);
    }

    #[test]
    fn views_average_the_logits() {
        let device = Device::flex();
        let model = SeedConvNetConfig::new().init(&device);
        let data: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|i| ((i * 37) % 101) as f32 / 101.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [2, 3, 32, 32]), &device);
        let plain = tta_logits(&model, x.clone(), Tta::None);
        let flipped = model.forward(x.clone().flip([3]));
        let mirror = tta_logits(&model, x.clone(), Tta::Mirror);
        let expected = plain.clone().add(flipped).mul_scalar(0.5);
        let diff = mirror.sub(expected).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "mirror differs by {diff}");
        let all = tta_logits(&model, x, Tta::MirrorTranslate);
        assert_eq!(all.dims(), [2, 10]);
        assert_eq!(Tta::MirrorTranslate.views(), 6);
        // A constant image looks the same in every view.
        let c = Tensor::<4>::full([1, 3, 32, 32], 0.25, &device);
        let diff = tta_logits(&model, c.clone(), Tta::MirrorTranslate)
            .sub(model.forward(c))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-5, "constant image differs by {diff}");
    }
}
