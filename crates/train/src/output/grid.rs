//! A PNG grid of sample images with their true and predicted labels.
//!
//! Each cell shows an image (CHW bytes, as stored in CIFAR-10) upscaled with
//! nearest-neighbour sampling, with two lines of text underneath: the true
//! label in light grey and the predicted label in green when it equals the
//! true label, red otherwise. Text uses the 8 × 8 public-domain bitmap font of the
//! `font8x8` crate (printable ASCII, in normal case; other characters are drawn as `?`):
//! crisp at the few pixels a label has, where an outline font would blur.

use std::path::Path;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};

use crate::atomic::{AtomicWriteError, write_atomic};

/// Errors raised while rendering or writing a sample grid.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// No cells were given.
    #[error("cannot render a sample grid with no images")]
    NoCells,
    /// `columns` or `scale` is zero.
    #[error("sample grid {what} must be at least 1")]
    ZeroParameter {
        /// `"columns"` or `"scale"`.
        what: &'static str,
    },
    /// A cell has zero height or width.
    #[error("sample grid cell {index} has an empty image ({height}x{width})")]
    EmptyImage {
        /// Index of the cell.
        index: usize,
        /// Image height in pixels.
        height: usize,
        /// Image width in pixels.
        width: usize,
    },
    /// A cell's buffer length is not `3 * height * width`.
    #[error(
        "sample grid cell {index}: a 3x{height}x{width} CHW image needs {expected} bytes but {actual} were given"
    )]
    BufferLength {
        /// Index of the cell.
        index: usize,
        /// Image height in pixels.
        height: usize,
        /// Image width in pixels.
        width: usize,
        /// `3 * height * width`.
        expected: usize,
        /// Length of the buffer given.
        actual: usize,
    },
    /// The rendered grid would be too large.
    #[error("sample grid would be too large ({detail})")]
    TooLarge {
        /// Which dimension overflowed.
        detail: String,
    },
    /// PNG encoding failed.
    #[error("cannot encode sample grid as PNG: {0}")]
    Encode(#[from] image::ImageError),
    /// Writing the PNG file failed.
    #[error("cannot write sample grid: {0}")]
    Write(#[from] AtomicWriteError),
}

/// One image of the grid with its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridCell<'a> {
    /// Pixels as `3 * height * width` bytes in CHW order (all red, then all
    /// green, then all blue), as in the CIFAR-10 binary files.
    pub image_chw: &'a [u8],
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// The true class name.
    pub true_label: &'a str,
    /// The predicted class name.
    pub predicted_label: &'a str,
}

/// Background colour of the grid.
pub const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);
/// Colour of the true-label text.
pub const TRUE_LABEL_COLOUR: Rgb<u8> = Rgb([220, 220, 220]);
/// Colour of a correct prediction.
pub const CORRECT_COLOUR: Rgb<u8> = Rgb([40, 200, 60]);
/// Colour of a wrong prediction.
pub const WRONG_COLOUR: Rgb<u8> = Rgb([235, 50, 50]);

/// Glyph width and height, in font pixels (the advance too: the glyphs carry their spacing).
const GLYPH: u32 = 8;
const GLYPH_H: u32 = GLYPH;
/// Padding around each cell, in output pixels.
const PAD: u32 = 4;
/// Gap between the image and the first text line, in output pixels.
const TEXT_GAP: u32 = 3;
/// Gap between text lines, in font pixels.
const LINE_GAP: u32 = 2;

/// The 8 × 8 bitmap of `c` (rows top to bottom, bit 0 = leftmost pixel); `?` for characters
/// outside printable ASCII.
fn glyph(c: char) -> [u8; 8] {
    let printable = c.is_ascii_graphic() || c == ' ';
    font8x8::legacy::BASIC_LEGACY[if printable { c as usize } else { '?' as usize }]
}

/// Width in font pixels of `text`.
fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * GLYPH
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel being a
/// `font_scale` square; pixels falling outside the image are clipped.
fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, font_scale: u32, colour: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as u32 * GLYPH * font_scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..font_scale {
                    for dx in 0..font_scale {
                        let px = gx + col * font_scale + dx;
                        let py = y + row as u32 * font_scale + dy;
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, colour);
                        }
                    }
                }
            }
        }
    }
}

fn true_line(cell: &GridCell<'_>) -> String {
    format!("true: {}", cell.true_label)
}

fn predicted_line(cell: &GridCell<'_>) -> String {
    format!("pred: {}", cell.predicted_label)
}

/// The font scale used for a given image scale.
fn font_scale_for(scale: u32) -> u32 {
    (scale / 2).max(1)
}

fn too_large(detail: &str) -> GridError {
    GridError::TooLarge {
        detail: detail.to_string(),
    }
}

/// Renders `cells` into a grid `columns` wide, each image upscaled `scale`
/// times, with the labels underneath.
///
/// All cells get the size of the largest image and the longest label; images
/// are placed at the top-left of their cell, after a padding of 4 pixels.
pub fn render_grid(
    cells: &[GridCell<'_>],
    columns: usize,
    scale: u32,
) -> Result<RgbImage, GridError> {
    if cells.is_empty() {
        return Err(GridError::NoCells);
    }
    if columns == 0 {
        return Err(GridError::ZeroParameter { what: "columns" });
    }
    if scale == 0 {
        return Err(GridError::ZeroParameter { what: "scale" });
    }
    for (index, cell) in cells.iter().enumerate() {
        if cell.height == 0 || cell.width == 0 {
            return Err(GridError::EmptyImage {
                index,
                height: cell.height,
                width: cell.width,
            });
        }
        let expected = cell
            .height
            .checked_mul(cell.width)
            .and_then(|n| n.checked_mul(3))
            .ok_or_else(|| too_large("image dimensions overflow"))?;
        if cell.image_chw.len() != expected {
            return Err(GridError::BufferLength {
                index,
                height: cell.height,
                width: cell.width,
                expected,
                actual: cell.image_chw.len(),
            });
        }
    }

    let font_scale = font_scale_for(scale);
    let to_u32 = |v: usize, what: &str| u32::try_from(v).map_err(|_| too_large(what));
    let max_h = to_u32(
        cells.iter().map(|c| c.height).max().unwrap_or(0),
        "image height",
    )?;
    let max_w = to_u32(
        cells.iter().map(|c| c.width).max().unwrap_or(0),
        "image width",
    )?;
    let max_text = cells
        .iter()
        .map(|c| text_width(&true_line(c)).max(text_width(&predicted_line(c))))
        .max()
        .unwrap_or(0);

    let img_w = max_w
        .checked_mul(scale)
        .ok_or_else(|| too_large("cell width"))?;
    let img_h = max_h
        .checked_mul(scale)
        .ok_or_else(|| too_large("cell height"))?;
    let text_w = max_text
        .checked_mul(font_scale)
        .ok_or_else(|| too_large("label width"))?;
    let text_h = (2 * GLYPH_H + LINE_GAP) * font_scale;
    let cell_w = img_w
        .max(text_w)
        .checked_add(2 * PAD)
        .ok_or_else(|| too_large("cell width"))?;
    let cell_h = img_h
        .checked_add(TEXT_GAP + text_h + 2 * PAD)
        .ok_or_else(|| too_large("cell height"))?;
    let columns = columns.min(cells.len());
    let rows = cells.len().div_ceil(columns);
    let width = to_u32(columns, "columns")?
        .checked_mul(cell_w)
        .ok_or_else(|| too_large("grid width"))?;
    let height = to_u32(rows, "rows")?
        .checked_mul(cell_h)
        .ok_or_else(|| too_large("grid height"))?;
    // Guard against allocating absurd buffers (the PNG format allows 2^31-1).
    if u64::from(width) * u64::from(height) > 1 << 28 {
        return Err(too_large(&format!("{width}x{height} pixels")));
    }

    let mut img = RgbImage::from_pixel(width, height, BACKGROUND);
    for (i, cell) in cells.iter().enumerate() {
        // `i / columns < rows` and `i % columns < columns` fit in u32 (checked above).
        let x0 = (i % columns) as u32 * cell_w + PAD;
        let y0 = (i / columns) as u32 * cell_h + PAD;
        let (h, w) = (cell.height, cell.width);
        let plane = h * w;
        for y in 0..h {
            for x in 0..w {
                let idx = y * w + x;
                let px = Rgb([
                    cell.image_chw[idx],
                    cell.image_chw[plane + idx],
                    cell.image_chw[2 * plane + idx],
                ]);
                let (bx, by) = (x0 + x as u32 * scale, y0 + y as u32 * scale);
                for dy in 0..scale {
                    for dx in 0..scale {
                        img.put_pixel(bx + dx, by + dy, px);
                    }
                }
            }
        }
        let ty = y0 + img_h + TEXT_GAP;
        draw_text(
            &mut img,
            x0,
            ty,
            &true_line(cell),
            font_scale,
            TRUE_LABEL_COLOUR,
        );
        let colour = if cell.true_label == cell.predicted_label {
            CORRECT_COLOUR
        } else {
            WRONG_COLOUR
        };
        let py = ty + (GLYPH_H + LINE_GAP) * font_scale;
        draw_text(&mut img, x0, py, &predicted_line(cell), font_scale, colour);
    }
    Ok(img)
}

/// Encodes an RGB image as PNG bytes.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>, GridError> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes).write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        ExtendedColorType::Rgb8,
    )?;
    Ok(bytes)
}

/// Renders a sample grid (see [`render_grid`]) and writes it as a PNG file
/// atomically.
pub fn write_grid_png(
    path: &Path,
    cells: &[GridCell<'_>],
    columns: usize,
    scale: u32,
) -> Result<(), GridError> {
    let img = render_grid(cells, columns, scale)?;
    let bytes = encode_png(&img)?;
    write_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A 2x2 CHW image whose pixel (y, x) has R = 10*y + x + base, G = 100,
    /// B = 200 - base.
    fn image_2x2(base: u8) -> Vec<u8> {
        let mut v = Vec::new();
        for y in 0..2u8 {
            for x in 0..2u8 {
                v.push(10 * y + x + base);
            }
        }
        v.extend([100; 4]);
        v.extend([200 - base; 4]);
        v
    }

    fn count(img: &RgbImage, x0: u32, y0: u32, w: u32, h: u32, c: Rgb<u8>) -> usize {
        let mut n = 0;
        for y in y0..(y0 + h).min(img.height()) {
            for x in x0..(x0 + w).min(img.width()) {
                if *img.get_pixel(x, y) == c {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn layout_pixels_and_label_colours() {
        let a = image_2x2(0);
        let b = image_2x2(50);
        let c = image_2x2(100);
        let cells = [
            GridCell {
                image_chw: &a,
                height: 2,
                width: 2,
                true_label: "cat",
                predicted_label: "cat",
            },
            GridCell {
                image_chw: &b,
                height: 2,
                width: 2,
                true_label: "dog",
                predicted_label: "cat",
            },
            GridCell {
                image_chw: &c,
                height: 2,
                width: 2,
                true_label: "ship",
                predicted_label: "ship",
            },
        ];
        let scale = 3;
        let img = render_grid(&cells, 2, scale).unwrap();
        // Font scale 1; the longest line is "true: ship" (10 chars): 80 px,
        // wider than the 6 px image. Text block: 8 + 2 + 8 = 18 px.
        let cell_w = 80 + 2 * PAD;
        let cell_h = 6 + TEXT_GAP + 18 + 2 * PAD;
        assert_eq!(img.dimensions(), (2 * cell_w, 2 * cell_h));

        // Pixel (y=1, x=0) of image `b` (second cell, first row), upscaled 3x:
        // it covers output pixels x in [cell_w+PAD, +3), y in [PAD+3, PAD+6).
        let expected = Rgb([10 + 50, 100, 150]);
        for dy in 0..3 {
            for dx in 0..3 {
                assert_eq!(*img.get_pixel(cell_w + PAD + dx, PAD + 3 + dy), expected);
            }
        }
        // Pixel (y=0, x=1) of image `c` (third cell: second row, first column).
        assert_eq!(
            *img.get_pixel(PAD + 3, cell_h + PAD),
            Rgb([1 + 100, 100, 100])
        );
        // Outside the images (right of cell 0's image, above its text) is background.
        assert_eq!(*img.get_pixel(PAD + 6, PAD), BACKGROUND);

        // Text: true label light grey, prediction green for a match, red otherwise.
        let text_y = PAD + 6 + TEXT_GAP;
        let pred_y = text_y + GLYPH_H + LINE_GAP;
        let grey0 = count(&img, 0, text_y, cell_w, GLYPH_H, TRUE_LABEL_COLOUR);
        assert!(grey0 > 20, "{grey0}");
        assert!(count(&img, 0, pred_y, cell_w, GLYPH_H, CORRECT_COLOUR) > 20);
        assert_eq!(count(&img, 0, pred_y, cell_w, GLYPH_H, WRONG_COLOUR), 0);
        assert!(count(&img, cell_w, pred_y, cell_w, GLYPH_H, WRONG_COLOUR) > 20);
        assert_eq!(
            count(&img, cell_w, pred_y, cell_w, GLYPH_H, CORRECT_COLOUR),
            0
        );
        // The fourth slot (bottom right) is empty.
        let bg = count(&img, cell_w, cell_h, cell_w, cell_h, BACKGROUND);
        assert_eq!(bg as u32, cell_w * cell_h);
    }

    #[test]
    fn text_is_drawn_from_the_glyphs() {
        let mut img = RgbImage::from_pixel(16, 8, BACKGROUND);
        draw_text(&mut img, 0, 0, "T1", 1, CORRECT_COLOUR);
        // font8x8's 'T' (0x54): rows 0x3F, 0x2D, 0x0C, ..., 0x1E; bit 0 is the leftmost pixel.
        let on = |x, y| *img.get_pixel(x, y) == CORRECT_COLOUR;
        assert!((0..6).all(|x| on(x, 0)) && !on(6, 0) && !on(7, 0));
        assert!(on(0, 1) && !on(1, 1) && on(2, 1) && on(3, 1) && !on(4, 1) && on(5, 1));
        assert!(!on(0, 6) && on(1, 6) && on(4, 6) && !on(5, 6));
        assert!((0..16).all(|x| !on(x, 7)));
        // '1' (0x31) starts at x = 8: its bottom filled row is 0x3F.
        assert!((8..14).all(|x| on(x, 6)) && !on(14, 6));
        // Lower case has its own shapes; characters outside ASCII become '?'.
        assert_ne!(glyph('t'), glyph('T'));
        assert_eq!(glyph('é'), glyph('?'));
        assert_eq!(glyph('\n'), glyph('?'));
        assert_eq!(text_width("ab"), 16);
    }

    #[test]
    fn font_grows_with_scale() {
        let a = image_2x2(0);
        let cell = GridCell {
            image_chw: &a,
            height: 2,
            width: 2,
            true_label: "a",
            predicted_label: "a",
        };
        let small = render_grid(&[cell], 1, 2).unwrap();
        let large = render_grid(&[cell], 1, 4).unwrap();
        // "true: a" is 7 chars = 56 font px; font scale 1 at x2, 2 at x4.
        assert_eq!(small.width(), 56 + 2 * PAD);
        assert_eq!(large.width(), 112 + 2 * PAD);
        assert_eq!(large.height(), 8 + TEXT_GAP + 36 + 2 * PAD);
    }

    #[test]
    fn bad_input_is_rejected() {
        let short = vec![0u8; 3 * 2 * 2 - 1];
        let cell = GridCell {
            image_chw: &short,
            height: 2,
            width: 2,
            true_label: "a",
            predicted_label: "b",
        };
        let err = render_grid(&[cell], 1, 3).unwrap_err();
        assert!(
            matches!(
                err,
                GridError::BufferLength {
                    index: 0,
                    expected: 12,
                    actual: 11,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("12 bytes"));
        assert!(matches!(render_grid(&[], 1, 3), Err(GridError::NoCells)));
        let ok = image_2x2(0);
        let good = GridCell {
            image_chw: &ok,
            ..cell
        };
        assert!(matches!(
            render_grid(&[good], 0, 3),
            Err(GridError::ZeroParameter { what: "columns" })
        ));
        assert!(matches!(
            render_grid(&[good], 1, 0),
            Err(GridError::ZeroParameter { what: "scale" })
        ));
        let empty = GridCell {
            image_chw: &[],
            height: 0,
            width: 4,
            ..cell
        };
        assert!(matches!(
            render_grid(&[good, empty], 2, 1),
            Err(GridError::EmptyImage { index: 1, .. })
        ));
    }

    #[test]
    fn png_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.png");
        let a = image_2x2(7);
        let cells = [GridCell {
            image_chw: &a,
            height: 2,
            width: 2,
            true_label: "plane",
            predicted_label: "bird",
        }];
        write_grid_png(&path, &cells, 4, 3).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoded = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(decoded, render_grid(&cells, 4, 3).unwrap());
        let err = write_grid_png(&dir.path().join("nope/x.png"), &cells, 1, 1).unwrap_err();
        assert!(err.to_string().contains("x.png"), "{err}");
    }
}
