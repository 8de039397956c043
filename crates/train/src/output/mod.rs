//! What a run writes into its folder besides checkpoints: TensorBoard event files,
//! `metrics.csv`, the loss and accuracy charts, and at the end the confusion matrix,
//! per-class accuracy and the sample grid. Each writer is on its own; the loop
//! ([`crate::fit`]) calls them.

pub mod confusion;
pub(crate) mod epoch_files;
pub(crate) mod final_reports;
pub mod grid;
pub mod metrics_csv;
pub mod plot;
pub mod tensorboard;
