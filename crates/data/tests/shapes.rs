//! Image folders and loader batches of other sizes and channel counts than CIFAR-10's, on PNG
//! files written here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::{GrayImage, Luma, LumaA, Rgb, RgbImage};
use torchlet_data::image_folder::{Channels, ImageFolder, load_image_chw_as};
use torchlet_data::transform::extend_to_tensor;
use torchlet_data::{
    Compose, DataError, DataLoader, ImageDataset, ImageShape, Rng, Transform, load_image_folder,
};

/// The gray value of pixel `(x, y)` of test image `i`.
fn gray_value(i: u32, x: u32, y: u32) -> u8 {
    ((x * 7 + y * 3 + i * 11) % 256) as u8
}

/// The RGB value of pixel `(x, y)` of test image `i`.
fn rgb_value(i: u32, x: u32, y: u32) -> [u8; 3] {
    [
        (x * 5 + i) as u8,
        (y * 9 + 2 * i) as u8,
        (200 - (x + y) % 100 - i) as u8,
    ]
}

fn write_gray(path: &Path, i: u32, w: u32, h: u32) {
    GrayImage::from_fn(w, h, |x, y| Luma([gray_value(i, x, y)]))
        .save(path)
        .unwrap();
}

fn write_rgb(path: &Path, i: u32, w: u32, h: u32) {
    RgbImage::from_fn(w, h, |x, y| Rgb(rgb_value(i, x, y)))
        .save(path)
        .unwrap();
}

/// A folder `root/<class>/<name>.png` for each `(class, name)`, written by `write`.
fn folder(files: &[(&str, &str)], mut write: impl FnMut(&Path, usize)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, (class, name)) in files.iter().enumerate() {
        let class_dir = dir.path().join(class);
        std::fs::create_dir_all(&class_dir).unwrap();
        write(&class_dir.join(format!("{name}.png")), i);
    }
    dir
}

const TWO_CLASSES: [(&str, &str); 3] = [("one", "a"), ("one", "b"), ("two", "c")];

#[test]
fn a_grayscale_folder_loads_as_one_channel_with_its_pixels() {
    let dir = folder(&TWO_CLASSES, |p, i| write_gray(p, i as u32, 28, 28));
    let ds = load_image_folder(dir.path()).unwrap();
    assert_eq!(ds.shape().dims(), [1, 28, 28]);
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.labels(), &[0, 0, 1]);
    for i in 0..3u32 {
        let img = ds.image(i as usize).unwrap();
        assert_eq!(img.len(), 28 * 28);
        for (y, x) in [(0, 0), (0, 27), (5, 9), (27, 27)] {
            assert_eq!(
                img[y * 28 + x],
                gray_value(i, x as u32, y as u32),
                "image {i}"
            );
        }
    }
    // The builder's defaults are the same thing.
    assert_eq!(ImageFolder::new(dir.path()).load().unwrap(), ds);
    assert_eq!(
        ImageFolder::new(dir.path())
            .channels(Channels::Gray)
            .load()
            .unwrap(),
        ds
    );
}

#[test]
fn grayscale_with_alpha_is_grayscale_too() {
    let dir = folder(&TWO_CLASSES, |p, i| {
        image::ImageBuffer::from_fn(6, 4, |x, y| LumaA([gray_value(i as u32, x, y), 128]))
            .save(p)
            .unwrap()
    });
    let ds = load_image_folder(dir.path()).unwrap();
    assert_eq!(ds.shape().dims(), [1, 4, 6]);
    assert_eq!(ds.image(1).unwrap()[6 + 2], gray_value(1, 2, 1));
}

#[test]
fn an_rgb_folder_loads_as_three_planes() {
    let dir = folder(&TWO_CLASSES, |p, i| write_rgb(p, i as u32, 20, 12));
    let ds = load_image_folder(dir.path()).unwrap();
    assert_eq!(ds.shape().dims(), [3, 12, 20]);
    let plane = 12 * 20;
    let img = ds.image(2).unwrap();
    for (y, x) in [(0, 0), (11, 19), (3, 7)] {
        let want = rgb_value(2, x as u32, y as u32);
        for (c, w) in want.iter().enumerate() {
            assert_eq!(img[c * plane + y * 20 + x], *w, "channel {c} at ({x}, {y})");
        }
    }
}

#[test]
fn rgb_on_request_repeats_the_gray_channel_and_gray_on_request_takes_the_luma() {
    let dir = folder(&TWO_CLASSES, |p, i| write_gray(p, i as u32, 28, 28));
    let ds = ImageFolder::new(dir.path())
        .channels(Channels::Rgb)
        .load()
        .unwrap();
    assert_eq!(ds.shape().dims(), [3, 28, 28]);
    let img = ds.image(1).unwrap();
    let plane = 28 * 28;
    for p in 0..plane {
        let want = gray_value(1, (p % 28) as u32, (p / 28) as u32);
        assert_eq!([img[p], img[plane + p], img[2 * plane + p]], [want; 3]);
    }

    let dir = folder(&[("a", "x")], |p, _| {
        RgbImage::from_fn(2, 1, |x, _| {
            Rgb(if x == 0 { [10, 20, 30] } else { [255, 0, 0] })
        })
        .save(p)
        .unwrap()
    });
    let ds = ImageFolder::new(dir.path())
        .channels(Channels::Gray)
        .load()
        .unwrap();
    assert_eq!(ds.shape().dims(), [1, 1, 2]);
    // 0.2126 R + 0.7152 G + 0.0722 B, rounded: 18.596 -> 19 and 54.213 -> 54.
    assert_eq!(ds.image(0).unwrap(), &[19, 54]);
}

#[test]
fn one_color_file_makes_the_folder_rgb() {
    let dir = folder(&TWO_CLASSES, |p, i| {
        if i == 2 {
            write_rgb(p, 2, 8, 8)
        } else {
            write_gray(p, i as u32, 8, 8)
        }
    });
    let ds = load_image_folder(dir.path()).unwrap();
    assert_eq!(ds.shape().dims(), [3, 8, 8]);
    let img = ds.image(0).unwrap();
    assert_eq!(img[3], gray_value(0, 3, 0));
    assert_eq!(img[64 + 3], gray_value(0, 3, 0));
    assert_eq!(img[128 + 3], gray_value(0, 3, 0));
    // One file, asked as it is.
    let path = dir.path().join("one").join("a.png");
    let (chw, shape) = load_image_chw_as(&path, Channels::Auto).unwrap();
    assert_eq!(shape.dims(), [1, 8, 8]);
    assert_eq!(chw[9], gray_value(0, 1, 1));
}

/// `path`, a PNG, with bytes of its image data overwritten: its header still reads, its pixels
/// do not decode.
fn corrupt_pixels(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut bytes[idat + 4..idat + 24] {
        *b = !*b;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn mixed_sizes_are_an_error_naming_the_first_odd_file_before_decoding() {
    // one/a 28x28, one/b 28x28 but its pixels are damaged, two/c 30x28, two/d 29x29.
    let files = [("one", "a"), ("one", "b"), ("two", "c"), ("two", "d")];
    let sizes = [(28, 28), (28, 28), (30, 28), (29, 29)];
    let dir = folder(&files, |p, i| {
        let (w, h) = sizes[i];
        write_gray(p, i as u32, w, h)
    });
    let damaged = dir.path().join("one").join("b.png");
    corrupt_pixels(&damaged);
    let err = load_image_folder(dir.path()).unwrap_err();
    let odd: PathBuf = dir.path().join("two").join("c.png");
    match &err {
        DataError::ImageSize {
            path,
            found_w,
            found_h,
            expected_w,
            expected_h,
            first,
        } => {
            assert_eq!(path, &odd);
            assert_eq!((*found_w, *found_h), (30, 28));
            assert_eq!((*expected_w, *expected_h), (28, 28));
            assert_eq!(first, &dir.path().join("one").join("a.png"));
        }
        other => panic!("expected the size error, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("c.png") && message.contains("30x28") && message.contains("28x28"),
        "{message}"
    );
    // The damaged file is reported when the sizes agree (it is decoded then).
    std::fs::remove_file(&odd).unwrap();
    std::fs::remove_file(dir.path().join("two").join("d.png")).unwrap();
    write_gray(&odd, 2, 28, 28);
    let err = load_image_folder(dir.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::ImageDecode { path, .. } if *path == damaged),
        "{err}"
    );
}

#[test]
fn resize_gives_the_requested_shape() {
    let files = [("one", "a"), ("one", "b"), ("two", "c")];
    let sizes = [(28, 28), (40, 30), (64, 64)];
    let dir = folder(&files, |p, i| {
        let (w, h) = sizes[i];
        if i == 1 {
            // A constant image: any bilinear resize of it is the same constant.
            RgbImage::from_pixel(w, h, Rgb([9, 99, 199]))
                .save(p)
                .unwrap()
        } else {
            write_rgb(p, i as u32, w, h)
        }
    });
    assert!(matches!(
        load_image_folder(dir.path()),
        Err(DataError::ImageSize { .. })
    ));
    let ds = ImageFolder::new(dir.path()).resize(32, 24).load().unwrap();
    assert_eq!(ds.shape().dims(), [3, 32, 24]);
    let plane = 32 * 24;
    let constant = ds.image(1).unwrap();
    assert!(constant[..plane].iter().all(|&v| v == 9));
    assert!(constant[plane..2 * plane].iter().all(|&v| v == 99));
    assert!(constant[2 * plane..].iter().all(|&v| v == 199));
    // Grayscale out, and an image already at the requested size is left as it is.
    let ds = ImageFolder::new(dir.path())
        .channels(Channels::Gray)
        .resize(28, 28)
        .load()
        .unwrap();
    assert_eq!(ds.shape().dims(), [1, 28, 28]);
    let (exact, _) =
        load_image_chw_as(&dir.path().join("one").join("a.png"), Channels::Gray).unwrap();
    assert_eq!(ds.image(0).unwrap(), exact.as_slice());
    for (h, w) in [(0, 5), (5, 0)] {
        assert!(matches!(
            ImageFolder::new(dir.path()).resize(h, w).load(),
            Err(DataError::InvalidConfig(_))
        ));
    }
}

fn dataset(shape: ImageShape, n: usize) -> ImageDataset {
    let pixels = (0..n * shape.numel())
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % 2) as u16).collect();
    ImageDataset::new(pixels, labels, shape, vec!["a".into(), "b".into()]).unwrap()
}

const GRAY_28: ImageShape = ImageShape {
    channels: 1,
    height: 28,
    width: 28,
};
const RGB_64: ImageShape = ImageShape {
    channels: 3,
    height: 64,
    width: 64,
};

#[test]
fn the_augmentation_keeps_any_image_size() {
    assert_eq!(
        Compose::augment_for(ImageShape::CIFAR),
        Compose::cifar10_augment()
    );
    for shape in [
        GRAY_28,
        RGB_64,
        ImageShape {
            channels: 2,
            height: 20,
            width: 30,
        },
    ] {
        let c = Compose::augment_for(shape);
        assert_eq!(c.output_shape(shape).unwrap(), shape);
        assert!(c.is_random());
    }
    // On a 28x28 image of 255s, a crop of padding 4 is a block of ones shifted by at most 4
    // pixels each way, zeros around it.
    let c = Compose::augment_for(GRAY_28);
    let mut shifts = std::collections::HashSet::new();
    for seed in 0..100 {
        let v = c
            .apply(&[255; 28 * 28], GRAY_28, &mut Rng::new(seed))
            .unwrap();
        assert_eq!(v.len(), 28 * 28);
        assert!(v.iter().all(|&x| x == 0.0 || x == 1.0));
        let rows: Vec<usize> = (0..28)
            .filter(|y| v[y * 28..(y + 1) * 28].contains(&1.0))
            .collect();
        let cols: Vec<usize> = (0..28)
            .filter(|x| (0..28).any(|y| v[y * 28 + x] == 1.0))
            .collect();
        let ones = v.iter().filter(|&&x| x == 1.0).count();
        assert_eq!(ones, rows.len() * cols.len(), "seed {seed}: one block");
        assert!(rows.len() >= 24 && cols.len() >= 24, "seed {seed}");
        shifts.insert((28 - rows.len(), 28 - cols.len()));
    }
    assert!(shifts.len() > 5, "{shifts:?}");
    // A non-square crop.
    let c = Compose::new(vec![
        Transform::random_crop_hw(3, 5, 0),
        Transform::ToTensor,
    ])
    .unwrap();
    let shape = ImageShape {
        channels: 1,
        height: 4,
        width: 5,
    };
    let img: Vec<u8> = (0..20).collect();
    let v = c.apply(&img, shape, &mut Rng::new(1)).unwrap();
    assert_eq!(c.output_shape(shape).unwrap().dims(), [1, 3, 5]);
    let first = (v[0] * 255.0).round() as u8;
    assert!(first == 0 || first == 5, "rows 0-2 or 1-3: {first}");
    let want: Vec<f32> = (first..first + 15).map(|b| f32::from(b) / 255.0).collect();
    assert_eq!(v, want);
}

#[test]
fn loader_batches_of_gray_28_and_rgb_64_images_with_augmentation() {
    let device = Device::flex();
    for shape in [GRAY_28, RGB_64] {
        let ds = dataset(shape, 7);
        let loader = DataLoader::builder(ds.clone())
            .batch_size(3)
            .shuffle(true)
            .seed(5)
            .transform(Compose::augment_for(shape))
            .device(&device)
            .build()
            .unwrap();
        assert_eq!(loader.image_shape(), shape);
        let [c, h, w] = shape.dims();
        let batches: Vec<_> = loader.iter().collect();
        let dims: Vec<[usize; 4]> = batches.iter().map(|b| b.images.dims()).collect();
        assert_eq!(dims, vec![[3, c, h, w], [3, c, h, w], [1, c, h, w]]);
        let values: Vec<f32> = batches[0].images.to_data().try_to_vec().unwrap();
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
        // Pixels survive the crop: most of each image is its own bytes / 255.
        assert!(values.iter().filter(|&&v| v > 0.0).count() > values.len() / 2);

        // Without augmentation, the batch is exactly the bytes / 255, in order.
        let plain = DataLoader::builder(ds.clone())
            .batch_size(2)
            .device(&device)
            .build()
            .unwrap();
        let first = plain.iter().next().unwrap();
        assert_eq!(first.images.dims(), [2, c, h, w]);
        let got: Vec<f32> = first.images.to_data().try_to_vec().unwrap();
        let want: Vec<f32> = ds
            .image(0)
            .unwrap()
            .iter()
            .chain(ds.image(1).unwrap())
            .map(|&b| f32::from(b) / 255.0)
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn normalize_refuses_images_with_another_channel_count() {
    let three = Compose::new(vec![Transform::ToTensor, Transform::normalize_cifar10()]).unwrap();
    let mismatch = |err: DataError| {
        assert!(
            matches!(
                err,
                DataError::ChannelMismatch {
                    step: "Normalize",
                    step_channels: 3,
                    image_channels: 1
                }
            ),
            "{err}"
        );
    };
    mismatch(three.output_shape(GRAY_28).unwrap_err());
    mismatch(
        three
            .apply(&[0; 28 * 28], GRAY_28, &mut Rng::new(0))
            .unwrap_err(),
    );
    let err = DataLoader::builder(dataset(GRAY_28, 2))
        .transform(three.clone())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("3 channel(s)"), "{err}");
    mismatch(err);
    let mut out = vec![7.0f32];
    mismatch(
        extend_to_tensor(&mut out, &[0; 28 * 28], GRAY_28, three.normalization()).unwrap_err(),
    );
    assert_eq!(out, [7.0], "nothing appended");

    // One mean and std for one channel works.
    let one = Compose::new(vec![
        Transform::ToTensor,
        Transform::normalize([0.5], [0.25]),
    ])
    .unwrap();
    let v = one
        .apply(&[255; 28 * 28], GRAY_28, &mut Rng::new(0))
        .unwrap();
    assert!(v.iter().all(|&x| x == 2.0));
}
