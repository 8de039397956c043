//! [`DataLoader`]: batches of `[B, C, H, W]` images (`[B, 3, 32, 32]` for CIFAR-10) and `[B]`
//! targets on any Burn device.
//!
//! PyTorch's `DataLoader(dataset, batch_size=64, shuffle=True)`, built for an in-memory image
//! set: each batch is gathered straight from the dataset's contiguous buffer, augmented on `u8`,
//! and converted to `f32` in the same pass (`ToTensor` and `Normalize` fused), by worker
//! threads that prefetch while the model trains.
//!
//! It implements Burn's [`burn::data::dataloader::DataLoader`] trait, so Burn's `Learner`
//! takes it. It exists next to Burn's own loader because Burn's shuffles only within each
//! worker's chunk, keeps the last partial batch always, and builds every batch from owned
//! items (an allocation per image); see `docs/performance.md` for the measured difference.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::tensor::{AllocationProperty, Bytes, DType, Device, Int, Tensor, TensorData};

use crate::dataset::{ImageDataset, ImageItem, ImageShape};
use crate::error::{DataError, Result};
use crate::transform::{Compose, Rng, extend_to_tensor_unchecked};

/// One batch: what `imgs, targets = data` gives in the tutorial.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// Images, `[batch, channels, height, width]`, `f32`.
    pub images: Tensor<4>,
    /// Class indices, `[batch]`.
    pub targets: Tensor<1, Int>,
}

/// A batch still on the host: `f32` images (NCHW) and `i64` targets.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    /// Image values, `batch * channels * height * width`.
    pub images: Vec<f32>,
    /// Class indices.
    pub targets: Vec<i64>,
    /// Shape of each image.
    pub shape: ImageShape,
}

impl HostBatch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Moves the batch onto `device` as tensors.
    pub fn to_device(self, device: &Device) -> ImageBatch {
        let images = TensorData::new(self.images, batch_dims(self.shape, self.targets.len()));
        device_batch(images, self.targets, device)
    }
}

/// Image buffers of batches whose tensors were dropped, ready for the next batches.
///
/// A batch's 786 KiB buffer is filled on a worker thread and freed wherever its tensor dies;
/// handing the allocator a large block across threads like that makes it return the pages to
/// the OS and fault them in again (zeroed) for the next batch. Reusing the buffers keeps their
/// pages mapped and warm.
struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
    cap: usize,
}

impl BufferPool {
    fn new(cap: usize) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            cap,
        }
    }

    /// An empty buffer with room for `len` values.
    fn take(&self, len: usize) -> Vec<f32> {
        let mut v = self
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default();
        v.clear();
        v.reserve(len);
        v
    }

    fn give(&self, v: Vec<f32>) {
        if let Ok(mut free) = self.free.lock()
            && free.len() < self.cap
        {
            free.push(v);
        }
    }
}

/// Owns a pooled buffer while a tensor reads it (zero-copy); hands it back on drop.
struct PooledImages {
    values: Vec<f32>,
    pool: Weak<BufferPool>,
}

impl AsRef<[u8]> for PooledImages {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.values)
    }
}

impl Drop for PooledImages {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give(std::mem::take(&mut self.values));
        }
    }
}

impl HostBatch {
    /// Like [`HostBatch::to_device`], with the image buffer returning to `pool` once the
    /// device no longer needs it (at once for a GPU, when the tensor is dropped on the CPU).
    fn into_device_pooled(self, device: &Device, pool: &Arc<BufferPool>) -> ImageBatch {
        let dims = batch_dims(self.shape, self.targets.len());
        let owner = PooledImages {
            values: self.images,
            pool: Arc::downgrade(pool),
        };
        let bytes = Bytes::from_shared(bytes::Bytes::from_owner(owner), AllocationProperty::Native);
        let images = TensorData::from_bytes(bytes, dims, DType::F32);
        device_batch(images, self.targets, device)
    }
}

/// `[batch, channels, height, width]` of `n` images of `shape`.
fn batch_dims(shape: ImageShape, n: usize) -> [usize; 4] {
    let [c, h, w] = shape.dims();
    [n, c, h, w]
}

/// The images (`f32`, NCHW) and targets as tensors on `device`.
fn device_batch(images: TensorData, targets: Vec<i64>, device: &Device) -> ImageBatch {
    let n = targets.len();
    ImageBatch {
        images: Tensor::<4>::from_data(images, device),
        targets: Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), device),
    }
}

/// Settings of a [`DataLoader`]; build one with [`DataLoader::builder`].
#[derive(Clone, Debug)]
pub struct DataLoaderBuilder {
    dataset: Arc<ImageDataset>,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    num_workers: usize,
    prefetch: usize,
    transform: Compose,
    device: Option<Device>,
    limit: Option<usize>,
}

impl DataLoaderBuilder {
    /// Images per batch (default 64, the tutorial's).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Visit the items in a new random order each epoch (default: in order).
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Seed of the shuffle and of random transforms (default 0). Same seed, same batches.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Drop the last batch when it is smaller than `batch_size` (default: keep it).
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Background threads that prepare batches (default 2; 0 prepares them on the caller's
    /// thread, when asked for).
    pub fn num_workers(mut self, num_workers: usize) -> Self {
        self.num_workers = num_workers;
        self
    }

    /// Batches each worker may prepare ahead (default 2).
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// The transform pipeline (default: `ToTensor` only).
    pub fn transform(mut self, transform: Compose) -> Self {
        self.transform = transform;
        self
    }

    /// The device batches are created on (default: `Device::default()`).
    pub fn device(mut self, device: &Device) -> Self {
        self.device = Some(device.clone());
        self
    }

    /// Use only the first `limit` items (for quick runs).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Checks the settings and builds the loader.
    pub fn build(self) -> Result<DataLoader> {
        if self.batch_size == 0 {
            return Err(DataError::InvalidConfig(
                "batch_size must be at least 1".into(),
            ));
        }
        let out_shape = self.transform.output_shape(self.dataset.shape())?;
        let n = self
            .limit
            .map_or(self.dataset.len(), |l| l.min(self.dataset.len()));
        let indices: Arc<[u32]> = (0..n)
            .map(|i| {
                u32::try_from(i)
                    .map_err(|_| DataError::InvalidConfig("more than 2^32 items".into()))
            })
            .collect::<Result<_>>()?;
        Ok(DataLoader {
            inner: Arc::new(Inner {
                in_shape: self.dataset.shape(),
                dataset: self.dataset,
                batch_size: self.batch_size,
                shuffle: self.shuffle,
                seed: self.seed,
                drop_last: self.drop_last,
                num_workers: self.num_workers,
                prefetch: self.prefetch,
                transform: self.transform,
                pool: Arc::new(BufferPool::new(self.num_workers * (self.prefetch + 1) + 2)),
                out_shape,
            }),
            device: self.device.unwrap_or_default(),
            indices,
            epoch: Arc::new(AtomicU64::new(0)),
        })
    }
}

struct Inner {
    dataset: Arc<ImageDataset>,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
    num_workers: usize,
    prefetch: usize,
    transform: Compose,
    pool: Arc<BufferPool>,
    in_shape: ImageShape,
    out_shape: ImageShape,
}

/// Batches an [`ImageDataset`] onto a device: `DataLoader(dataset, batch_size, shuffle)`.
///
/// Cloning is cheap and shares the epoch counter.
#[derive(Clone)]
pub struct DataLoader {
    inner: Arc<Inner>,
    device: Device,
    indices: Arc<[u32]>,
    epoch: Arc<AtomicU64>,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("items", &self.indices.len())
            .field("batch_size", &self.inner.batch_size)
            .field("shuffle", &self.inner.shuffle)
            .field("drop_last", &self.inner.drop_last)
            .field("num_workers", &self.inner.num_workers)
            .field("transform", &self.inner.transform)
            .finish()
    }
}

impl DataLoader {
    /// Starts a loader over `dataset` with the tutorial's defaults (batch 64, no shuffle).
    pub fn builder(dataset: impl Into<Arc<ImageDataset>>) -> DataLoaderBuilder {
        DataLoaderBuilder {
            dataset: dataset.into(),
            batch_size: 64,
            shuffle: false,
            seed: 0,
            drop_last: false,
            num_workers: 2,
            prefetch: 2,
            transform: Compose::to_tensor(),
            device: None,
            limit: None,
        }
    }

    /// Number of batches per epoch (`len(loader)` in PyTorch).
    pub fn len(&self) -> usize {
        let (n, b) = (self.indices.len(), self.inner.batch_size);
        if self.inner.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Whether an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of images an epoch visits.
    pub fn num_images(&self) -> usize {
        if self.inner.drop_last {
            self.len() * self.inner.batch_size
        } else {
            self.indices.len()
        }
    }

    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    /// The dataset being loaded.
    pub fn dataset(&self) -> &ImageDataset {
        &self.inner.dataset
    }

    /// Shape of each image in a batch (after transforms).
    pub fn image_shape(&self) -> ImageShape {
        self.inner.out_shape
    }

    /// The device batches are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The epoch the next [`DataLoader::iter`] call will produce.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Sets the epoch the next [`DataLoader::iter`] produces (to resume a run exactly).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// The same loader creating batches on another device.
    pub fn with_device(&self, device: &Device) -> Self {
        Self {
            device: device.clone(),
            ..self.clone()
        }
    }

    /// Dataset indices in the order epoch `epoch` visits them.
    pub fn order(&self, epoch: u64) -> Vec<u32> {
        let mut order = self.indices.to_vec();
        if self.inner.shuffle {
            Rng::for_item(self.inner.seed, epoch, u64::MAX).shuffle(&mut order);
        }
        order
    }

    /// Iterates the next epoch's batches (then moves the epoch counter on).
    pub fn iter(&self) -> Batches {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        self.iter_epoch(epoch)
    }

    /// Iterates the batches of epoch `epoch` without touching the epoch counter.
    pub fn iter_epoch(&self, epoch: u64) -> Batches {
        let order: Arc<[u32]> = self.order(epoch).into();
        let num_batches = self.len();
        let workers = self.inner.num_workers.min(num_batches);
        let mut batches = Batches {
            loader: self.clone(),
            epoch,
            order,
            next: 0,
            num_batches,
            workers: Vec::new(),
        };
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.inner.prefetch);
            let job = batches.job();
            let handle = std::thread::Builder::new()
                .name(format!("torchlet-loader-{w}"))
                .spawn(move || job.run(w, workers, tx));
            match handle {
                Ok(handle) => batches.workers.push(Worker {
                    rx,
                    handle: Some(handle),
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start loader thread; loading inline");
                    batches.workers.clear();
                    break;
                }
            }
        }
        batches
    }

    /// Builds batch `index` of epoch `epoch` on the host (the loader's inner loop).
    pub fn host_batch(&self, epoch: u64, order: &[u32], index: usize) -> HostBatch {
        let mut scratch = Scratch::default();
        self.fill_batch(epoch, order, index, &mut scratch)
    }

    fn fill_batch(
        &self,
        epoch: u64,
        order: &[u32],
        index: usize,
        scratch: &mut Scratch,
    ) -> HostBatch {
        let inner = &*self.inner;
        let start = index * inner.batch_size;
        let end = (start + inner.batch_size).min(order.len());
        let items = &order[start.min(end)..end];
        let numel = inner.out_shape.numel();
        // Filled by `extend` (no zeroing pass, no bounds checks in the inner loop).
        let mut images = inner.pool.take(items.len() * numel);
        let mut targets = Vec::with_capacity(items.len());
        let random = inner.transform.is_random();
        let norm = inner.transform.normalization();
        for &i in items {
            let i = i as usize;
            let ds = &inner.dataset;
            let (Some(image), Some(label)) = (ds.image(i), ds.label(i)) else {
                continue;
            };
            if random {
                let shape = inner.transform.augment_item_into(
                    image,
                    inner.in_shape,
                    (inner.seed, epoch, i as u64),
                    &mut scratch.image,
                    &mut scratch.tmp,
                );
                extend_to_tensor_unchecked(&mut images, &scratch.image, shape, norm);
            } else {
                extend_to_tensor_unchecked(&mut images, image, inner.in_shape, norm);
            }
            targets.push(label as i64);
        }
        HostBatch {
            images,
            targets,
            shape: inner.out_shape,
        }
    }
}

#[derive(Default)]
struct Scratch {
    image: Vec<u8>,
    tmp: Vec<u8>,
}

/// What a worker thread needs to produce its share of an epoch.
struct Job {
    loader: DataLoader,
    epoch: u64,
    order: Arc<[u32]>,
    num_batches: usize,
}

impl Job {
    fn run(self, first: usize, step: usize, tx: SyncSender<ImageBatch>) {
        let mut scratch = Scratch::default();
        for index in (first..self.num_batches).step_by(step) {
            let batch = self
                .loader
                .fill_batch(self.epoch, &self.order, index, &mut scratch)
                .into_device_pooled(&self.loader.device, &self.loader.inner.pool);
            if tx.send(batch).is_err() {
                return; // The iterator was dropped.
            }
        }
    }
}

struct Worker {
    rx: Receiver<ImageBatch>,
    handle: Option<JoinHandle<()>>,
}

/// The batches of one epoch, in order; background workers prepare them ahead.
pub struct Batches {
    loader: DataLoader,
    epoch: u64,
    order: Arc<[u32]>,
    next: usize,
    num_batches: usize,
    workers: Vec<Worker>,
}

impl Batches {
    fn job(&self) -> Job {
        Job {
            loader: self.loader.clone(),
            epoch: self.epoch,
            order: self.order.clone(),
            num_batches: self.num_batches,
        }
    }

    /// The epoch these batches belong to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Batches produced so far and in all.
    pub fn position(&self) -> (usize, usize) {
        (self.next, self.num_batches)
    }

    /// The next batch, or an error if a worker thread died.
    pub fn try_next(&mut self) -> Option<Result<ImageBatch>> {
        if self.next >= self.num_batches {
            return None;
        }
        let index = self.next;
        self.next += 1;
        if self.workers.is_empty() {
            let batch = self.loader.host_batch(self.epoch, &self.order, index);
            let pool = &self.loader.inner.pool;
            return Some(Ok(batch.into_device_pooled(&self.loader.device, pool)));
        }
        let n = self.workers.len();
        let worker = &mut self.workers[index % n];
        match worker.rx.recv() {
            Ok(batch) => Some(Ok(batch)),
            Err(_) => {
                let reason = match worker.handle.take().map(JoinHandle::join) {
                    Some(Err(panic)) => panic_message(&panic),
                    _ => "worker stopped early".to_string(),
                };
                self.next = self.num_batches;
                Some(Err(DataError::Worker(reason)))
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "worker panicked".to_string())
}

impl Iterator for Batches {
    type Item = ImageBatch;

    /// The next batch. A dead worker ends the epoch early with an error log; use
    /// [`Batches::try_next`] to see the error.
    fn next(&mut self) -> Option<ImageBatch> {
        match self.try_next()? {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(error = %e, "data loader stopped");
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.num_batches - self.next;
        (left, Some(left))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Dropping the receivers makes every worker's next send fail, so they stop.
        let handles: Vec<_> = self
            .workers
            .drain(..)
            .filter_map(|mut w| w.handle.take())
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

/// Adapter: the loader as Burn's `DataLoader`, for Burn's `Learner`.
struct BurnBatches(Batches);

impl Iterator for BurnBatches {
    type Item = Result<ImageBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.try_next().map(|r| r.map_err(DatasetError::new))
    }
}

impl DataLoaderIterator<ImageBatch> for BurnBatches {
    fn progress(&self) -> Progress {
        let done = (self.0.next * self.0.loader.batch_size()).min(self.0.order.len());
        Progress::new(done, self.0.loader.num_images(), Some("images".to_string()))
    }
}

impl burn::data::dataloader::DataLoader<ImageBatch> for DataLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<ImageBatch> + 'a> {
        Box::new(BurnBatches(DataLoader::iter(self)))
    }

    fn num_items(&self) -> usize {
        self.num_images()
    }

    fn to_device(
        &self,
        device: &Device,
    ) -> Arc<dyn burn::data::dataloader::DataLoader<ImageBatch>> {
        Arc::new(self.with_device(device))
    }

    fn slice(
        &self,
        start: usize,
        end: usize,
    ) -> Arc<dyn burn::data::dataloader::DataLoader<ImageBatch>> {
        let end = end.min(self.indices.len());
        let start = start.min(end);
        Arc::new(Self {
            indices: self.indices[start..end].into(),
            epoch: Arc::new(AtomicU64::new(self.epoch())),
            ..self.clone()
        })
    }
}

/// Burn `Batcher` for [`ImageItem`]s, for use with Burn's own `DataLoaderBuilder`.
///
/// Applies a [`Compose`] pipeline; random transforms draw from a counter seeded by `seed`, so
/// they are reproducible with a single Burn worker.
pub struct ImageBatcher {
    transform: Compose,
    shape: ImageShape,
    out_shape: ImageShape,
    seed: u64,
    counter: AtomicU64,
}

impl ImageBatcher {
    /// A batcher for items of `shape` through `transform`.
    pub fn new(transform: Compose, shape: ImageShape, seed: u64) -> Result<Self> {
        let out_shape = transform.output_shape(shape)?;
        Ok(Self {
            transform,
            shape,
            out_shape,
            seed,
            counter: AtomicU64::new(0),
        })
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    /// Batches items.
    ///
    /// # Panics
    /// If an item's image is not `shape.numel()` bytes; items from one `ImageDataset` always
    /// are.
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let numel = self.out_shape.numel();
        let mut images = Vec::with_capacity(items.len() * numel);
        let mut targets = Vec::with_capacity(items.len());
        let (mut buf, mut tmp) = (Vec::new(), Vec::new());
        for item in &items {
            assert_eq!(
                item.image.len(),
                self.shape.numel(),
                "image item has the wrong number of bytes for shape {:?}",
                self.shape.dims()
            );
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let mut rng = Rng::for_item(self.seed, 0, n);
            let s =
                self.transform
                    .augment_into(&item.image, self.shape, &mut rng, &mut buf, &mut tmp);
            extend_to_tensor_unchecked(&mut images, &buf, s, self.transform.normalization());
            targets.push(item.label as i64);
        }
        HostBatch {
            images,
            targets,
            shape: self.out_shape,
        }
        .to_device(device)
    }
}
