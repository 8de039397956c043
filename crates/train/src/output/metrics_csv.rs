//! `metrics.csv`: one row per epoch, rewritten atomically after every epoch.

use std::fmt::Write as _;
use std::path::Path;

use crate::atomic::write_atomic;
use crate::error::TrainError;
use crate::report::EpochSummary;

/// The header of `metrics.csv`.
pub const HEADER: &str = "epoch,train_loss_sum,train_loss_mean,train_batches,test_loss,test_accuracy,test_images,epoch_seconds,train_images_per_sec,lr,global_step";

/// The CSV text for `history` (header included).
pub fn to_csv(history: &[EpochSummary]) -> String {
    let mut out = String::with_capacity(64 * (history.len() + 1));
    out.push_str(HEADER);
    out.push('\n');
    for e in history {
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.3},{:.1},{},{}",
            e.epoch,
            e.train_loss_sum,
            e.train_loss_mean,
            e.train_batches,
            e.test_loss,
            e.test_accuracy,
            e.test_images,
            e.epoch_seconds,
            e.train_images_per_sec,
            e.lr,
            e.global_step
        );
    }
    out
}

/// Writes `history` to `path` atomically.
pub fn write_metrics_csv(path: &Path, history: &[EpochSummary]) -> Result<(), TrainError> {
    write_atomic(path, to_csv(history).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_epoch() {
        let e = EpochSummary {
            epoch: 1,
            epochs: 2,
            train_loss_sum: 10.5,
            train_loss_mean: 2.1,
            train_batches: 5,
            test_loss: 2.0,
            test_accuracy: 0.25,
            test_images: 100,
            epoch_seconds: 1.5,
            train_images_per_sec: 200.0,
            lr: 0.01,
            global_step: 5,
        };
        let csv = to_csv(&[e.clone(), EpochSummary { epoch: 2, ..e }]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], HEADER);
        assert!(lines[1].starts_with("1,10.5,2.1,5,2,0.25,100,"));
        assert_eq!(lines[1].split(',').count(), HEADER.split(',').count());
    }
}
