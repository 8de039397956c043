//! Transforms, as in `torchvision.transforms`: `RandomCrop`, `RandomHorizontalFlip`,
//! `ToTensor`, `Normalize`, `Compose`.
//!
//! Augmentations work on `u8` CHW images; `ToTensor` (divide by 255) and `Normalize`
//! (`(x - mean) / std`, per channel) are fused into one pass that writes the `f32` batch.
//! Random transforms draw from an [`Rng`] that the loader seeds from
//! `(seed, epoch, item index)`, so a run is reproducible whatever the number of workers.

use crate::dataset::ImageShape;
use crate::error::{DataError, Result};

/// CIFAR-10's per-channel training-set mean (the usual `Normalize` preset).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10's per-channel training-set standard deviation.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// One step of a [`Compose`] pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// `RandomCrop(size, padding)`: zero-pad each side by `padding`, then crop `size x size`
    /// at a random position.
    RandomCrop {
        /// Output height and width.
        size: usize,
        /// Zero padding added on each side first.
        padding: usize,
    },
    /// `RandomCrop((height, width), padding)`: zero-pad each side by `padding`, then crop
    /// `height x width` at a random position (for images that are not square).
    RandomCropRect {
        /// Output height.
        height: usize,
        /// Output width.
        width: usize,
        /// Zero padding added on each side first.
        padding: usize,
    },
    /// `RandomHorizontalFlip(p)`: mirror left-right with probability `p`.
    RandomHorizontalFlip {
        /// Probability of a flip.
        p: f64,
    },
    /// Shift by up to `pixels` in each direction: reflect-pad each side by `pixels`, then
    /// crop the original size at a random position (airbench's `translate`; the image keeps
    /// its size and no zeros come in). `pixels` must be below the image's height and width.
    RandomTranslate {
        /// Largest shift, in pixels.
        pixels: usize,
    },
    /// Horizontal flips that alternate per epoch: each image gets a coin drawn once for the
    /// run (from the loader's seed and its index); it is flipped on even epochs (0, 2, …)
    /// when the coin says so and on odd epochs when it does not, so every image is seen both
    /// ways every two epochs (airbench's alternating flip). Outside a loader (no epoch), a
    /// random flip with `p = 0.5`.
    AlternatingHorizontalFlip,
    /// `ToTensor()`: `u8` in `[0, 255]` to `f32` in `[0, 1]` (exactly `byte / 255`).
    ToTensor,
    /// `Normalize(mean, std)`: `(x - mean[c]) / std[c]` per channel.
    Normalize {
        /// Per-channel mean.
        mean: Vec<f32>,
        /// Per-channel standard deviation.
        std: Vec<f32>,
    },
}

impl Transform {
    /// `RandomCrop(size, padding=padding)`.
    pub fn random_crop(size: usize, padding: usize) -> Self {
        Transform::RandomCrop { size, padding }
    }

    /// `RandomCrop((height, width), padding=padding)`: [`RandomCrop`](Transform::RandomCrop)
    /// when `height == width`, else [`RandomCropRect`](Transform::RandomCropRect).
    pub fn random_crop_hw(height: usize, width: usize, padding: usize) -> Self {
        if height == width {
            Transform::RandomCrop {
                size: height,
                padding,
            }
        } else {
            Transform::RandomCropRect {
                height,
                width,
                padding,
            }
        }
    }

    /// The crop's output `(height, width)` and padding, for either crop step.
    fn crop(&self) -> Option<(usize, usize, usize)> {
        match *self {
            Transform::RandomCrop { size, padding } => Some((size, size, padding)),
            Transform::RandomCropRect {
                height,
                width,
                padding,
            } => Some((height, width, padding)),
            _ => None,
        }
    }

    /// `RandomHorizontalFlip()` with torchvision's default `p = 0.5`.
    pub fn random_horizontal_flip() -> Self {
        Transform::RandomHorizontalFlip { p: 0.5 }
    }

    /// `ToTensor()`.
    pub fn to_tensor() -> Self {
        Transform::ToTensor
    }

    /// [`RandomTranslate`](Transform::RandomTranslate) by up to `pixels`.
    pub fn random_translate(pixels: usize) -> Self {
        Transform::RandomTranslate { pixels }
    }

    /// `Normalize(mean, std)`.
    pub fn normalize(mean: impl Into<Vec<f32>>, std: impl Into<Vec<f32>>) -> Self {
        Transform::Normalize {
            mean: mean.into(),
            std: std.into(),
        }
    }

    /// `Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))`: maps `[0, 1]` to `[-1, 1]`.
    pub fn normalize_half() -> Self {
        Self::normalize([0.5; 3], [0.5; 3])
    }

    /// `Normalize` with CIFAR-10's own mean and standard deviation.
    pub fn normalize_cifar10() -> Self {
        Self::normalize(CIFAR10_MEAN, CIFAR10_STD)
    }

    fn is_augmentation(&self) -> bool {
        matches!(
            self,
            Transform::RandomCrop { .. }
                | Transform::RandomCropRect { .. }
                | Transform::RandomHorizontalFlip { .. }
                | Transform::RandomTranslate { .. }
                | Transform::AlternatingHorizontalFlip
        )
    }
}

/// SplitMix64's increment, 2⁶⁴ divided by the golden ratio.
pub const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: 64 well-mixed bits of `z` (also a hash of a seed and a
/// counter: `mix64(seed ^ n.wrapping_mul(GOLDEN_GAMMA))`).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small, fast, seedable random generator (SplitMix64) for augmentation.
///
/// Its sequence is fixed by this crate, not by a dependency's version, so a seed gives the same
/// augmentations on every machine and release.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for one item of one epoch, independent of the order items are processed in.
    pub fn for_item(seed: u64, epoch: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ 0x5851_f42d_4c95_7f2d);
        let a = r.next_u64() ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut r = Rng(a);
        Rng(r.next_u64() ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// A uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift; the bias is below 2^-32 for the small n used here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Shuffles a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A validated pipeline: augmentations on `u8`, then `ToTensor`, then optional `Normalize`.
///
/// `Compose::new` checks the order (augmentations before `ToTensor`, `Normalize` after it) and
/// that `ToTensor` is present, as a batch of images must become a float tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Compose {
    steps: Vec<Transform>,
    /// Per-channel `(mean, std)` of the Normalize step, if any.
    norm: Option<(Vec<f32>, Vec<f32>)>,
}

impl Default for Compose {
    fn default() -> Self {
        Self::to_tensor()
    }
}

impl Compose {
    /// Checks and builds a pipeline.
    pub fn new(steps: Vec<Transform>) -> Result<Self> {
        let to_tensor = steps
            .iter()
            .position(|t| *t == Transform::ToTensor)
            .ok_or_else(|| {
                DataError::InvalidConfig("Compose needs a ToTensor step to make a batch".into())
            })?;
        let mut norm = None;
        for (i, t) in steps.iter().enumerate() {
            match t {
                Transform::ToTensor if i != to_tensor => {
                    return Err(DataError::InvalidConfig("ToTensor appears twice".into()));
                }
                t if t.is_augmentation() && i > to_tensor => {
                    return Err(DataError::InvalidConfig(format!(
                        "{t:?} works on u8 images and must come before ToTensor"
                    )));
                }
                Transform::Normalize { .. } if i < to_tensor => {
                    return Err(DataError::InvalidConfig(
                        "Normalize must come after ToTensor".into(),
                    ));
                }
                Transform::Normalize { mean, std } => {
                    if mean.len() != std.len() || mean.is_empty() {
                        return Err(DataError::InvalidConfig(format!(
                            "Normalize needs one mean and one std per channel, got {} and {}",
                            mean.len(),
                            std.len()
                        )));
                    }
                    if std.iter().any(|&s| !(s.is_finite() && s != 0.0)) {
                        return Err(DataError::InvalidConfig(format!(
                            "Normalize std must be finite and non-zero, got {std:?}"
                        )));
                    }
                    if norm.is_some() {
                        return Err(DataError::InvalidConfig(
                            "only one Normalize step is supported".into(),
                        ));
                    }
                    norm = Some((mean.clone(), std.clone()));
                }
                t if t.crop().is_some_and(|(h, w, _)| h == 0 || w == 0) => {
                    return Err(DataError::InvalidConfig(format!(
                        "{t:?}: the crop's height and width must be > 0"
                    )));
                }
                Transform::RandomTranslate { pixels: 0 } => {
                    return Err(DataError::InvalidConfig(
                        "RandomTranslate needs pixels > 0".into(),
                    ));
                }
                Transform::RandomHorizontalFlip { p } if !(0.0..=1.0).contains(p) => {
                    return Err(DataError::InvalidConfig(format!(
                        "RandomHorizontalFlip p must be in [0, 1], got {p}"
                    )));
                }
                _ => {}
            }
        }
        Ok(Self { steps, norm })
    }

    /// Just `ToTensor()`: the tutorial's pipeline.
    pub fn to_tensor() -> Self {
        Self {
            steps: vec![Transform::ToTensor],
            norm: None,
        }
    }

    /// `RandomCrop(32, padding=4)`, `RandomHorizontalFlip()`, `ToTensor()`: the standard
    /// CIFAR-10 augmentation, for 32 × 32 images (it crops larger ones to 32 × 32; for
    /// images of other sizes see [`augment_for`](Self::augment_for)).
    pub fn cifar10_augment() -> Self {
        Self::augment_for(ImageShape::CIFAR)
    }

    /// The CIFAR-10 augmentation for images of `shape`: `RandomCrop((height, width),
    /// padding=4)` (shifts of up to 4 pixels, the image keeps its size),
    /// `RandomHorizontalFlip()`, `ToTensor()`. [`cifar10_augment`](Self::cifar10_augment) for
    /// 3 × 32 × 32.
    pub fn augment_for(shape: ImageShape) -> Self {
        Self {
            steps: vec![
                Transform::random_crop_hw(shape.height, shape.width, 4),
                Transform::random_horizontal_flip(),
                Transform::ToTensor,
            ],
            norm: None,
        }
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Transform] {
        &self.steps
    }

    /// Whether any step is random.
    pub fn is_random(&self) -> bool {
        self.steps.iter().any(Transform::is_augmentation)
    }

    /// The image shape this pipeline produces from `input`, or an error if it cannot apply.
    pub fn output_shape(&self, input: ImageShape) -> Result<ImageShape> {
        let mut shape = input;
        for t in &self.steps {
            if let Some((height, width, padding)) = t.crop() {
                let fits = |crop: usize, side: usize| {
                    padding
                        .checked_mul(2)
                        .and_then(|p| p.checked_add(side))
                        .is_some_and(|padded| crop <= padded)
                };
                if !(fits(height, shape.height) && fits(width, shape.width)) {
                    return Err(DataError::InvalidConfig(format!(
                        "{t:?}: a {height}x{width} crop is larger than a {}x{} image padded by \
                         {padding}",
                        shape.height, shape.width
                    )));
                }
                shape.height = height;
                shape.width = width;
            }
            if let Transform::RandomTranslate { pixels } = *t
                && (pixels >= shape.height || pixels >= shape.width)
            {
                return Err(DataError::InvalidConfig(format!(
                    "{t:?}: reflect padding by {pixels} needs images taller and wider than \
                     {pixels} pixels, these are {}x{}",
                    shape.height, shape.width
                )));
            }
            if let Transform::Normalize { mean, .. } = t
                && mean.len() != shape.channels
            {
                return Err(DataError::ChannelMismatch {
                    step: "Normalize",
                    step_channels: mean.len(),
                    image_channels: shape.channels,
                });
            }
        }
        Ok(shape)
    }

    /// The Normalize step's per-channel `(mean, std)`, if the pipeline has one.
    pub fn normalization(&self) -> Option<(&[f32], &[f32])> {
        self.norm
            .as_ref()
            .map(|(m, s)| (m.as_slice(), s.as_slice()))
    }

    /// Applies the `u8` augmentations to one CHW image of `shape`.
    ///
    /// Returns the augmented image in `out` (resized as needed) and its shape. `scratch` is
    /// reused between calls to avoid allocations. An
    /// [`AlternatingHorizontalFlip`](Transform::AlternatingHorizontalFlip) is a coin flip
    /// here (no epoch is known); the loader calls [`augment_item_into`](Self::augment_item_into).
    pub fn augment_into(
        &self,
        image: &[u8],
        shape: ImageShape,
        rng: &mut Rng,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> ImageShape {
        self.augment_with(image, shape, rng, None, out, scratch)
    }

    /// [`augment_into`](Self::augment_into) for image `index` of a loader seeded with `seed`
    /// in epoch `epoch` (0-based): the random draws come from `Rng::for_item(seed, epoch,
    /// index)`, and an alternating flip follows the image's coin and the epoch's parity.
    pub fn augment_item_into(
        &self,
        image: &[u8],
        shape: ImageShape,
        (seed, epoch, index): (u64, u64, u64),
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> ImageShape {
        let mut rng = Rng::for_item(seed, epoch, index);
        // The coin is drawn from a stream no epoch uses (epoch u64::MAX is the shuffle's).
        let coin = Rng::for_item(seed ^ GOLDEN_GAMMA, u64::MAX, index).unit() < 0.5;
        let flip = coin != epoch.is_multiple_of(2);
        self.augment_with(image, shape, &mut rng, Some(flip), out, scratch)
    }

    fn augment_with(
        &self,
        image: &[u8],
        shape: ImageShape,
        rng: &mut Rng,
        alternating_flip: Option<bool>,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> ImageShape {
        out.clear();
        out.extend_from_slice(image);
        let mut shape = shape;
        for t in &self.steps {
            match *t {
                Transform::RandomCrop { .. } | Transform::RandomCropRect { .. } => {
                    if let Some((height, width, padding)) = t.crop() {
                        shape = random_crop(out, scratch, shape, (height, width), padding, rng);
                    }
                }
                Transform::RandomHorizontalFlip { p } if rng.unit() < p => {
                    flip_horizontal(out, shape);
                }
                Transform::RandomTranslate { pixels } => {
                    random_translate(out, scratch, shape, pixels, rng);
                }
                Transform::AlternatingHorizontalFlip => {
                    let flip = alternating_flip.unwrap_or_else(|| rng.unit() < 0.5);
                    if flip {
                        flip_horizontal(out, shape);
                    }
                }
                _ => {}
            }
        }
        shape
    }

    /// Applies the whole pipeline to one image and returns the `f32` CHW values.
    ///
    /// Convenient for single images (the loader uses the batched path).
    pub fn apply(&self, image: &[u8], shape: ImageShape, rng: &mut Rng) -> Result<Vec<f32>> {
        if image.len() != shape.numel() {
            return Err(DataError::InvalidConfig(format!(
                "image has {} bytes, shape {:?} needs {}",
                image.len(),
                shape.dims(),
                shape.numel()
            )));
        }
        let out_shape = self.output_shape(shape)?;
        let (mut buf, mut scratch) = (Vec::new(), Vec::new());
        let shape = self.augment_into(image, shape, rng, &mut buf, &mut scratch);
        debug_assert_eq!(shape, out_shape);
        let mut values = Vec::with_capacity(shape.numel());
        extend_to_tensor(&mut values, &buf, shape, self.normalization())?;
        Ok(values)
    }
}

/// Appends one CHW `u8` image to `out` as `f32` values: `b / 255`, then `(x - mean[c]) / std[c]`
/// when `norm` is given, in PyTorch's order of `f32` operations, so every value equals
/// torchvision's bit for bit. Written as plain arithmetic over each channel plane so the
/// compiler vectorises it (a table lookup per byte does not).
///
/// An error, with nothing appended, when `image` is not `shape.numel()` bytes or `norm` does
/// not have one mean and one std per channel of `shape` ([`DataError::ChannelMismatch`]).
pub fn extend_to_tensor(
    out: &mut Vec<f32>,
    image: &[u8],
    shape: ImageShape,
    norm: Option<(&[f32], &[f32])>,
) -> Result<()> {
    if image.len() != shape.numel() {
        return Err(DataError::InvalidConfig(format!(
            "image has {} bytes, shape {:?} needs {}",
            image.len(),
            shape.dims(),
            shape.numel()
        )));
    }
    if let Some((mean, std)) = norm
        && (mean.len() != shape.channels || std.len() != shape.channels)
    {
        return Err(DataError::ChannelMismatch {
            step: "Normalize",
            step_channels: if mean.len() != shape.channels {
                mean.len()
            } else {
                std.len()
            },
            image_channels: shape.channels,
        });
    }
    extend_to_tensor_unchecked(out, image, shape, norm);
    Ok(())
}

/// [`extend_to_tensor`] for an image and normalisation already checked against `shape` (the
/// loader checks them once, when it is built).
pub(crate) fn extend_to_tensor_unchecked(
    out: &mut Vec<f32>,
    image: &[u8],
    shape: ImageShape,
    norm: Option<(&[f32], &[f32])>,
) {
    let plane = shape.height * shape.width;
    match norm {
        None => out.extend(image.iter().map(|&b| f32::from(b) / 255.0)),
        Some((mean, std)) => {
            for ((src, &m), &s) in image.chunks_exact(plane).zip(mean).zip(std) {
                out.extend(src.iter().map(|&b| (f32::from(b) / 255.0 - m) / s));
            }
        }
    }
}

/// Crops `(out_h, out_w)` at a random offset of the image zero-padded by `padding` on every
/// side ([`Compose::output_shape`] checked that it fits).
/// Reflect index: `-1 → 1`, `n → n - 2` (PyTorch's `reflect` padding), for `pad < n`.
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let i = if i < 0 { -i } else { i };
    (if i >= n { 2 * (n - 1) - i } else { i }) as usize
}

/// Reflect-pads `img` by `pixels` and crops its own size at a random offset (top, then left,
/// each uniform in `0..=2 * pixels`). Images not larger than `pixels` are refused by
/// `output_shape` and left alone here.
fn random_translate(
    img: &mut [u8],
    scratch: &mut Vec<u8>,
    shape: ImageShape,
    pixels: usize,
    rng: &mut Rng,
) {
    let (h, w) = (shape.height, shape.width);
    if pixels >= h || pixels >= w {
        return;
    }
    let dy = rng.below((2 * pixels + 1) as u64) as isize - pixels as isize;
    let dx = rng.below((2 * pixels + 1) as u64) as isize - pixels as isize;
    scratch.clear();
    scratch.extend_from_slice(img);
    for c in 0..shape.channels {
        let src = &scratch[c * h * w..(c + 1) * h * w];
        let dst = &mut img[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            let sy = reflect(y as isize + dy, h);
            let (src_row, dst_row) = (&src[sy * w..(sy + 1) * w], &mut dst[y * w..(y + 1) * w]);
            for (x, d) in dst_row.iter_mut().enumerate() {
                *d = src_row[reflect(x as isize + dx, w)];
            }
        }
    }
}

fn random_crop(
    img: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    shape: ImageShape,
    (out_h, out_w): (usize, usize),
    padding: usize,
    rng: &mut Rng,
) -> ImageShape {
    let (h, w) = (shape.height, shape.width);
    let (ph, pw) = (h + 2 * padding, w + 2 * padding);
    let (Some(free_h), Some(free_w)) = (ph.checked_sub(out_h), pw.checked_sub(out_w)) else {
        // Larger than the padded image: refused by `output_shape`; nothing to crop here.
        return shape;
    };
    // Offsets into the padded image, as torchvision draws them (top, then left).
    let top = rng.below((free_h + 1) as u64) as usize;
    let left = rng.below((free_w + 1) as u64) as usize;
    scratch.clear();
    scratch.resize(shape.channels * out_h * out_w, 0);
    for c in 0..shape.channels {
        let src = &img[c * h * w..(c + 1) * h * w];
        let dst = &mut scratch[c * out_h * out_w..(c + 1) * out_h * out_w];
        for y in 0..out_h {
            // Row in the unpadded image, if it exists.
            let sy = (top + y).checked_sub(padding).filter(|&sy| sy < h);
            let Some(sy) = sy else { continue };
            let row = &mut dst[y * out_w..(y + 1) * out_w];
            // Columns x in the crop map to unpadded column left + x - padding.
            let x0 = padding.saturating_sub(left);
            let x1 = (w + padding).saturating_sub(left).min(out_w);
            if x0 < x1 {
                let sx0 = left + x0 - padding;
                row[x0..x1].copy_from_slice(&src[sy * w + sx0..sy * w + sx0 + (x1 - x0)]);
            }
        }
    }
    std::mem::swap(img, scratch);
    ImageShape {
        channels: shape.channels,
        height: out_h,
        width: out_w,
    }
}

fn flip_horizontal(img: &mut [u8], shape: ImageShape) {
    for row in img.chunks_exact_mut(shape.width) {
        row.reverse();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const S: ImageShape = ImageShape {
        channels: 2,
        height: 2,
        width: 3,
    };

    #[test]
    fn to_tensor_is_exactly_byte_over_255() {
        let c = Compose::to_tensor();
        let img: Vec<u8> = vec![0, 1, 127, 128, 254, 255, 3, 7, 9, 11, 200, 250];
        let v = c.apply(&img, S, &mut Rng::new(0)).unwrap();
        for (x, b) in v.iter().zip(&img) {
            assert_eq!(*x, *b as f32 / 255.0);
        }
        assert_eq!(v[5], 1.0);
    }

    #[test]
    fn normalize_matches_pytorch_order_of_operations() {
        let c = Compose::new(vec![
            Transform::ToTensor,
            Transform::normalize([0.5, 0.25], [0.5, 0.125]),
        ])
        .unwrap();
        let img: Vec<u8> = vec![0, 255, 51, 102, 1, 2, 0, 255, 51, 102, 1, 2];
        let v = c.apply(&img, S, &mut Rng::new(0)).unwrap();
        assert_eq!(v[0], -1.0);
        assert_eq!(v[1], 1.0);
        assert_eq!(v[6], (0.0 - 0.25) / 0.125);
        assert_eq!(v[9], (102f32 / 255.0 - 0.25) / 0.125);
    }

    /// Bit patterns of torchvision's values for bytes 0 1 127 128 254 255 in each channel:
    /// ```python
    /// b = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8).repeat(3, 1).reshape(3, 2, 3)
    /// x = T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))(b.float().div(255))
    /// [np.float32(v).view(np.uint32).item() for v in x.flatten().numpy()]
    /// ```
    #[test]
    fn to_tensor_normalize_equals_torchvision_bits() {
        let expected: [u32; 18] = [
            3221137171, 3221003987, 1021063730, 1026498880, 1073923154, 1073989747, 3221060112,
            3220925013, 1032140788, 1034302382, 1074204808, 1074272356, 3218765969, 3218640218,
            1045020260, 1046026277, 1074164757, 1074227633,
        ];
        let img: Vec<u8> = [0u8, 1, 127, 128, 254, 255].repeat(3);
        let shape = ImageShape {
            channels: 3,
            height: 2,
            width: 3,
        };
        let c = Compose::new(vec![Transform::ToTensor, Transform::normalize_cifar10()]).unwrap();
        let mut out = Vec::new();
        extend_to_tensor(&mut out, &img, shape, c.normalization()).unwrap();
        let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, expected);
    }

    #[test]
    fn compose_checks_order() {
        assert!(Compose::new(vec![]).is_err());
        assert!(Compose::new(vec![Transform::ToTensor, Transform::random_crop(2, 1)]).is_err());
        assert!(Compose::new(vec![Transform::normalize_half(), Transform::ToTensor]).is_err());
        assert!(Compose::new(vec![Transform::ToTensor, Transform::ToTensor]).is_err());
        assert!(
            Compose::new(vec![
                Transform::ToTensor,
                Transform::normalize([0.5], [0.0])
            ])
            .is_err()
        );
        let c = Compose::new(vec![Transform::ToTensor, Transform::normalize_half()]).unwrap();
        assert!(c.output_shape(S).is_err(), "3 channel means on 2 channels");
    }

    #[test]
    fn flip_mirrors_rows() {
        let c = Compose::new(vec![
            Transform::RandomHorizontalFlip { p: 1.0 },
            Transform::ToTensor,
        ])
        .unwrap();
        let img: Vec<u8> = (0..12).collect();
        let (mut out, mut s) = (Vec::new(), Vec::new());
        c.augment_into(&img, S, &mut Rng::new(1), &mut out, &mut s);
        assert_eq!(out, vec![2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9]);
    }

    #[test]
    fn crop_with_padding_keeps_pixels_and_pads_with_zero() {
        // 1 channel 3x3 image, crop 3 with padding 1: every offset is a shifted window.
        let shape = ImageShape {
            channels: 1,
            height: 3,
            width: 3,
        };
        let img: Vec<u8> = (1..=9).collect();
        let c = Compose::new(vec![Transform::random_crop(3, 1), Transform::ToTensor]).unwrap();
        let mut seen = std::collections::HashSet::new();
        for seed in 0..200 {
            let (mut out, mut s) = (Vec::new(), Vec::new());
            let mut rng = Rng::new(seed);
            let mut probe = rng.clone();
            let top = probe.below(3) as isize - 1;
            let left = probe.below(3) as isize - 1;
            let sh = c.augment_into(&img, shape, &mut rng, &mut out, &mut s);
            assert_eq!(sh, shape);
            for y in 0..3isize {
                for x in 0..3isize {
                    let (sy, sx) = (y + top, x + left);
                    let want = if (0..3).contains(&sy) && (0..3).contains(&sx) {
                        img[(sy * 3 + sx) as usize]
                    } else {
                        0
                    };
                    assert_eq!(out[(y * 3 + x) as usize], want, "seed {seed}");
                }
            }
            seen.insert((top, left));
        }
        assert_eq!(seen.len(), 9, "all offsets are drawn");
    }

    #[test]
    fn crop_to_smaller_size() {
        let c = Compose::new(vec![Transform::random_crop(2, 0), Transform::ToTensor]).unwrap();
        assert_eq!(
            c.output_shape(S).unwrap(),
            ImageShape {
                channels: 2,
                height: 2,
                width: 2
            }
        );
        let v = c.apply(&[7u8; 12], S, &mut Rng::new(3)).unwrap();
        assert_eq!(v.len(), 8);
        assert!(
            Compose::new(vec![Transform::random_crop(9, 0), Transform::ToTensor])
                .unwrap()
                .output_shape(S)
                .is_err()
        );
    }

    #[test]
    fn rng_is_reproducible_and_item_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(5).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let x = Rng::for_item(1, 0, 0).next_u64();
        assert_ne!(x, Rng::for_item(1, 0, 1).next_u64());
        assert_ne!(x, Rng::for_item(1, 1, 0).next_u64());
        assert_ne!(x, Rng::for_item(2, 0, 0).next_u64());
        assert_eq!(x, Rng::for_item(1, 0, 0).next_u64());
        let mut v: Vec<u32> = (0..100).collect();
        Rng::new(9).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }

    /// Every crop of a reflect-padded 3 × 4 image, as PyTorch pads it:
    ///
    /// ```python
    /// import torch.nn.functional as F
    /// F.pad(torch.arange(12.).view(1, 1, 3, 4), (1, 1, 1, 1), mode="reflect")
    /// ```
    #[test]
    fn random_translate_is_a_crop_of_the_reflect_padded_image() {
        #[rustfmt::skip]
        const PADDED: [[u8; 6]; 5] = [
            [5, 4, 5, 6, 7, 6],
            [1, 0, 1, 2, 3, 2],
            [5, 4, 5, 6, 7, 6],
            [9, 8, 9, 10, 11, 10],
            [5, 4, 5, 6, 7, 6],
        ];
        let shape = ImageShape {
            channels: 1,
            height: 3,
            width: 4,
        };
        let c = Compose::new(vec![Transform::random_translate(1), Transform::ToTensor]).unwrap();
        assert_eq!(c.output_shape(shape).unwrap(), shape);
        let img: Vec<u8> = (0..12).collect();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let (mut out, mut tmp) = (Vec::new(), Vec::new());
            let sh = c.augment_into(&img, shape, &mut Rng::new(seed), &mut out, &mut tmp);
            assert_eq!(sh, shape);
            // The offsets the transform drew: top, then left, each in 0..=2.
            let mut rng = Rng::new(seed);
            let (top, left) = (rng.below(3) as usize, rng.below(3) as usize);
            let want: Vec<u8> = (0..3)
                .flat_map(|y| (0..4).map(move |x| PADDED[top + y][left + x]))
                .collect();
            assert_eq!(out, want, "seed {seed}, offset ({top}, {left})");
            seen.insert((top, left));
        }
        assert_eq!(seen.len(), 9, "all nine offsets occur");
    }

    #[test]
    fn random_translate_refuses_what_reflection_cannot_pad() {
        let err = Compose::new(vec![Transform::random_translate(0), Transform::ToTensor]);
        assert!(err.unwrap_err().to_string().contains("pixels > 0"));
        let c = Compose::new(vec![Transform::random_translate(2), Transform::ToTensor]).unwrap();
        let msg = c.output_shape(S).unwrap_err().to_string();
        assert!(msg.contains("2x3"), "{msg}");
    }

    #[test]
    fn alternating_flip_flips_each_image_every_other_epoch() {
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 3,
        };
        let c = Compose::new(vec![
            Transform::AlternatingHorizontalFlip,
            Transform::ToTensor,
        ])
        .unwrap();
        let img = [1u8, 2, 3];
        let flipped = |epoch: u64, index: u64| {
            let (mut out, mut tmp) = (Vec::new(), Vec::new());
            c.augment_item_into(&img, shape, (7, epoch, index), &mut out, &mut tmp);
            match out.as_slice() {
                [1, 2, 3] => false,
                [3, 2, 1] => true,
                other => panic!("not the image or its mirror: {other:?}"),
            }
        };
        let mut first_epoch = 0;
        for index in 0..400 {
            let f0 = flipped(0, index);
            assert_ne!(f0, flipped(1, index), "image {index}");
            assert_eq!(f0, flipped(2, index), "image {index}");
            assert_eq!(f0, flipped(6, index), "image {index}");
            first_epoch += usize::from(f0);
        }
        assert!(
            (150..250).contains(&first_epoch),
            "{first_epoch} of 400 flipped"
        );
    }
}
