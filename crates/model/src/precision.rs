//! The precision of the CPU convolutions' products, chosen for the whole process.
//!
//! Like `torch.autocast("cpu", torch.bfloat16)` for convolutions: [`Precision::Bf16`] sends
//! bf16 inputs and weights into the products and accumulates in `f32`; master weights,
//! optimizer state, batch-norm statistics, activations and every other op stay `f32`. It
//! applies to torchlet's CPU kernels on a Flex device (`torchlet_model::cpu`) where the CPU
//! has bf16 instructions; elsewhere it computes in `f32`.

use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

/// The precision of the convolutions' products on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// `f32` throughout (the default).
    #[default]
    F32,
    /// bf16 inputs and weights into the products of the forward and of the input gradient,
    /// and of both gradients, `f32` accumulation, outputs and everything else, where the CPU
    /// has bf16 instructions (AVX512-BF16); `f32` elsewhere.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Precision, String> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?} (f32 or bf16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// [`precision`] not yet read from the environment.
const PRECISION_UNSET: u8 = 0;
/// [`Precision::F32`].
const PRECISION_F32: u8 = 1;
/// [`Precision::Bf16`].
const PRECISION_BF16: u8 = 2;

/// What [`precision`] returns.
static PRECISION: AtomicU8 = AtomicU8::new(PRECISION_UNSET);

/// The precision asked for, for the whole process: the first call reads
/// `TORCHLET_CPU_PRECISION` (`bf16` or `f32`; any other value is logged and ignored, none is
/// `f32`); [`set_precision`] overrides it.
pub fn precision() -> Precision {
    match PRECISION.load(Ordering::Relaxed) {
        PRECISION_F32 => Precision::F32,
        PRECISION_BF16 => Precision::Bf16,
        _ => {
            let asked = std::env::var("TORCHLET_CPU_PRECISION").ok();
            let p = asked.as_deref().map_or(Ok(Precision::F32), str::parse);
            let p = p.unwrap_or_else(|e| {
                tracing::warn!("TORCHLET_CPU_PRECISION: {e}; using f32");
                Precision::F32
            });
            set_precision(p);
            p
        }
    }
}

/// Sets the precision of the CPU convolutions for the whole process (see [`Precision`]).
pub fn set_precision(p: Precision) {
    let v = match p {
        Precision::F32 => PRECISION_F32,
        Precision::Bf16 => PRECISION_BF16,
    };
    PRECISION.store(v, Ordering::Relaxed);
}
