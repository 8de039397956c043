//! A user's crate, built by scripts/package_check.sh against the packaged torchlet: the
//! tutorial's net trained for one step on eight generated images.
#![allow(clippy::print_stdout)]

use torchlet::data::{ImageDataset, ImageShape};
use torchlet::train::{DeviceChoice, TrainConfig, Trainer, select_device};

fn main() -> anyhow::Result<()> {
    let n = 8;
    let pixels: Vec<u8> = (0..n * 3 * 32 * 32).map(|i| (i * 7 % 251) as u8).collect();
    let labels: Vec<u16> = (0..n as u16).map(|i| i % 2).collect();
    let classes = vec!["cat".to_string(), "dog".to_string()];
    let data = ImageDataset::new(pixels, labels, ImageShape::CIFAR, classes)?;
    let config = TrainConfig {
        epochs: 1,
        batch_size: n,
        log_every: 0,
        ..TrainConfig::tutorial()
    };
    let out = tempfile::tempdir()?;
    let report = Trainer::new(config, out.path())
        .device(select_device(DeviceChoice::Flex)?)
        .final_reports(false)
        .fit(data.clone(), data)?;
    let epoch = &report.history[0];
    anyhow::ensure!(epoch.train_batches == 1, "{} steps, not 1", epoch.train_batches);
    anyhow::ensure!(epoch.train_loss_mean.is_finite(), "loss {}", epoch.train_loss_mean);
    println!(
        "the packaged torchlet trained one step: loss {:.4}, test accuracy {:.1}%",
        epoch.train_loss_mean,
        100.0 * epoch.test_accuracy
    );
    Ok(())
}
