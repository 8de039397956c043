//! Chapter 1 — `download=True`: a checked download against a local HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Serve, serve};
use std::sync::atomic::Ordering;
use torchlet::data::download::md5_hex;
use torchlet::data::{Cifar10, DataError, Download};

fn fixture() -> Vec<u8> {
    common::archive_bytes(&common::members(2))
}

fn download_for(url: &str, body: &[u8]) -> Download {
    Download::cifar10()
        .with_url(url)
        .with_checksum(md5_hex(body), Some(body.len() as u64))
}

#[test]
fn good_download_is_verified_renamed_and_readable() {
    let body = fixture();
    let server = serve(body.clone(), Serve::Whole);
    let dir = tempfile::tempdir().unwrap();
    let path = download_for(&server.url, &body).fetch(dir.path()).unwrap();
    assert_eq!(path, dir.path().join("cifar-10-binary.tar.gz"));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(!dir.path().join("cifar-10-binary.tar.gz.part").exists());
    assert_eq!(Cifar10::open(&path).unwrap().train.len(), 10);
}

#[test]
fn verified_cache_is_reused_without_a_request() {
    let body = fixture();
    let server = serve(body.clone(), Serve::Whole);
    let dir = tempfile::tempdir().unwrap();
    let d = download_for(&server.url, &body);
    d.fetch(dir.path()).unwrap();
    d.fetch(dir.path()).unwrap();
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn wrong_cached_file_is_replaced() {
    let body = fixture();
    let server = serve(body.clone(), Serve::Whole);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("cifar-10-binary.tar.gz");
    std::fs::write(&target, &body[..body.len() - 1]).unwrap(); // half-written earlier
    download_for(&server.url, &body).fetch(dir.path()).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), body);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn wrong_checksum_is_an_error_and_leaves_nothing() {
    let body = fixture();
    let server = serve(body.clone(), Serve::Whole);
    let dir = tempfile::tempdir().unwrap();
    let d = Download::cifar10()
        .with_url(&server.url)
        .with_checksum("0123456789abcdef0123456789abcdef", Some(body.len() as u64));
    let err = d.fetch(dir.path()).unwrap_err();
    assert!(
        matches!(err, DataError::Checksum { what: "md5", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("cifar-10-binary.tar.gz"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no .part, no target"
    );

    // The official md5 and size, as `Cifar10::download` uses, also refuse the fixture.
    let err = Download::cifar10()
        .with_url(&server.url)
        .fetch(dir.path())
        .unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }), "{err}");
}

#[test]
fn connection_cut_mid_body_is_an_error_and_leaves_nothing() {
    let body = fixture();
    let server = serve(body.clone(), Serve::CutMidBody);
    let dir = tempfile::tempdir().unwrap();
    let err = download_for(&server.url, &body)
        .fetch(dir.path())
        .unwrap_err();
    assert!(matches!(err, DataError::Download { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn http_error_status_is_an_error() {
    let server = serve(Vec::new(), Serve::NotFound);
    let dir = tempfile::tempdir().unwrap();
    let err = download_for(&server.url, b"x")
        .fetch(dir.path())
        .unwrap_err();
    assert!(
        matches!(&err, DataError::Download { url, .. } if url == &server.url),
        "{err}"
    );
}
