//! Chapter 1 — data: the CIFAR-10 dataset, `ToTensor`, `DataLoader`.
//!
//! Tiny generated archives test every fault; the real archive (`../shared/cifar10/`) tests
//! counts, labels, bytes and values. Without `CI` set, real-data tests say SKIPPED when the
//! archive is absent; with `CI` set they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::Device;
use sha2::{Digest, Sha256};
use torchlet::burn;
use torchlet::data::cifar10::{CLASSES, FOLDER, RECORD_BYTES};
use torchlet::data::{Cifar10, Compose, DataError, DataLoader, ImageDataset, Split, Transform};

fn real() -> Option<&'static Cifar10> {
    static DATA: OnceLock<Option<Cifar10>> = OnceLock::new();
    DATA.get_or_init(|| common::real_archive().map(|p| Cifar10::from_archive(p).unwrap()))
        .as_ref()
}

// ---------------------------------------------------------------- the real archive

#[test]
fn real_archive_has_the_official_counts() {
    let Some(c) = real() else { return };
    assert_eq!(c.train.len(), 50_000);
    assert_eq!(c.test.len(), 10_000);
    assert_eq!(c.train.class_counts(), vec![5_000; 10]);
    assert_eq!(c.test.class_counts(), vec![1_000; 10]);
    assert_eq!(c.classes(), CLASSES.map(String::from).as_slice());
    assert_eq!(c.split(Split::Test).len(), 10_000);
}

#[test]
fn real_data_batch_1_counts_and_first_labels() {
    let Some(c) = real() else { return };
    let first = &c.train.labels()[..10_000];
    let mut counts = [0usize; 10];
    for &l in first {
        counts[usize::from(l)] += 1;
    }
    assert_eq!(
        counts,
        [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    );
    assert_eq!(&first[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
}

#[test]
fn real_records_round_trip_to_the_published_member_hashes() {
    // Re-serialising the parsed records (label byte + 3,072 pixels) must give back the exact
    // member files: their sha256 values are published in ../shared/cifar10/README.md.
    let Some(c) = real() else { return };
    let expect = [
        (
            "333949a6a78a1f4add8a2ea152797cf44ba138082dc574c743bc4260fd023c11",
            &c.train,
            0,
        ),
        (
            "490f5ead4f04a3eb71d5898eb551e0d8d2c592feb778fb9b109a006b3f231495",
            &c.train,
            40_000,
        ),
        (
            "e1d63264f61c1e2b34758441459fe68aa3e9b45bc058242f54e5043a2137c476",
            &c.test,
            0,
        ),
    ];
    for (sha, ds, start) in expect {
        let mut h = Sha256::new();
        for i in start..start + 10_000 {
            h.update([ds.label(i).unwrap() as u8]);
            h.update(ds.image(i).unwrap());
        }
        let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            got, sha,
            "records {start}.. do not re-serialise to the member file"
        );
    }
}

#[test]
fn real_to_tensor_is_byte_over_255_at_known_positions() {
    let Some(c) = real() else { return };
    // The first training image is the official frog; its first red row starts 59 43 50 68 98.
    assert_eq!(&c.train.image(0).unwrap()[..5], &[59, 43, 50, 68, 98]);
    let loader = DataLoader::builder(c.train.clone())
        .batch_size(64)
        .device(&Device::flex())
        .build()
        .unwrap();
    let batch = loader.iter().next().unwrap();
    assert_eq!(batch.images.dims(), [64, 3, 32, 32]);
    assert_eq!(batch.targets.dims(), [64]);
    let values = batch.images.into_data().try_to_vec::<f32>().unwrap();
    let targets = batch
        .targets
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    assert_eq!(&targets[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    assert_eq!(values[0], 59.0 / 255.0);
    // (image, channel, row, col) positions, checked against the dataset's bytes.
    for (n, ch, y, x) in [(0, 0, 0, 1), (0, 2, 31, 31), (5, 1, 16, 7), (63, 0, 10, 20)] {
        let byte = c.train.image(n).unwrap()[ch * 1024 + y * 32 + x];
        assert_eq!(
            values[((n * 3 + ch) * 32 + y) * 32 + x],
            byte as f32 / 255.0
        );
    }
}

#[test]
fn real_shuffle_is_a_seeded_permutation() {
    let Some(c) = real() else { return };
    let make = |seed| {
        DataLoader::builder(c.train.clone())
            .shuffle(true)
            .seed(seed)
            .device(&Device::flex())
            .build()
            .unwrap()
    };
    let (a, b) = (make(1), make(1));
    assert_eq!(a.order(0), b.order(0));
    assert_ne!(a.order(0), a.order(1), "a new order each epoch");
    assert_ne!(a.order(0), make(2).order(0));
    let mut sorted = a.order(3);
    sorted.sort_unstable();
    assert!(sorted.iter().enumerate().all(|(i, &v)| v as usize == i));
    assert_eq!(a.len(), 782, "50,000 / 64 rounded up");
}

// ---------------------------------------------------------------- tiny fixtures

fn fixture_archive(dir: &std::path::Path, members: &[(String, Vec<u8>)]) -> PathBuf {
    let p = dir.join("cifar.tar.gz");
    common::write_archive(&p, members);
    p
}

#[test]
fn reads_a_tiny_archive_and_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let members = common::members(7);
    let c = Cifar10::open(fixture_archive(dir.path(), &members)).unwrap();
    assert_eq!(c.train.len(), 35);
    assert_eq!(c.test.len(), 7);
    // data_batch_2's third record is train item 7 + 2.
    let rec = common::record(2, 2 * 1000 + 2);
    assert_eq!(c.train.label(9), Some(2));
    assert_eq!(c.train.image(9).unwrap(), &rec[1..]);

    // The same members extracted to a folder, in any member order.
    let root = dir.path().join("extracted");
    for (name, bytes) in members.iter().rev() {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let from_root = Cifar10::open(&root).unwrap();
    let from_folder = Cifar10::from_dir(root.join(FOLDER)).unwrap();
    assert_eq!(from_root.train, c.train);
    assert_eq!(from_folder.test, c.test);
}

#[test]
fn member_order_in_the_archive_does_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = common::members(3);
    let a = Cifar10::open(fixture_archive(dir.path(), &members)).unwrap();
    members.reverse();
    let b = Cifar10::open(fixture_archive(dir.path(), &members)).unwrap();
    assert_eq!(a.train, b.train);
}

fn open_err(members: &[(String, Vec<u8>)]) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    Cifar10::open(fixture_archive(dir.path(), members)).unwrap_err()
}

#[test]
fn missing_member_is_named() {
    let mut m = common::members(2);
    m.remove(3); // data_batch_4.bin
    let err = open_err(&m);
    assert!(
        matches!(&err, DataError::MissingMember { member, .. } if member.ends_with("data_batch_4.bin")),
        "{err}"
    );
    assert!(err.to_string().contains("cifar.tar.gz"), "{err}");
}

#[test]
fn size_not_a_multiple_of_3073_is_an_error() {
    let mut m = common::members(2);
    m[5].1.extend_from_slice(&[0; 100]);
    let err = open_err(&m);
    assert!(
        matches!(err, DataError::TruncatedRecords { len, record: RECORD_BYTES, .. } if len == 2 * 3073 + 100),
        "{err}"
    );
    assert!(err.to_string().contains("test_batch.bin"), "{err}");
}

#[test]
fn label_over_nine_is_an_error() {
    let mut m = common::members(3);
    m[1].1[2 * RECORD_BYTES] = 12;
    let err = open_err(&m);
    assert!(
        matches!(
            err,
            DataError::BadLabel {
                record: 2,
                label: 12,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("data_batch_2.bin"), "{err}");
}

#[test]
fn wrong_number_of_class_names_is_an_error() {
    let mut m = common::members(1);
    m[6].1 = b"airplane\nautomobile\nbird\n".to_vec();
    let err = open_err(&m);
    assert!(
        matches!(
            err,
            DataError::ClassNames {
                expected: 10,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("batches.meta.txt"), "{err}");
}

#[test]
fn corrupt_gzip_and_tar_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::archive_bytes(&common::members(2));
    let p = dir.path().join("bad.tar.gz");

    // Flipped bytes inside the deflate stream.
    let mut flipped = good.clone();
    for b in &mut flipped[200..260] {
        *b ^= 0xa5;
    }
    std::fs::write(&p, &flipped).unwrap();
    let err = Cifar10::open(&p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CorruptArchive { .. }
                | DataError::MissingMember { .. }
                | DataError::TruncatedRecords { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("bad.tar.gz"), "{err}");

    // Cut in half: the gzip stream ends early.
    std::fs::write(&p, &good[..good.len() / 2]).unwrap();
    let err = Cifar10::open(&p).unwrap_err();
    assert!(matches!(err, DataError::CorruptArchive { .. }), "{err}");

    // Not gzip at all.
    std::fs::write(&p, b"definitely not a gzip stream").unwrap();
    assert!(matches!(
        Cifar10::open(&p).unwrap_err(),
        DataError::CorruptArchive { .. }
    ));

    // Valid gzip around a broken tar header.
    let mut tar_bytes = Vec::new();
    {
        let mut gz = flate2::read::GzDecoder::new(&good[..]);
        std::io::Read::read_to_end(&mut gz, &mut tar_bytes).unwrap();
    }
    tar_bytes[148..156].copy_from_slice(b"9999999\0"); // header checksum
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &tar_bytes).unwrap();
    std::fs::write(&p, enc.finish().unwrap()).unwrap();
    let err = Cifar10::open(&p).unwrap_err();
    assert!(matches!(err, DataError::CorruptArchive { .. }), "{err}");

    // A file that does not exist.
    let err = Cifar10::open(dir.path().join("nope.tar.gz")).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("nope.tar.gz"));
}

// ---------------------------------------------------------------- DataLoader

fn tiny_dataset(n: usize) -> ImageDataset {
    let pixels = (0..n * 3072).map(|i| (i * 7 % 256) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u16).collect();
    ImageDataset::new(
        pixels,
        labels,
        torchlet::data::ImageShape::CIFAR,
        CLASSES.map(String::from).to_vec(),
    )
    .unwrap()
}

fn collect(loader: &DataLoader, epoch: u64) -> Vec<(Vec<usize>, Vec<f32>, Vec<i64>)> {
    loader
        .iter_epoch(epoch)
        .map(|b| {
            let dims = b.images.dims().to_vec();
            let v = b.images.into_data().try_to_vec::<f32>().unwrap();
            let t = b
                .targets
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap();
            (dims, v, t)
        })
        .collect()
}

#[test]
fn batches_follow_the_order_and_drop_last() {
    let ds = tiny_dataset(10);
    let base = || {
        DataLoader::builder(ds.clone())
            .batch_size(4)
            .device(&Device::flex())
    };
    let keep = base().build().unwrap();
    let drop = base().drop_last(true).build().unwrap();
    assert_eq!((keep.len(), keep.num_images()), (3, 10));
    assert_eq!((drop.len(), drop.num_images()), (2, 8));
    let sizes: Vec<usize> = collect(&keep, 0).iter().map(|b| b.0[0]).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(collect(&drop, 0).len(), 2);

    let shuffled = base().shuffle(true).seed(3).build().unwrap();
    let order = shuffled.order(0);
    let targets: Vec<i64> = collect(&shuffled, 0)
        .into_iter()
        .flat_map(|b| b.2)
        .collect();
    let expect: Vec<i64> = order.iter().map(|&i| (i % 10) as i64).collect();
    assert_eq!(targets, expect);
}

#[test]
fn workers_do_not_change_the_batches() {
    let ds = tiny_dataset(37);
    let make = |workers| {
        DataLoader::builder(ds.clone())
            .batch_size(5)
            .shuffle(true)
            .seed(11)
            .num_workers(workers)
            .transform(Compose::cifar10_augment())
            .device(&Device::flex())
            .build()
            .unwrap()
    };
    let inline = collect(&make(0), 2);
    assert_eq!(inline, collect(&make(1), 2));
    assert_eq!(inline, collect(&make(3), 2));
    assert_ne!(
        inline,
        collect(&make(0), 3),
        "a new epoch draws new augmentations"
    );
}

/// Batch buffers are recycled once their tensor is dropped: batches of later epochs equal fresh
/// host batches (including a short last batch into a larger recycled buffer), and tensors still
/// held keep their values while the loader runs on.
#[test]
fn recycled_batch_buffers_never_leak_into_live_tensors() {
    let ds = tiny_dataset(23);
    for workers in [0, 2] {
        let loader = DataLoader::builder(ds.clone())
            .batch_size(5)
            .shuffle(true)
            .seed(5)
            .num_workers(workers)
            .transform(Compose::cifar10_augment())
            .device(&Device::flex())
            .build()
            .unwrap();
        let expected = |epoch: u64| -> Vec<Vec<f32>> {
            let order = loader.order(epoch);
            (0..loader.len())
                .map(|i| loader.host_batch(epoch, &order, i).images)
                .collect()
        };
        let held: Vec<_> = loader.iter_epoch(0).collect();
        for epoch in 1..4 {
            let got: Vec<Vec<f32>> = collect(&loader, epoch).into_iter().map(|b| b.1).collect();
            assert_eq!(got, expected(epoch), "epoch {epoch}, {workers} workers");
        }
        let held: Vec<Vec<f32>> = held
            .into_iter()
            .map(|b| b.images.into_data().try_to_vec::<f32>().unwrap())
            .collect();
        assert_eq!(held, expected(0), "{workers} workers");
        assert_eq!(held.last().map(|v| v.len()), Some(3 * 3072));
    }
}

/// Targets of every batch of the loader's next epoch.
fn next_epoch_targets(loader: &DataLoader) -> Vec<Vec<i64>> {
    loader
        .iter()
        .map(|b| {
            b.targets
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap()
        })
        .collect()
}

#[test]
fn iter_advances_the_epoch_and_set_epoch_rewinds_it() {
    let loader = DataLoader::builder(tiny_dataset(20))
        .batch_size(20)
        .shuffle(true)
        .device(&Device::flex())
        .build()
        .unwrap();
    let first = collect(&loader, 0);
    let a = next_epoch_targets(&loader);
    let b = next_epoch_targets(&loader);
    assert_eq!(a[0], first[0].2);
    assert_ne!(a, b);
    loader.set_epoch(0);
    let again = next_epoch_targets(&loader);
    assert_eq!(a, again);
}

#[test]
fn normalize_presets_apply_per_channel() {
    let ds = tiny_dataset(2);
    let loader = DataLoader::builder(ds.clone())
        .transform(Compose::new(vec![Transform::ToTensor, Transform::normalize_half()]).unwrap())
        .device(&Device::flex())
        .build()
        .unwrap();
    let v = &collect(&loader, 0)[0].1;
    for i in [0, 1500, 3071, 4000] {
        let b = ds.pixels()[i] as f32;
        assert_eq!(v[i], (b / 255.0 - 0.5) / 0.5);
    }
}

#[test]
fn bad_loader_settings_are_errors() {
    assert!(
        DataLoader::builder(tiny_dataset(2))
            .batch_size(0)
            .build()
            .is_err()
    );
    let crop_too_big =
        Compose::new(vec![Transform::random_crop(64, 0), Transform::ToTensor]).unwrap();
    assert!(
        DataLoader::builder(tiny_dataset(2))
            .transform(crop_too_big)
            .build()
            .is_err()
    );
}

#[test]
fn burn_dataloader_trait_and_learner_view() {
    let loader = DataLoader::builder(tiny_dataset(10))
        .batch_size(4)
        .device(&Device::flex())
        .build()
        .unwrap();
    let as_burn: &dyn burn::data::dataloader::DataLoader<torchlet::data::ImageBatch> = &loader;
    assert_eq!(as_burn.num_items(), 10);
    let batches: Vec<_> = as_burn.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 3);
    let half = as_burn.slice(0, 6);
    assert_eq!(half.num_items(), 6);
    assert_eq!(half.iter().count(), 2);
}

#[test]
fn burn_builder_takes_the_dataset_and_batcher() {
    use burn::data::dataloader::DataLoaderBuilder;
    let ds = tiny_dataset(9);
    let batcher = torchlet::data::ImageBatcher::new(Compose::to_tensor(), ds.shape(), 0).unwrap();
    let loader = DataLoaderBuilder::new(batcher)
        .batch_size(4)
        .set_device(Device::flex())
        .build(ds.clone());
    let batches: Vec<_> = loader.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 3);
    let v = batches[0]
        .images
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(v[5], ds.pixels()[5] as f32 / 255.0);
}

#[cfg(feature = "ndarray")]
#[test]
#[allow(deprecated)]
fn batches_land_on_ndarray_with_the_same_values() {
    let ds = tiny_dataset(6);
    let make = |device: &Device| {
        DataLoader::builder(ds.clone())
            .batch_size(4)
            .shuffle(true)
            .device(device)
            .build()
            .unwrap()
    };
    let on_flex = collect(&make(&Device::flex()), 0);
    let on_ndarray = collect(&make(&Device::ndarray()), 0);
    assert_eq!(on_flex, on_ndarray);
}
