//! `torchvision.datasets.ImageFolder` for PNG and JPEG files: one sub-folder per class.
//!
//! ```text
//! root/cat/001.png
//! root/cat/002.jpg
//! root/dog/xyz.jpeg
//! ```
//!
//! Classes are the sub-folder names in sorted order (label 0 is the first). Files are decoded
//! once, in parallel, into one contiguous buffer; every image must have the size of the first.
//! Files with other extensions are ignored, as torchvision does.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::dataset::{ImageDataset, ImageShape};
use crate::error::{DataError, Result};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Loads an image-folder dataset from `root`.
pub fn load_image_folder(root: impl AsRef<Path>) -> Result<ImageDataset> {
    let root = root.as_ref();
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| DataError::io(root, e))? {
        let entry = entry.map_err(|e| DataError::io(root, e))?;
        if entry
            .file_type()
            .map_err(|e| DataError::io(entry.path(), e))?
            .is_dir()
        {
            classes.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::Empty {
            path: root.to_path_buf(),
            reason: "no class sub-folders".into(),
        });
    }
    let mut files: Vec<(PathBuf, u16)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let mut in_class = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
            let path = entry.map_err(|e| DataError::io(&dir, e))?.path();
            let is_image = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)));
            if is_image && path.is_file() {
                in_class.push(path);
            }
        }
        in_class.sort();
        let label = u16::try_from(label)
            .map_err(|_| DataError::InvalidConfig("more than 65,536 classes".into()))?;
        files.extend(in_class.into_iter().map(|p| (p, label)));
    }
    let Some((first, _)) = files.first() else {
        return Err(DataError::Empty {
            path: root.to_path_buf(),
            reason: "no .png/.jpg/.jpeg files in the class folders".into(),
        });
    };
    let first = decode(first)?;
    let (w, h) = first.dimensions();
    let shape = ImageShape {
        channels: 3,
        height: h as usize,
        width: w as usize,
    };
    let numel = shape.numel();
    let mut pixels = vec![0u8; files.len() * numel];
    pixels
        .par_chunks_exact_mut(numel)
        .zip(files.par_iter())
        .try_for_each(|(out, (path, _))| -> Result<()> {
            let img = decode(path)?;
            if img.dimensions() != (w, h) {
                return Err(DataError::ImageSize {
                    path: path.clone(),
                    found_w: img.width(),
                    found_h: img.height(),
                    expected_w: w,
                    expected_h: h,
                });
            }
            hwc_to_chw(img.as_raw(), shape, out);
            Ok(())
        })?;
    let labels = files.iter().map(|&(_, l)| l).collect();
    ImageDataset::new(pixels, labels, shape, classes)
}

/// Decodes a PNG or JPEG file to 8-bit RGB.
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let img = reader.decode().map_err(|e| DataError::ImageDecode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(img.to_rgb8())
}

/// Decodes one image file into CHW bytes, with its shape.
pub fn load_image_chw(path: &Path) -> Result<(Vec<u8>, ImageShape)> {
    let img = decode(path)?;
    let shape = ImageShape {
        channels: 3,
        height: img.height() as usize,
        width: img.width() as usize,
    };
    let mut out = vec![0u8; shape.numel()];
    hwc_to_chw(img.as_raw(), shape, &mut out);
    Ok((out, shape))
}

/// Reorders interleaved `HWC` pixels into planar `CHW`.
pub fn hwc_to_chw(hwc: &[u8], shape: ImageShape, chw: &mut [u8]) {
    let plane = shape.height * shape.width;
    let c = shape.channels;
    for (p, px) in hwc.chunks_exact(c).enumerate().take(plane) {
        for (ch, &v) in px.iter().enumerate() {
            chw[ch * plane + p] = v;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([seed, x as u8 * 10 + y as u8, 200 - seed])
        });
        img.save(path).unwrap();
    }

    #[test]
    fn loads_classes_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        for (class, n) in [("dog", 2), ("cat", 1)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..n {
                write_png(&dir.path().join(class).join(format!("{i}.png")), 4, 3, i);
            }
        }
        std::fs::write(dir.path().join("dog").join("notes.txt"), "x").unwrap();
        let ds = load_image_folder(dir.path()).unwrap();
        assert_eq!(ds.classes(), &["cat".to_string(), "dog".to_string()]);
        assert_eq!(ds.labels(), &[0, 1, 1]);
        assert_eq!(
            ds.shape(),
            ImageShape {
                channels: 3,
                height: 3,
                width: 4
            }
        );
        // dog/1.png: R plane all 1, G at (x=2, y=1) = 21, B = 199.
        let img = ds.image(2).unwrap();
        assert!(img[..12].iter().all(|&v| v == 1));
        assert_eq!(img[12 + 4 + 2], 21);
        assert!(img[24..].iter().all(|&v| v == 199));
    }

    #[test]
    fn reports_bad_files_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        write_png(&dir.path().join("a").join("0.png"), 4, 4, 0);
        write_png(&dir.path().join("a").join("1.png"), 5, 4, 0);
        let err = load_image_folder(dir.path()).unwrap_err();
        assert!(
            matches!(err, DataError::ImageSize { found_w: 5, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("1.png"));

        std::fs::write(dir.path().join("a").join("1.png"), b"not a png").unwrap();
        let err = load_image_folder(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::ImageDecode { .. }), "{err}");
        assert!(err.to_string().contains("1.png"));

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_image_folder(empty.path()),
            Err(DataError::Empty { .. })
        ));
    }
}
