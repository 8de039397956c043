//! Data parallelism over several devices of one machine, as PyTorch's
//! `DistributedDataParallel`: each step's batch is cut into one shard per device, every device
//! runs forward and backward on its shard with its own replica of the model, and the shards'
//! gradients are summed on the main device, where the optimizer takes one step.
//!
//! **Averaging.** PyTorch's DDP averages the ranks' gradients; Burn's multi-device runner sums
//! them. Here each shard's loss is weighted by its share of the batch (`shard / batch`) before
//! `backward()`, so the sum of the shards' gradients *is* the gradient of the whole batch's mean
//! loss: a run on N devices takes the same steps as a run on one device at the same global
//! batch (up to float rounding), with no change to the learning rate — also for a last batch
//! that does not split evenly.
//!
//! **Built from Burn's pieces.** The replicas are `Module::fork`, the gradients
//! `GradientsParams::from_grads` → `to_device` → `GradientsAccumulator`, the step
//! `ModuleOptimizer::step`. Burn 0.22.1's own runner (`MultiDevicesTrainStep`) needs Burn's
//! `TrainStep`/`Learner` model traits and data loaders, and returns the devices' results in
//! the order they finish, without saying which device each came from: summed in that order,
//! three or more devices would not be bit-exact from run to run. Here one persistent worker
//! thread per device answers on its own channel and the gradients are summed in device order.
//! Burn's `ddp` strategy (an all-reduce during backward) needs collectives, which only its
//! CUDA backend has; it is not used.
//!
//! **Randomness.** Flex keeps one random stream per process. Each shard seeds it with its own
//! `step_seed` and draws its dropout masks inside its forward pass while holding the run's RNG
//! lock, so the masks do not depend on which thread got there first; resume stays bit-exact on
//! a fixed device list. Backward passes run in parallel.
//!
//! **Batch norm** normalises each shard with its own statistics (as DDP without
//! `SyncBatchNorm`); Burn's `RunningState` keeps one running value per worker thread and
//! averages them when the model is evaluated or saved.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use torchlet_model::ImageClassifier;

use super::check::panic_message;
use super::rng_lock;

/// One shard's work: the model to replicate, its images and targets, its share of the batch
/// and its random seed.
struct Job<M> {
    model: M,
    loss: CrossEntropyLoss,
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    weight: f64,
    seed: u64,
}

/// What a shard gives back: its mean loss (unweighted), its share of the batch and its
/// gradients (already weighted by that share).
pub(crate) struct ShardResult {
    pub loss: f64,
    pub weight: f64,
    pub grads: GradientsParams,
}

/// One device's worker thread.
struct Worker<M> {
    description: String,
    jobs: Option<Sender<Job<M>>>,
    results: Receiver<Result<ShardResult, String>>,
    thread: Option<JoinHandle<()>>,
}

/// A failed shard: which replica and why.
pub(crate) struct ShardFailure {
    pub replica: usize,
    pub device: String,
    pub message: String,
}

/// The worker threads of a multi-device run, one per device (the first is the main device).
pub(crate) struct Replicas<M> {
    workers: Vec<Worker<M>>,
    /// The main device (the first), where the weights are updated.
    main: Option<Device>,
}

impl<M: ImageClassifier> Replicas<M> {
    /// Starts one worker per `(device, description)`; `devices` carry autodiff.
    pub fn start(devices: &[(Device, String)]) -> Self {
        let workers = devices
            .iter()
            .map(|(device, description)| {
                let (jobs, inbox) = channel::<Job<M>>();
                let (outbox, results) = channel();
                let worker_device = device.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("torchlet-replica-{description}"))
                    .spawn(move || serve(&worker_device, &inbox, &outbox))
                    .ok();
                Worker {
                    description: description.clone(),
                    jobs: thread.is_some().then_some(jobs),
                    results,
                    thread,
                }
            })
            .collect();
        let main = devices.first().map(|(device, _)| device.clone());
        Self { workers, main }
    }

    /// Runs forward and backward for `images`/`targets` split over the devices; returns each
    /// shard's result in device order (shards for as many devices as the batch has images).
    pub fn forward_backward(
        &self,
        model: &M,
        loss: &CrossEntropyLoss,
        images: Tensor<4>,
        targets: Tensor<1, Int>,
        seeds: impl Fn(usize) -> u64,
    ) -> Result<Vec<ShardResult>, ShardFailure> {
        let batch = targets.dims()[0];
        let sizes = shard_sizes(batch, self.workers.len());
        // The replicas read the weights the last optimizer step wrote from other threads, and
        // a GPU runtime keeps one command stream per thread: wait for this thread's work first.
        if let Some(main) = &self.main {
            main.sync().map_err(|e| ShardFailure {
                replica: 0,
                device: self
                    .workers
                    .first()
                    .map_or_else(String::new, |w| w.description.clone()),
                message: format!("the main device failed before the step: {e}"),
            })?;
        }
        let mut start = 0;
        let mut sent = Vec::with_capacity(sizes.len());
        for (replica, (worker, &size)) in self.workers.iter().zip(&sizes).enumerate() {
            let job = Job {
                model: model.clone(),
                loss: loss.clone(),
                images: images.clone().narrow(0, start, size),
                targets: targets.clone().narrow(0, start, size),
                weight: size as f64 / batch as f64,
                seed: seeds(replica),
            };
            start += size;
            let delivered = worker.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
            sent.push(delivered);
        }
        // Every worker that got a job answers before this returns, even after one failed: an
        // answer left in a channel would be taken for the next step's.
        let mut results = Vec::with_capacity(sizes.len());
        let mut failure = None;
        for (replica, (worker, delivered)) in self.workers.iter().zip(sent).enumerate() {
            let answer = if delivered {
                worker
                    .results
                    .recv()
                    .unwrap_or_else(|_| Err("the worker thread is gone".to_string()))
            } else {
                Err("the worker thread could not be started or has stopped".to_string())
            };
            match answer {
                Ok(result) => results.push(result),
                Err(message) => {
                    failure.get_or_insert(ShardFailure {
                        replica,
                        device: worker.description.clone(),
                        message,
                    });
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(results),
        }
    }

    /// The sum of the shards' gradients, moved to `main` and added in device order.
    pub fn sum_gradients(model: &M, main: &Device, shards: Vec<ShardResult>) -> GradientsParams {
        let mut sum = GradientsAccumulator::<M>::new();
        for shard in shards {
            sum.accumulate(model, shard.grads.to_device(main, model));
        }
        sum.grads()
    }
}

impl<M> Drop for Replicas<M> {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            // Closing the job channel ends the worker's loop.
            worker.jobs = None;
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// `batch` images over `devices` devices: sizes differing by at most one, the larger first,
/// no empty shard (a batch smaller than the device list uses fewer devices).
pub(crate) fn shard_sizes(batch: usize, devices: usize) -> Vec<usize> {
    let n = devices.clamp(1, batch.max(1));
    (0..n)
        .map(|i| batch / n + usize::from(i < batch % n))
        .collect()
}

/// A worker's loop: one job in, one result out, until the job channel closes.
fn serve<M: ImageClassifier>(
    device: &Device,
    inbox: &Receiver<Job<M>>,
    outbox: &Sender<Result<ShardResult, String>>,
) {
    while let Ok(job) = inbox.recv() {
        let result = catch_unwind(AssertUnwindSafe(|| shard_step(device, job)))
            .map_err(|panic| panic_message(panic.as_ref()))
            .and_then(|r| r);
        if outbox.send(result).is_err() {
            break;
        }
    }
}

/// Forward and backward of one shard on `device`, finished on the device before it returns:
/// the main thread reads the gradients from its own command stream.
fn shard_step<M: ImageClassifier>(device: &Device, job: Job<M>) -> Result<ShardResult, String> {
    let model = job.model.fork(device);
    let images = job.images.to_device(device);
    let targets = job.targets.to_device(device);
    let logits = {
        // The shard's random draws (dropout) come from its own seed, whatever the order in
        // which the workers reach this point.
        let _rng = rng_lock();
        device.seed(job.seed);
        model.forward(images)
    };
    let loss = job.loss.to_device(device).forward(logits, targets);
    let value = loss.clone().into_scalar::<f64>();
    let weighted = loss.mul_scalar(job.weight);
    let grads = GradientsParams::from_grads(weighted.backward(), &model);
    device
        .sync()
        .map_err(|e| format!("the device failed in backward: {e}"))?;
    Ok(ShardResult {
        loss: value,
        weight: job.weight,
        grads,
    })
}

#[cfg(test)]
mod tests {
    use super::shard_sizes;

    #[test]
    fn shards_are_even_and_never_empty() {
        assert_eq!(shard_sizes(16, 2), vec![8, 8]);
        assert_eq!(shard_sizes(7, 3), vec![3, 2, 2]);
        assert_eq!(shard_sizes(1, 4), vec![1]);
        assert_eq!(shard_sizes(5, 1), vec![5]);
        for (batch, devices) in [(1000, 3), (64, 5), (3, 8)] {
            let sizes = shard_sizes(batch, devices);
            assert_eq!(sizes.iter().sum::<usize>(), batch);
            assert!(sizes.iter().all(|&s| s > 0));
        }
    }
}
