//! Building Burn's optimizer and learning-rate scheduler from a [`TrainConfig`], with
//! PyTorch's meaning of every hyper-parameter, plus `OneCycleLR`, which Burn lacks.

use std::f64::consts::PI;

use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::step::StepLrSchedulerConfig;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, LearningRate, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
};

use crate::config::{LrSchedule, OptimizerConfig, TrainConfig};
use crate::error::TrainError;

/// Builds the optimizer: `optim.SGD(...)`, `optim.Adam(...)` or `optim.AdamW(...)`.
///
/// SGD momentum gets PyTorch's `dampening` (0 unless set), not Burn's default of 0.1.
pub fn build_optimizer(config: &OptimizerConfig) -> Result<ModuleOptimizer, TrainError> {
    config.validate()?;
    Ok(match *config {
        OptimizerConfig::Sgd {
            momentum,
            dampening,
            weight_decay,
            nesterov,
            ..
        } => {
            let momentum = (momentum > 0.0).then_some(MomentumConfig {
                momentum,
                dampening,
                nesterov,
            });
            let weight_decay = (weight_decay > 0.0).then_some(WeightDecayConfig {
                penalty: weight_decay as f32,
            });
            SgdConfig::new()
                .with_momentum(momentum)
                .with_weight_decay(weight_decay)
                .init()
        }
        OptimizerConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } => AdamConfig::new()
            .with_beta_1(beta1)
            .with_beta_2(beta2)
            .with_epsilon(eps)
            .with_weight_decay((weight_decay > 0.0).then_some(WeightDecayConfig {
                penalty: weight_decay as f32,
            }))
            .init(),
        OptimizerConfig::Adamw {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } => AdamWConfig::new()
            .with_beta_1(beta1)
            .with_beta_2(beta2)
            .with_epsilon(eps)
            .with_weight_decay(weight_decay as f32)
            .init(),
    })
}

/// Builds the learning-rate scheduler for a run of `steps_per_epoch` steps per epoch.
///
/// Burn steps schedulers once per optimizer step, so epoch-based schedules are converted to
/// steps (`StepLR(step_size=k)` becomes `k * steps_per_epoch` steps).
pub fn build_scheduler(
    config: &TrainConfig,
    steps_per_epoch: usize,
) -> Result<ModuleLrScheduler, TrainError> {
    config.schedule.validate()?;
    let lr = config.optimizer.lr();
    let total = (config.epochs * steps_per_epoch).max(1);
    let burn_err = |e: String| TrainError::invalid("schedule", config.schedule.name(), e);
    match config.schedule {
        LrSchedule::Constant => Ok(ModuleLrScheduler::new(lr)),
        LrSchedule::Step { step_epochs, gamma } => {
            StepLrSchedulerConfig::new(lr, (step_epochs * steps_per_epoch).max(1))
                .with_gamma(gamma)
                .init()
                .map_err(burn_err)
        }
        LrSchedule::Cosine { min_lr } => CosineAnnealingLrSchedulerConfig::new(lr, total)
            .with_min_lr(min_lr)
            .init()
            .map_err(burn_err),
        LrSchedule::OneCycle {
            pct_start,
            div_factor,
            final_div_factor,
        } => Ok(ModuleLrScheduler::new(OneCycleLr::new(
            lr,
            total,
            pct_start,
            div_factor,
            final_div_factor,
        ))),
        LrSchedule::Triangle { start, peak, end } => Ok(ModuleLrScheduler::new(TriangleLr {
            lr,
            total: total as u64,
            start,
            peak,
            end,
            step: 0,
        })),
    }
}

/// airbench's triangular schedule ([`LrSchedule::Triangle`]): `lr` times a factor linear
/// from `start` (step 0) to 1 (step `peak · total`) to `end` (step `total`).
#[derive(Debug, Clone)]
pub struct TriangleLr {
    /// The optimizer's learning rate.
    pub lr: f64,
    /// Steps in the run.
    pub total: u64,
    /// Factor at step 0.
    pub start: f64,
    /// Fraction of the steps where the factor is 1.
    pub peak: f64,
    /// Factor at the last step.
    pub end: f64,
    /// Steps taken.
    pub step: u64,
}

impl TriangleLr {
    /// The factor at step `t` (0-based): `np.interp(t, [0, peak·total, total], [start, 1, end])`.
    pub fn factor_at(&self, t: u64) -> f64 {
        let (t, total) = (t as f64, self.total.max(1) as f64);
        let top = self.peak * total;
        if t <= top {
            self.start + (1.0 - self.start) * t / top.max(f64::MIN_POSITIVE)
        } else {
            let pct = ((t - top) / (total - top).max(f64::MIN_POSITIVE)).min(1.0);
            1.0 + (self.end - 1.0) * pct
        }
    }
}

impl LrScheduler for TriangleLr {
    fn step(&mut self) -> LearningRate {
        let lr = self.lr * self.factor_at(self.step);
        self.step += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("step", self.step)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(step) = record.scalar::<u64>("step") {
            self.step = step;
        }
    }
}

/// PyTorch's `OneCycleLR` (cosine annealing, two phases): from `max_lr / div_factor` up to
/// `max_lr` over `pct_start` of the steps, then down to `initial / final_div_factor`.
#[derive(Debug, Clone)]
pub struct OneCycleLr {
    initial_lr: f64,
    max_lr: f64,
    min_lr: f64,
    end_warmup: f64,
    end: f64,
    step: u64,
}

impl OneCycleLr {
    /// A schedule over `total_steps` optimizer steps.
    pub fn new(
        max_lr: f64,
        total_steps: usize,
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
    ) -> Self {
        let initial_lr = max_lr / div_factor;
        Self {
            initial_lr,
            max_lr,
            min_lr: initial_lr / final_div_factor,
            end_warmup: pct_start * total_steps as f64 - 1.0,
            end: total_steps as f64 - 1.0,
            step: 0,
        }
    }

    /// The learning rate of step `t` (0-based).
    pub fn lr_at(&self, t: u64) -> f64 {
        let t = t as f64;
        let anneal =
            |start: f64, end: f64, pct: f64| end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0);
        if t <= self.end_warmup {
            let pct = if self.end_warmup > 0.0 {
                t / self.end_warmup
            } else {
                1.0
            };
            anneal(self.initial_lr, self.max_lr, pct)
        } else {
            let span = self.end - self.end_warmup;
            let pct = if span > 0.0 {
                ((t - self.end_warmup) / span).min(1.0)
            } else {
                1.0
            };
            anneal(self.max_lr, self.min_lr, pct)
        }
    }
}

impl LrScheduler for OneCycleLr {
    fn step(&mut self) -> LearningRate {
        let lr = self.lr_at(self.step);
        self.step += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("step", self.step)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(step) = record.scalar::<u64>("step") {
            self.step = step;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_matches_pytorch_endpoints() {
        // torch.optim.lr_scheduler.OneCycleLR(max_lr=0.1, total_steps=100): first lr 0.004,
        // peak 0.1 at step 29, last 4e-7.
        let s = OneCycleLr::new(0.1, 100, 0.3, 25.0, 1e4);
        assert!((s.lr_at(0) - 0.004).abs() < 1e-12);
        assert!((s.lr_at(29) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(99) - 4e-7).abs() < 1e-12);
        assert!(s.lr_at(15) > s.lr_at(5) && s.lr_at(60) < s.lr_at(40));
    }

    #[test]
    fn triangle_matches_numpy_interp() {
        // np.interp(np.arange(101), [0, 23, 100], [0.2, 1, 0.07]) at 0, 10, 23, 60, 100:
        // 0.2, 0.547826..., 1.0, 0.553116..., 0.07.
        let s = TriangleLr {
            lr: 2.0,
            total: 100,
            start: 0.2,
            peak: 0.23,
            end: 0.07,
            step: 0,
        };
        let want = [
            (0, 0.2),
            (10, 0.2 + 0.8 * 10.0 / 23.0),
            (23, 1.0),
            (60, 1.0 - 0.93 * 37.0 / 77.0),
            (100, 0.07),
        ];
        for (t, f) in want {
            assert!(
                (s.factor_at(t) - f).abs() < 1e-12,
                "step {t}: {}",
                s.factor_at(t)
            );
        }
        assert!((s.factor_at(500) - 0.07).abs() < 1e-12);
    }

    #[test]
    fn one_cycle_record_round_trips() {
        let mut a = OneCycleLr::new(0.1, 50, 0.3, 25.0, 1e4);
        for _ in 0..7 {
            a.step();
        }
        let mut b = OneCycleLr::new(0.1, 50, 0.3, 25.0, 1e4);
        b.load_record(a.to_record());
        assert_eq!(a.step(), b.step());
    }

    #[test]
    fn every_optimizer_and_schedule_builds() {
        for opt in ["sgd", "sgd-momentum", "adam", "adamw"] {
            let o: OptimizerConfig = opt.parse().unwrap();
            build_optimizer(&o).unwrap();
        }
        for s in ["constant", "step", "cosine", "one-cycle", "triangle"] {
            let config = TrainConfig {
                schedule: s.parse().unwrap(),
                ..TrainConfig::tutorial()
            };
            let mut sched = build_scheduler(&config, 10).unwrap();
            let lr = sched.step().base();
            assert!(lr > 0.0 && lr <= 0.01 + 1e-12, "{s}: {lr}");
        }
    }

    #[test]
    fn nesterov_needs_momentum() {
        let o = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: true,
        };
        assert!(build_optimizer(&o).is_err());
    }
}
