//! `torchvision.datasets.ImageFolder` for PNG and JPEG files: one sub-folder per class.
//!
//! ```text
//! root/cat/001.png
//! root/cat/002.jpg
//! root/dog/xyz.jpeg
//! ```
//!
//! Classes are the sub-folder names in sorted order (label 0 is the first). Files are decoded
//! once, in parallel, into one contiguous buffer. Files with other extensions are ignored, as
//! torchvision does.
//!
//! [`load_image_folder`] loads with the defaults; [`ImageFolder`] chooses:
//!
//! * the channels ([`Channels`]): by default one when every file is grayscale, else three
//!   (RGB); or always one, or always three;
//! * a size: by default every image must have the size of the first (the error names the
//!   first file that does not, before anything is decoded); [`ImageFolder::resize`] scales
//!   every image to one size instead (bilinear, the `image` crate's `Triangle` filter);
//! * a pixel limit ([`ImageFolder::max_pixels`], default [`MAX_IMAGE_PIXELS`], 8192 × 8192):
//!   a file whose header claims more pixels is refused before any pixel is decoded
//!   ([`DataError::ImageTooLarge`]). Decoding time grows with the pixels a header claims,
//!   not with the file's size: an 882-byte progressive JPEG can claim 65,292 × 244 pixels,
//!   so a folder of downloaded files needs a limit it can lower.
//!
//! ```no_run
//! use torchlet_data::image_folder::{Channels, ImageFolder};
//!
//! let mnist_like = ImageFolder::new("data/digits").load()?; // 1 x 28 x 28 if all are gray
//! let rgb_64 = ImageFolder::new("data/photos").channels(Channels::Rgb).resize(64, 64).load()?;
//! assert_eq!(rgb_64.shape().dims(), [3, 64, 64]);
//! # let _ = mnist_like;
//! # Ok::<(), torchlet_data::DataError>(())
//! ```

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use crate::dataset::{ImageDataset, ImageShape};
use crate::error::{DataError, Result};

/// An image file and the label of its class folder.
pub type LabeledFile = (PathBuf, u16);

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The default of [`ImageFolder::max_pixels`]: 8192 × 8192 = 67,108,864 pixels per image.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 26;

/// The filter [`ImageFolder::resize`] scales images with: bilinear (`Triangle`).
pub const RESIZE_FILTER: FilterType = FilterType::Triangle;

/// How many channels the images of an [`ImageFolder`] load with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Channels {
    /// One channel when every file is grayscale (with or without alpha), three (RGB)
    /// otherwise; decided from the files' headers.
    #[default]
    Auto,
    /// One channel: color images become their luma (`0.2126 R + 0.7152 G + 0.0722 B`, the
    /// `image` crate's conversion).
    Gray,
    /// Three channels, RGB: a grayscale image gives three equal channels.
    Rgb,
}

/// What a file's header says: its size and whether it has color.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    width: u32,
    height: u32,
    color: bool,
}

/// Opens an image file's decoder, which reads its header only.
fn open_decoder(path: &Path) -> Result<Box<dyn image::ImageDecoder>> {
    let decoder = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .into_decoder()
        .map_err(|e| decode_error(path, e))?;
    Ok(Box::new(decoder))
}

/// [`DataError::ImageDecode`] naming `path`.
fn decode_error(path: &Path, e: image::ImageError) -> DataError {
    DataError::ImageDecode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The decoder's size and color type, refused when it claims more than `max_pixels`.
fn checked_header(
    path: &Path,
    decoder: &dyn image::ImageDecoder,
    max_pixels: u64,
) -> Result<Header> {
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(DataError::ImageTooLarge {
            path: path.to_path_buf(),
            width,
            height,
            limit: max_pixels,
        });
    }
    Ok(Header {
        width,
        height,
        color: decoder.color_type().has_color(),
    })
}

/// Reads the size and color type of an image file from its header, without decoding pixels.
fn read_header(path: &Path, max_pixels: u64) -> Result<Header> {
    checked_header(path, open_decoder(path)?.as_ref(), max_pixels)
}

/// An image-folder dataset to load, with its options: `ImageFolder(root)` with torchvision's
/// `Grayscale` / `Resize` folded in.
///
/// Alpha channels are dropped (not composited); 16-bit images are scaled to 8 bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFolder {
    root: PathBuf,
    channels: Channels,
    resize: Option<(usize, usize)>,
    max_pixels: u64,
}

impl ImageFolder {
    /// The folder at `root`, with the defaults: [`Channels::Auto`], no resize,
    /// [`MAX_IMAGE_PIXELS`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            channels: Channels::Auto,
            resize: None,
            max_pixels: MAX_IMAGE_PIXELS,
        }
    }

    /// The most pixels (width × height) a file's header may claim (default
    /// [`MAX_IMAGE_PIXELS`]); a file claiming more is a [`DataError::ImageTooLarge`], found
    /// before any file is decoded.
    pub fn max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// Decodes one file as [`ImageFolder::load`] decodes each of its files, with this
    /// folder's options (channels — [`Channels::Auto`] decided from this file alone —, resize
    /// and pixel limit): CHW bytes and their shape. The folder's root is not read.
    pub fn decode_file(&self, path: &Path) -> Result<(Vec<u8>, ImageShape)> {
        let resize = self.resize.map(resize_target).transpose()?;
        let (header, img) = decode_checked(path, self.max_pixels)?;
        let gray = match self.channels {
            Channels::Auto => !header.color,
            Channels::Gray => true,
            Channels::Rgb => false,
        };
        Ok(to_chw(img, gray, resize))
    }

    /// How many channels the images load with (default [`Channels::Auto`]).
    pub fn channels(mut self, channels: Channels) -> Self {
        self.channels = channels;
        self
    }

    /// Scales every image to `height × width` pixels ([`RESIZE_FILTER`], bilinear; images
    /// already of that size are kept as they are), so that files of different sizes load
    /// together. Without it, every image must have the size of the first.
    pub fn resize(mut self, height: usize, width: usize) -> Self {
        self.resize = Some((height, width));
        self
    }

    /// The class names (sorted sub-folder names) and the image files with their labels, in
    /// load order (by class, then by path).
    pub fn files(&self) -> Result<(Vec<String>, Vec<LabeledFile>)> {
        let root = &self.root;
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
                path: root.clone(),
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
        Ok((classes, files))
    }

    /// Reads every file's header, checks the sizes, then decodes every image.
    ///
    /// Errors name the file: one that cannot be read or decoded
    /// ([`DataError::Io`], [`DataError::ImageDecode`]), one claiming more than
    /// [`ImageFolder::max_pixels`] ([`DataError::ImageTooLarge`]), or, without a resize, the
    /// first whose size differs from the first file's ([`DataError::ImageSize`]).
    pub fn load(&self) -> Result<ImageDataset> {
        let resize = self.resize.map(resize_target).transpose()?;
        let (classes, files) = self.files()?;
        if files.is_empty() {
            return Err(DataError::Empty {
                path: self.root.clone(),
                reason: "no .png/.jpg/.jpeg files in the class folders".into(),
            });
        }
        // Headers only (cheap, in parallel), then checked in load order: the error names the
        // first file that cannot be read or, without a resize, whose size is not the first's.
        let headers: Vec<Result<Header>> = files
            .par_iter()
            .map(|(p, _)| read_header(p, self.max_pixels))
            .collect();
        let mut checked: Vec<Header> = Vec::with_capacity(headers.len());
        for (header, (path, _)) in headers.into_iter().zip(&files) {
            let header = header?;
            if resize.is_none()
                && let Some(first) = checked.first()
                && (header.width, header.height) != (first.width, first.height)
            {
                return Err(DataError::ImageSize {
                    path: path.clone(),
                    found_w: header.width,
                    found_h: header.height,
                    expected_w: first.width,
                    expected_h: first.height,
                    first: files[0].0.clone(),
                });
            }
            checked.push(header);
        }
        let headers = checked;
        let first = headers[0];
        let gray = match self.channels {
            Channels::Auto => headers.iter().all(|h| !h.color),
            Channels::Gray => true,
            Channels::Rgb => false,
        };
        let (width, height) = resize.unwrap_or((first.width, first.height));
        let shape = ImageShape {
            channels: if gray { 1 } else { 3 },
            height: height as usize,
            width: width as usize,
        };
        let numel = shape.numel();
        if numel == 0 {
            return Err(DataError::Empty {
                path: files[0].0.clone(),
                reason: format!("image is {width}x{height} (width x height): no pixels"),
            });
        }
        let total = numel.checked_mul(files.len()).ok_or_else(|| {
            DataError::InvalidConfig(format!(
                "{} images of {:?} do not fit in memory",
                files.len(),
                shape.dims()
            ))
        })?;
        let mut pixels = vec![0u8; total];
        let done: Vec<Result<()>> = pixels
            .par_chunks_exact_mut(numel)
            .zip(files.par_iter())
            .map(|(out, (path, _))| {
                let (chw, found) = decode_chw(path, gray, resize, self.max_pixels)?;
                if found != shape {
                    // The header promised another size than the pixels have.
                    return Err(DataError::ImageSize {
                        path: path.clone(),
                        found_w: found.width as u32,
                        found_h: found.height as u32,
                        expected_w: width,
                        expected_h: height,
                        first: files[0].0.clone(),
                    });
                }
                out.copy_from_slice(&chw);
                Ok(())
            })
            .collect();
        done.into_iter().collect::<Result<()>>()?;
        let labels = files.iter().map(|&(_, l)| l).collect();
        ImageDataset::new(pixels, labels, shape, classes)
    }
}

/// `(height, width)` as the `image` crate's `(width, height)`, checked.
fn resize_target((height, width): (usize, usize)) -> Result<(u32, u32)> {
    let bad = || {
        DataError::InvalidConfig(format!(
            "resize to {height}x{width} (height x width): both must be between 1 and {}",
            u32::MAX
        ))
    };
    let w = u32::try_from(width)
        .ok()
        .filter(|&w| w > 0)
        .ok_or_else(bad)?;
    let h = u32::try_from(height)
        .ok()
        .filter(|&h| h > 0)
        .ok_or_else(bad)?;
    Ok((w, h))
}

/// Loads an image-folder dataset from `root` with the defaults of [`ImageFolder`]: one channel
/// when every file is grayscale, else RGB; every image of the first one's size.
pub fn load_image_folder(root: impl AsRef<Path>) -> Result<ImageDataset> {
    ImageFolder::new(root.as_ref()).load()
}

/// Decodes a PNG or JPEG file, in whatever color type it has, with its header, if the header
/// claims at most `max_pixels` pixels; within the `image` crate's default allocation limit
/// (512 MiB, as `ImageReader::decode` checks it).
fn decode_checked(path: &Path, max_pixels: u64) -> Result<(Header, image::DynamicImage)> {
    let decoder = open_decoder(path)?;
    let header = checked_header(path, decoder.as_ref(), max_pixels)?;
    image::Limits::default()
        .reserve(decoder.total_bytes())
        .map_err(|e| decode_error(path, e))?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))?;
    Ok((header, img))
}

/// Decodes a PNG or JPEG file to 8-bit RGB ([`MAX_IMAGE_PIXELS`] at most).
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    Ok(decode_checked(path, MAX_IMAGE_PIXELS)?.1.to_rgb8())
}

/// Decodes one file into CHW bytes (one channel when `gray`, else three), scaled to
/// `resize` = `(width, height)` when given.
fn decode_chw(
    path: &Path,
    gray: bool,
    resize: Option<(u32, u32)>,
    max_pixels: u64,
) -> Result<(Vec<u8>, ImageShape)> {
    Ok(to_chw(decode_checked(path, max_pixels)?.1, gray, resize))
}

/// A decoded image as CHW bytes (one channel when `gray`, else three), scaled to `resize` =
/// `(width, height)` when given.
fn to_chw(
    img: image::DynamicImage,
    gray: bool,
    resize: Option<(u32, u32)>,
) -> (Vec<u8>, ImageShape) {
    let scaled = |(w, h): (u32, u32)| resize.filter(|&target| target != (w, h));
    if gray {
        let mut img = img.to_luma8();
        if let Some((w, h)) = scaled(img.dimensions()) {
            img = image::imageops::resize(&img, w, h, RESIZE_FILTER);
        }
        let shape = ImageShape {
            channels: 1,
            height: img.height() as usize,
            width: img.width() as usize,
        };
        // One channel: HWC is CHW.
        (img.into_raw(), shape)
    } else {
        let mut img = img.to_rgb8();
        if let Some((w, h)) = scaled(img.dimensions()) {
            img = image::imageops::resize(&img, w, h, RESIZE_FILTER);
        }
        let shape = ImageShape {
            channels: 3,
            height: img.height() as usize,
            width: img.width() as usize,
        };
        let mut out = vec![0u8; shape.numel()];
        hwc_to_chw(img.as_raw(), shape, &mut out);
        (out, shape)
    }
}

/// Decodes one image file into RGB CHW bytes, with its shape.
pub fn load_image_chw(path: &Path) -> Result<(Vec<u8>, ImageShape)> {
    load_image_chw_as(path, Channels::Rgb)
}

/// Decodes one image file into CHW bytes with `channels` ([`Channels::Auto`]: one channel when
/// the file is grayscale), with its shape; [`MAX_IMAGE_PIXELS`] at most.
pub fn load_image_chw_as(path: &Path, channels: Channels) -> Result<(Vec<u8>, ImageShape)> {
    ImageFolder::new(".").channels(channels).decode_file(path)
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
