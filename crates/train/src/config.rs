//! What a run is: [`TrainConfig`], saved as the run folder's `config.json`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use torchlet_model::{ModelConfig, Precision};

use crate::error::TrainError;

/// Everything that decides the numbers a run produces; written to `config.json`.
///
/// [`TrainConfig::tutorial`] is the tutorial's setup: the conv net, `SGD(lr=0.01)`, batch 64,
/// 20 epochs, `ToTensor` only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The model and its options.
    pub model: ModelConfig,
    /// The optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over the run.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Number of passes over the training set.
    pub epochs: usize,
    /// `CrossEntropyLoss(label_smoothing=...)`: the target puts `1 - ε + ε / classes` on the
    /// label and `ε / classes` on every other class; 0 (the default) is plain cross-entropy.
    #[serde(default)]
    pub label_smoothing: f64,
    /// Images per batch, for training and evaluation.
    pub batch_size: usize,
    /// Random crop with padding 4 and horizontal flips on the training set.
    #[serde(default)]
    pub augment: bool,
    /// Use only the first `limit` training images (and as many test images), for quick runs.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Seed of the initial weights, the shuffle, the augmentation and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Print (through the observer) the loss every this many steps; 0 never.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Background threads preparing batches.
    #[serde(default = "default_workers")]
    pub num_workers: usize,
    /// Number of most recent checkpoints to keep (the best one is kept as well).
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// The precision of the CPU convolutions' products (`--precision`): `f32` (the default),
    /// or `bf16` like `torch.autocast("cpu", torch.bfloat16)` where the CPU has AVX512-BF16
    /// (see [`torchlet_model::precision`]). A resumed run may change it.
    #[serde(default)]
    pub precision: Precision,
}

fn default_log_every() -> usize {
    100
}

fn default_workers() -> usize {
    2
}

fn default_keep_last() -> usize {
    2
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self::tutorial()
    }
}

impl TrainConfig {
    /// The tutorial's setup: conv net, `SGD(lr=0.01)`, batch 64, 20 epochs, no augmentation.
    pub fn tutorial() -> Self {
        Self {
            model: ModelConfig::Conv(torchlet_model::SeedConvNetConfig::new()),
            optimizer: OptimizerConfig::sgd(0.01),
            schedule: LrSchedule::Constant,
            epochs: 20,
            label_smoothing: 0.0,
            batch_size: 64,
            augment: false,
            limit: None,
            seed: 0,
            log_every: default_log_every(),
            num_workers: default_workers(),
            keep_last: default_keep_last(),
            precision: Precision::F32,
        }
    }

    /// Checks the values that would otherwise fail deep inside the run.
    pub fn validate(&self) -> Result<(), TrainError> {
        let at_least_1 = |field: &'static str| Err(TrainError::invalid(field, 0, "at least 1"));
        if self.epochs == 0 {
            return at_least_1("epochs");
        }
        if self.batch_size == 0 {
            return at_least_1("batch_size");
        }
        if self.limit == Some(0) {
            return at_least_1("limit");
        }
        if self.keep_last == 0 {
            return at_least_1("keep_last");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(TrainError::invalid(
                "label_smoothing",
                self.label_smoothing,
                "in [0, 1)",
            ));
        }
        self.model.validate()?;
        self.optimizer.validate()?;
        self.schedule.validate()?;
        Ok(())
    }

    /// Why `other` (a new invocation) cannot continue a run trained with `self`, if it cannot.
    ///
    /// Everything that shapes the numbers must match; `epochs` may grow for schedules that do
    /// not depend on the total (constant and step), `log_every`, `num_workers`, `keep_last`
    /// and `precision` may change freely.
    pub fn resume_mismatch(&self, other: &TrainConfig) -> Option<String> {
        let json = |v: &dyn erased::Json| v.json();
        let pairs: [(&str, String, String); 8] = [
            (
                "label_smoothing",
                self.label_smoothing.to_string(),
                other.label_smoothing.to_string(),
            ),
            ("model", json(&self.model), json(&other.model)),
            ("optimizer", json(&self.optimizer), json(&other.optimizer)),
            ("schedule", json(&self.schedule), json(&other.schedule)),
            (
                "batch_size",
                self.batch_size.to_string(),
                other.batch_size.to_string(),
            ),
            (
                "augment",
                self.augment.to_string(),
                other.augment.to_string(),
            ),
            (
                "limit",
                format!("{:?}", self.limit),
                format!("{:?}", other.limit),
            ),
            ("seed", self.seed.to_string(), other.seed.to_string()),
        ];
        for (name, a, b) in pairs {
            if a != b {
                return Some(format!("{name} differs: checkpoint has {a}, now {b}"));
            }
        }
        if self.epochs != other.epochs && self.schedule.depends_on_total() {
            return Some(format!(
                "epochs differs ({} vs {}) and the {} schedule depends on the total number of steps",
                self.epochs,
                other.epochs,
                self.schedule.name()
            ));
        }
        None
    }
}

mod erased {
    /// Serializes anything `Serialize` to a JSON string for comparisons.
    pub trait Json {
        fn json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|e| format!("<unserializable: {e}>"))
        }
    }
}

/// The optimizer: `torch.optim.SGD`, `Adam` or `AdamW`, with PyTorch's meaning of every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `SGD(lr, momentum, dampening, weight_decay, nesterov)`; dampening defaults to 0 as in
    /// PyTorch (Burn's own default is 0.1).
    Sgd {
        /// Learning rate (the peak one for one-cycle).
        lr: f64,
        /// Momentum factor; 0 disables momentum.
        #[serde(default)]
        momentum: f64,
        /// Dampening of the momentum.
        #[serde(default)]
        dampening: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
        /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`, as in PyTorch).
        #[serde(default)]
        nesterov: bool,
    },
    /// `Adam(lr, betas, eps, weight_decay)`, with L2 weight decay added to the gradient.
    Adam {
        /// Learning rate.
        lr: f64,
        /// `betas[0]`.
        beta1: f32,
        /// `betas[1]`.
        beta2: f32,
        /// `eps`.
        eps: f32,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// `AdamW(lr, betas, eps, weight_decay)`, with decoupled weight decay.
    Adamw {
        /// Learning rate.
        lr: f64,
        /// `betas[0]`.
        beta1: f32,
        /// `betas[1]`.
        beta2: f32,
        /// `eps`.
        eps: f32,
        /// Decoupled weight decay (PyTorch's default 0.01).
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// Plain `SGD(lr)`, the tutorial's optimizer.
    pub fn sgd(lr: f64) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// `SGD(lr, momentum)` with PyTorch's dampening 0.
    pub fn sgd_momentum(lr: f64, momentum: f64) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// `Adam(lr)` with PyTorch's defaults (`betas=(0.9, 0.999)`, `eps=1e-8`).
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// `AdamW(lr)` with PyTorch's defaults (`weight_decay=0.01`).
    pub fn adamw(lr: f64) -> Self {
        OptimizerConfig::Adamw {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }

    /// The (base) learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. } => *lr,
        }
    }

    /// The same optimizer with another learning rate.
    pub fn with_lr(mut self, new_lr: f64) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. } => *lr = new_lr,
        }
        self
    }

    /// The command-line name: `sgd`, `adam` or `adamw`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adam { .. } => "adam",
            OptimizerConfig::Adamw { .. } => "adamw",
        }
    }

    /// Checks ranges the way PyTorch's constructors do.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |field: &'static str, value: String, expected: &str| {
            Err(TrainError::invalid(field, value, expected))
        };
        let lr = self.lr();
        if !lr.is_finite() || lr <= 0.0 {
            return bad("optimizer.lr", lr.to_string(), "a positive number");
        }
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                dampening,
                weight_decay,
                nesterov,
                ..
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return bad("optimizer.momentum", momentum.to_string(), "in [0, 1)");
                }
                if !(0.0..=1.0).contains(&dampening) {
                    return bad("optimizer.dampening", dampening.to_string(), "in [0, 1]");
                }
                if !weight_decay.is_finite() || weight_decay < 0.0 {
                    return bad("optimizer.weight_decay", weight_decay.to_string(), ">= 0");
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return bad(
                        "optimizer.nesterov",
                        format!("true (momentum {momentum}, dampening {dampening})"),
                        "a positive momentum and zero dampening",
                    );
                }
            }
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            }
            | OptimizerConfig::Adamw {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
                    return bad(
                        "optimizer.betas",
                        format!("({beta1}, {beta2})"),
                        "both in [0, 1)",
                    );
                }
                if !eps.is_finite() || eps <= 0.0 {
                    return bad("optimizer.eps", eps.to_string(), "positive");
                }
                if !weight_decay.is_finite() || weight_decay < 0.0 {
                    return bad("optimizer.weight_decay", weight_decay.to_string(), ">= 0");
                }
            }
        }
        Ok(())
    }
}

impl FromStr for OptimizerConfig {
    type Err = TrainError;

    /// `sgd` (the tutorial's), `sgd-momentum` (momentum 0.9), `adam` or `adamw`, with the
    /// tutorial's learning rate 0.01 (change it with [`OptimizerConfig::with_lr`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sgd" => Ok(Self::sgd(0.01)),
            "sgd-momentum" | "momentum" => Ok(Self::sgd_momentum(0.01, 0.9)),
            "adam" => Ok(Self::adam(0.01)),
            "adamw" => Ok(Self::adamw(0.01)),
            other => Err(TrainError::UnknownName {
                what: "optimizer",
                name: other.to_string(),
                expected: "sgd, sgd-momentum, adam, adamw",
            }),
        }
    }
}

/// How the learning rate changes; every schedule is stepped once per optimizer step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The optimizer's learning rate throughout (the tutorial).
    #[default]
    Constant,
    /// `StepLR(step_size=step_epochs, gamma)`: multiply by `gamma` every `step_epochs` epochs.
    Step {
        /// Epochs between two decays.
        step_epochs: usize,
        /// Factor applied at each decay.
        gamma: f64,
    },
    /// `CosineAnnealingLR(T_max=all steps, eta_min=min_lr)`.
    Cosine {
        /// Learning rate at the end of the run.
        min_lr: f64,
    },
    /// `OneCycleLR(max_lr=lr, total_steps=all steps)` with cosine annealing.
    OneCycle {
        /// Fraction of the steps spent increasing the learning rate (PyTorch: 0.3).
        pct_start: f64,
        /// `initial_lr = max_lr / div_factor` (PyTorch: 25).
        div_factor: f64,
        /// `min_lr = initial_lr / final_div_factor` (PyTorch: 1e4).
        final_div_factor: f64,
    },
    /// airbench's triangle: the learning rate times a factor that goes linearly from `start`
    /// at the first step to 1 at `peak` (a fraction of all steps), then linearly to `end` at
    /// the last step (airbench94: 0.2, 0.23, 0.07).
    Triangle {
        /// Factor at the first step.
        start: f64,
        /// Where the factor reaches 1, as a fraction of all steps.
        peak: f64,
        /// Factor at the last step.
        end: f64,
    },
}

impl LrSchedule {
    /// airbench94's warm-up and decay: from 0.2× to 1× over 23% of the steps, then to 0.07×.
    pub fn airbench() -> Self {
        LrSchedule::Triangle {
            start: 0.2,
            peak: 0.23,
            end: 0.07,
        }
    }

    /// PyTorch's `OneCycleLR` defaults.
    pub fn one_cycle() -> Self {
        LrSchedule::OneCycle {
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }

    /// The command-line name.
    pub fn name(&self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Step { .. } => "step",
            LrSchedule::Cosine { .. } => "cosine",
            LrSchedule::OneCycle { .. } => "one-cycle",
            LrSchedule::Triangle { .. } => "triangle",
        }
    }

    /// Whether the schedule is computed from the run's total number of steps.
    pub fn depends_on_total(&self) -> bool {
        matches!(
            self,
            LrSchedule::Cosine { .. } | LrSchedule::OneCycle { .. } | LrSchedule::Triangle { .. }
        )
    }

    /// Checks the schedule's parameters.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |field: &'static str, value: String, expected: &str| {
            Err(TrainError::invalid(field, value, expected))
        };
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Step { step_epochs, gamma } => {
                if step_epochs == 0 {
                    return bad("schedule.step_epochs", "0".into(), "at least 1");
                }
                if !gamma.is_finite() || gamma <= 0.0 {
                    return bad("schedule.gamma", gamma.to_string(), "positive");
                }
                Ok(())
            }
            LrSchedule::Cosine { min_lr } => {
                if !min_lr.is_finite() || min_lr < 0.0 {
                    return bad("schedule.min_lr", min_lr.to_string(), ">= 0");
                }
                Ok(())
            }
            LrSchedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                if !(pct_start > 0.0 && pct_start < 1.0) {
                    return bad("schedule.pct_start", pct_start.to_string(), "in (0, 1)");
                }
                if !(div_factor > 0.0 && final_div_factor > 0.0) {
                    return bad(
                        "schedule.div_factor",
                        format!("{div_factor} / {final_div_factor}"),
                        "both positive",
                    );
                }
                Ok(())
            }
            LrSchedule::Triangle { start, peak, end } => {
                if !(peak > 0.0 && peak < 1.0) {
                    return bad("schedule.peak", peak.to_string(), "in (0, 1)");
                }
                if !(start.is_finite() && end.is_finite() && start >= 0.0 && end >= 0.0) {
                    return bad(
                        "schedule.start",
                        format!("{start} / {end}"),
                        "start and end finite and >= 0",
                    );
                }
                Ok(())
            }
        }
    }
}

impl FromStr for LrSchedule {
    type Err = TrainError;

    /// `constant`, `step` (×0.1 every 10 epochs), `cosine` (down to 0), `one-cycle`
    /// (PyTorch's defaults) or `triangle` (airbench94's).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "constant" | "none" => Ok(LrSchedule::Constant),
            "step" => Ok(LrSchedule::Step {
                step_epochs: 10,
                gamma: 0.1,
            }),
            "cosine" => Ok(LrSchedule::Cosine { min_lr: 0.0 }),
            "one-cycle" | "onecycle" => Ok(LrSchedule::one_cycle()),
            "triangle" | "airbench" => Ok(LrSchedule::airbench()),
            other => Err(TrainError::UnknownName {
                what: "schedule",
                name: other.to_string(),
                expected: "constant, step, cosine, one-cycle, triangle",
            }),
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
