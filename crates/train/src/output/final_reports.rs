//! At the end of a run: `confusion.csv`, `confusion.md`, `per_class_accuracy.csv` and
//! `samples.png` (the first test images with their true and predicted classes).

use std::path::Path;

use torchlet_data::{DataLoader, ImageDataset};
use torchlet_model::ImageClassifier;

use super::confusion::ConfusionMatrix;
use super::grid::{GridCell, write_grid_png};
use crate::atomic::write_atomic;
use crate::error::TrainError;
use crate::fit::predict_all;
use crate::report::Reporter;

/// Number of test images shown in `samples.png`.
pub const GRID_IMAGES: usize = 32;

/// Evaluates `model` on the whole test loader and writes the final reports.
pub(crate) fn write_final_reports<M: ImageClassifier>(
    out_dir: &Path,
    model: &M,
    test_loader: &DataLoader,
    test: &ImageDataset,
    reporter: &Reporter<'_>,
) -> Result<ConfusionMatrix, TrainError> {
    let classes = test.classes().to_vec();
    let mut matrix = ConfusionMatrix::new(classes.clone());
    let (targets, predictions) = predict_all(model, test_loader)?;
    matrix.add_batch(&targets, &predictions)?;
    let write = |name: &str, text: String| -> Result<(), TrainError> {
        write_atomic(&out_dir.join(name), text.as_bytes())?;
        Ok(())
    };
    write("confusion.csv", matrix.to_csv())?;
    write("confusion.md", matrix.to_markdown())?;
    let mut per_class = String::from("class,accuracy,images\n");
    for ((name, acc), total) in classes
        .iter()
        .zip(matrix.per_class_accuracy())
        .zip(matrix.class_totals())
    {
        per_class.push_str(&format!("{name},{acc},{total}\n"));
    }
    write("per_class_accuracy.csv", per_class)?;
    write_samples(out_dir, test, &classes, &predictions)?;
    reporter.message(&format!(
        "final model: test accuracy {:.2}% ({} / {}); per-class accuracy, confusion matrix and samples.png written to {}",
        100.0 * matrix.accuracy(),
        matrix.correct(),
        matrix.total(),
        out_dir.display()
    ));
    Ok(matrix)
}

/// `samples.png`: the first [`GRID_IMAGES`] test images, 8 a row (grayscale shown as gray;
/// images with other channel counts than 1 or 3 have no grid).
fn write_samples(
    out_dir: &Path,
    test: &ImageDataset,
    classes: &[String],
    predictions: &[i64],
) -> Result<(), TrainError> {
    let shape = test.shape();
    if shape.channels != 1 && shape.channels != 3 {
        tracing::warn!(
            channels = shape.channels,
            "no samples.png for this channel count"
        );
        return Ok(());
    }
    let name = |i: Option<usize>| i.and_then(|i| classes.get(i)).map_or("?", String::as_str);
    let images: Vec<(Vec<u8>, usize, i64)> = predictions
        .iter()
        .enumerate()
        .take(GRID_IMAGES)
        .filter_map(|(i, &p)| {
            let chw = test.image(i)?;
            let rgb = if shape.channels == 1 {
                chw.repeat(3)
            } else {
                chw.to_vec()
            };
            Some((rgb, i, p))
        })
        .collect();
    let cells: Vec<GridCell<'_>> = images
        .iter()
        .map(|(rgb, i, p)| GridCell {
            image_chw: rgb,
            height: shape.height,
            width: shape.width,
            true_label: name(test.label(*i)),
            predicted_label: name(usize::try_from(*p).ok()),
        })
        .collect();
    if !cells.is_empty() {
        write_grid_png(&out_dir.join("samples.png"), &cells, 8, 3)?;
    }
    Ok(())
}
