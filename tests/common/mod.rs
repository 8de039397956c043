//! Fixtures shared by the integration tests: tiny CIFAR-10 archives, the real archive's path,
//! and a one-file HTTP server on 127.0.0.1.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use torchlet::burn::module::{Module, ModuleVisitor, Param};
use torchlet::burn::tensor::Tensor;
use torchlet::data::cifar10::{CLASSES, FOLDER, META_FILE, RECORD_BYTES, TEST_FILE, TRAIN_FILES};
use torchlet::data::{ImageDataset, ImageShape};
use torchlet::train::{Observer, OptimizerConfig, Phase, Progress, StopHandle};

/// The real archive, `../shared/cifar10/cifar-10-binary.tar.gz` (or `TORCHLET_CIFAR10`).
///
/// Returns `None` (and says so) when it is missing outside CI; panics when `CI` is set, so a
/// CI run can never pass by skipping the real-data tests.
pub fn real_archive() -> Option<PathBuf> {
    let path = std::env::var_os("TORCHLET_CIFAR10")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cifar10/cifar-10-binary.tar.gz")
        });
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI is set but the CIFAR-10 archive is missing at {}",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: real CIFAR-10 archive not found at {}",
        path.display()
    );
    None
}

/// One record: label byte then 3,072 pixel bytes made from `seed`.
pub fn record(label: u8, seed: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_BYTES);
    r.push(label);
    r.extend((0..3072u32).map(|i| (i.wrapping_mul(31).wrapping_add(seed * 7) % 251) as u8));
    r
}

/// A batch file of `n` records with labels `i % 10`, seeded by `batch`.
pub fn batch_bytes(batch: u32, n: u32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| record((i % 10) as u8, batch * 1000 + i))
        .collect()
}

/// The members of a small, valid archive: 5 train batches of `n` records, a test batch, meta.
pub fn members(n: u32) -> Vec<(String, Vec<u8>)> {
    let mut m: Vec<(String, Vec<u8>)> = TRAIN_FILES
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("{FOLDER}/{f}"), batch_bytes(i as u32 + 1, n)))
        .collect();
    m.push((format!("{FOLDER}/{TEST_FILE}"), batch_bytes(99, n)));
    m.push((
        format!("{FOLDER}/{META_FILE}"),
        format!("{}\n\n", CLASSES.join("\n")).into_bytes(),
    ));
    m
}

/// Writes `members` as a `.tar.gz` at `path`.
pub fn write_archive(path: &Path, members: &[(String, Vec<u8>)]) {
    std::fs::write(path, archive_bytes(members)).unwrap();
}

/// `members` as `.tar.gz` bytes.
pub fn archive_bytes(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// How the test server answers.
#[derive(Clone, Copy, Debug)]
pub enum Serve {
    /// The whole body.
    Whole,
    /// Announce the whole length, send half, then close the connection.
    CutMidBody,
    /// 404.
    NotFound,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving `body`; counts the requests it answered.
pub struct Server {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

pub fn serve(body: Vec<u8>, mode: Serve) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/cifar-10-binary.tar.gz",
        listener.local_addr().unwrap()
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = match mode {
                Serve::NotFound => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
                Serve::Whole | Serve::CutMidBody => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let sent = match mode {
                        Serve::CutMidBody => &body[..body.len() / 2],
                        _ => &body[..],
                    };
                    stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(sent))
                }
            };
            let _ = stream.flush();
            drop(stream);
        }
    });
    Server { url, hits }
}

/// Every float tensor of `module`, as bits, by key (for bit-exact comparisons).
pub fn params(module: &impl Module) -> std::collections::BTreeMap<String, Vec<u32>> {
    #[derive(Default)]
    struct Collect {
        path: Vec<String>,
        found: std::collections::BTreeMap<String, Vec<u32>>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param.val().into_data().try_into_vec_as::<f32>().unwrap();
            self.found.insert(
                self.path.join("."),
                values.iter().map(|v| v.to_bits()).collect(),
            );
        }
    }
    let mut c = Collect::default();
    module.visit(&mut c);
    assert!(c.found.len() >= 2, "{:?}", c.found.keys());
    c.found
}

/// `n` images of `shape`, `classes` classes, each class brighter in its own channel/region.
pub fn synthetic(n: usize, classes: usize, shape: ImageShape, seed: u32) -> ImageDataset {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let numel = shape.numel();
    let mut pixels = Vec::with_capacity(n * numel);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % classes;
        labels.push(label as u16);
        for p in 0..numel {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let region = (p * classes) / numel;
            let base = if region == label { 150 } else { 40 };
            pixels.push((base + state % 60) as u8);
        }
    }
    let names = (0..classes).map(|c| format!("class{c}")).collect();
    ImageDataset::new(pixels, labels, shape, names).unwrap()
}

/// Stops the run at a given training batch; counts the training batches it saw.
#[derive(Default)]
pub struct StopAt {
    /// `(epoch, batch, handle)`: stop after that training batch.
    pub at: Option<(usize, usize, StopHandle)>,
    /// Training batches seen.
    pub batches: Mutex<usize>,
}

impl Observer for StopAt {
    fn progress(&self, p: &Progress) {
        if p.phase != Phase::Train {
            return;
        }
        *self.batches.lock().unwrap() += 1;
        if let Some((epoch, batch, stop)) = &self.at
            && (p.epoch, p.done) == (*epoch, *batch)
        {
            stop.stop();
        }
    }
}

/// One training at a time in a test binary: `Trainer` refuses a second run while one is
/// training in the process (`TrainError::ConcurrentRun`), and tests run on parallel threads.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// SGD with momentum 0.9 at `lr`, or plain SGD where a resumed run could not restore the
/// momentum: Burn restores optimizer state on `Device::default()`, which is the GPU backend in
/// a build with one (unless `BURN_DEVICE=flex`), and on a machine without that GPU only a
/// stateless optimizer resumes there (the library reports the momentum case as a clear error).
pub fn resumable_sgd(lr: f64) -> OptimizerConfig {
    let gpu_default = cfg!(any(feature = "wgpu", feature = "cuda"))
        && std::env::var_os("BURN_DEVICE").is_none_or(|d| d != "flex");
    if gpu_default {
        OptimizerConfig::sgd(lr)
    } else {
        OptimizerConfig::sgd_momentum(lr, 0.9)
    }
}

/// The `cifar10_train` example binary `cargo test` builds next to the test binaries.
pub fn example() -> PathBuf {
    example_named("cifar10_train")
}

/// The example binary `name` that `cargo test` builds next to the test binaries.
pub fn example_named(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` builds the examples before running the tests",
        path.display()
    );
    path
}
