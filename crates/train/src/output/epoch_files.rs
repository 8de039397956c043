//! After each epoch: `metrics.csv`, `loss.svg` and `accuracy.svg` from the whole history.

use std::path::Path;

use super::metrics_csv::write_metrics_csv;
use super::plot::{Series, write_line_chart};
use crate::error::TrainError;
use crate::report::EpochSummary;

/// Rewrites the run folder's per-epoch files from `history`.
pub(crate) fn write_epoch_files(dir: &Path, history: &[EpochSummary]) -> Result<(), TrainError> {
    write_metrics_csv(&dir.join("metrics.csv"), history)?;
    let points = |f: fn(&EpochSummary) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|e| (e.epoch as f64, f(e))).collect()
    };
    write_line_chart(
        &dir.join("loss.svg"),
        "Loss",
        "epoch",
        "cross-entropy",
        &[
            Series::new("train (mean)", points(|e| e.train_loss_mean)),
            Series::new("test", points(|e| e.test_loss)),
        ],
    )?;
    write_line_chart(
        &dir.join("accuracy.svg"),
        "Test accuracy",
        "epoch",
        "accuracy (%)",
        &[Series::new("test", points(|e| 100.0 * e.test_accuracy))],
    )?;
    Ok(())
}
