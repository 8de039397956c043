//! Chapter six: choosing the device, like
//! `torch.device("cuda" if torch.cuda.is_available() else "cpu")`.
//!
//! Which backends exist is decided at build time by this crate's features (`flex`, `wgpu`,
//! `ndarray`, `cuda`); which one runs is decided at run time by [`DeviceChoice`].

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::TrainError;

/// Which device to train on (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A GPU when one works (CUDA first, then wgpu), the CPU otherwise.
    #[default]
    Auto,
    /// Burn's pure-Rust CPU backend.
    Flex,
    /// Burn's older CPU backend (deprecated upstream; for comparison).
    NdArray,
    /// A GPU through wgpu (Vulkan, Metal, DX12).
    Wgpu,
    /// An NVIDIA GPU through CUDA.
    Cuda,
}

impl DeviceChoice {
    /// Every choice, in the order of [`NAMES`](Self::NAMES).
    pub const ALL: [DeviceChoice; 5] = [
        DeviceChoice::Auto,
        DeviceChoice::Flex,
        DeviceChoice::NdArray,
        DeviceChoice::Wgpu,
        DeviceChoice::Cuda,
    ];
    /// The accepted names.
    pub const NAMES: [&'static str; 5] = ["auto", "flex", "ndarray", "wgpu", "cuda"];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Flex => "flex",
            DeviceChoice::NdArray => "ndarray",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Cuda => "cuda",
        }
    }

    /// Whether this build has the backend (`auto` always is).
    pub fn is_compiled(self) -> bool {
        match self {
            DeviceChoice::Auto => true,
            DeviceChoice::Flex => cfg!(feature = "flex"),
            DeviceChoice::NdArray => cfg!(feature = "ndarray"),
            DeviceChoice::Wgpu => cfg!(feature = "wgpu"),
            DeviceChoice::Cuda => cfg!(feature = "cuda"),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        DeviceChoice::ALL
            .into_iter()
            .find(|c| c.name() == s || (s == "cpu" && *c == DeviceChoice::Flex))
            .ok_or_else(|| TrainError::Device {
                name: s.clone(),
                reason: format!(
                    "unknown device; expected one of {}",
                    DeviceChoice::NAMES.join(", ")
                ),
            })
    }
}

/// One entry of a device list (`--devices flex,flex` or `--devices wgpu:0,wgpu:1`): a backend
/// and, for GPUs, which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpec {
    /// The backend (`auto` is not allowed in a list).
    pub choice: DeviceChoice,
    /// The GPU's index (`wgpu:1`, `cuda:1`); `None` for the backend's default device.
    pub index: Option<usize>,
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}:{i}", self.choice),
            None => write!(f, "{}", self.choice),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, index) = match s.trim().split_once(':') {
            Some((name, index)) => {
                let index = index
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| TrainError::Device {
                        name: s.trim().to_string(),
                        reason: format!("{index:?} is not a device index (expected e.g. wgpu:1)"),
                    })?;
                (name, Some(index))
            }
            None => (s, None),
        };
        let choice: DeviceChoice = name.parse()?;
        let bad = |reason: &str| TrainError::Device {
            name: s.trim().to_string(),
            reason: reason.to_string(),
        };
        match choice {
            DeviceChoice::Auto => Err(bad("`auto` cannot be one of several devices; name them")),
            DeviceChoice::Flex | DeviceChoice::NdArray if index.is_some() => Err(bad(
                "the CPU backends have one device; repeat the name (flex,flex) for several",
            )),
            _ => Ok(DeviceSpec { choice, index }),
        }
    }
}

/// Parses a comma-separated device list such as `flex,flex` or `wgpu:0,wgpu:1`.
pub fn parse_device_list(list: &str) -> Result<Vec<DeviceSpec>, TrainError> {
    let specs = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<DeviceSpec>, _>>()?;
    if specs.is_empty() {
        return Err(TrainError::Device {
            name: list.to_string(),
            reason: "the device list is empty".into(),
        });
    }
    Ok(specs)
}

/// Opens every device of a list, in order (the first is the main device: it holds the model,
/// the optimizer and the evaluation).
pub fn select_devices(specs: &[DeviceSpec]) -> Result<Vec<SelectedDevice>, TrainError> {
    specs.iter().map(|spec| open_spec(*spec)).collect()
}

/// Opens one entry of a device list.
fn open_spec(spec: DeviceSpec) -> Result<SelectedDevice, TrainError> {
    let Some(index) = spec.index else {
        return open(spec.choice);
    };
    let device = indexed_gpu(spec.choice, index)?;
    check_works(&device).map_err(|reason| TrainError::Device {
        name: spec.to_string(),
        reason,
    })?;
    Ok(SelectedDevice {
        device,
        kind: spec.choice,
        description: format!("{spec} (GPU)"),
    })
}

/// GPU number `index` of a backend: CUDA's device `index`, or the `index`-th adapter wgpu
/// lists.
#[allow(unused_variables)]
fn indexed_gpu(choice: DeviceChoice, index: usize) -> Result<Device, TrainError> {
    let name = format!("{choice}:{index}");
    match choice {
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => probe_catching(|| Device::cuda(index))
            .map_err(|reason| TrainError::Device { name, reason }),
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu => {
            use burn::tensor::DeviceType;
            let found: Vec<Device> =
                probe_catching(|| Device::enumerate(DeviceType::Wgpu).into_iter().collect())
                    .map_err(|reason| TrainError::Device {
                        name: name.clone(),
                        reason,
                    })?;
            let count = found.len();
            found.into_iter().nth(index).ok_or(TrainError::Device {
                name,
                reason: format!("wgpu lists {count} adapter(s), numbered from 0"),
            })
        }
        other if other.is_compiled() => Err(TrainError::Device {
            name,
            reason: "this backend has no numbered devices".into(),
        }),
        other => Err(not_compiled(other)),
    }
}

/// The device a run uses, with a name to print.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The device (without autodiff; training adds it).
    pub device: Device,
    /// Which backend it is.
    pub kind: DeviceChoice,
    /// A human-readable description, e.g. `flex (CPU)` or `cuda:0`.
    pub description: String,
}

impl SelectedDevice {
    /// Whether the device is a GPU.
    pub fn is_gpu(&self) -> bool {
        matches!(self.kind, DeviceChoice::Wgpu | DeviceChoice::Cuda)
    }
}

impl fmt::Display for SelectedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Opens the device `choice` names, checking that it can run a small computation.
///
/// `Auto` tries CUDA, then wgpu (hardware adapters only: a software rasterizer does not
/// count as a GPU), and falls back to the CPU (Flex, or NdArray in a build without Flex).
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice, TrainError> {
    match choice {
        DeviceChoice::Auto => {
            let mut tried = Vec::new();
            for gpu in [DeviceChoice::Cuda, DeviceChoice::Wgpu] {
                if !gpu.is_compiled() {
                    continue;
                }
                match open_gpu_if_present(gpu) {
                    Ok(Some(dev)) => return Ok(dev),
                    Ok(None) => tried.push(format!("{gpu}: no device")),
                    Err(e) => tried.push(e.to_string()),
                }
            }
            for cpu in [DeviceChoice::Flex, DeviceChoice::NdArray] {
                if cpu.is_compiled() {
                    let mut dev = open(cpu)?;
                    if !tried.is_empty() {
                        tracing::info!(reasons = %tried.join("; "), "no usable GPU, using the CPU");
                    }
                    dev.description = format!("{} (no GPU found)", dev.description);
                    return Ok(dev);
                }
            }
            Err(TrainError::Device {
                name: "auto".into(),
                reason: "this build has no backend; enable the flex feature".into(),
            })
        }
        other => open(other),
    }
}

fn not_compiled(choice: DeviceChoice) -> TrainError {
    TrainError::Device {
        name: choice.name().into(),
        reason: format!(
            "this build lacks it; rebuild with `--features {}`",
            choice.name()
        ),
    }
}

/// Opens a GPU backend only if it reports a device (so `auto` does not fail on machines
/// without one).
fn open_gpu_if_present(choice: DeviceChoice) -> Result<Option<SelectedDevice>, TrainError> {
    let present = probe_catching(|| count_devices(choice) > 0).unwrap_or(false);
    if !present {
        return Ok(None);
    }
    #[cfg(feature = "wgpu")]
    if matches!(choice, DeviceChoice::Wgpu) {
        // wgpu's default adapter may be a software rasterizer (Mesa's lavapipe), which runs
        // on the CPU far slower than Flex: `auto` takes only a real GPU.
        use burn::tensor::DeviceKind;
        // A missing adapter panics inside the backend (caught below); keep those expected
        // panics from printing while probing.
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let mut found = None;
        for kind in [DeviceKind::DiscreteGpu(0), DeviceKind::IntegratedGpu(0)] {
            let label = format!("wgpu {kind:?} (GPU)");
            let Ok(device) = probe_catching(|| Device::wgpu(kind)) else {
                continue;
            };
            if check_works(&device).is_ok() {
                found = Some(SelectedDevice {
                    device,
                    kind: choice,
                    description: label,
                });
                break;
            }
        }
        std::panic::set_hook(previous_hook);
        return Ok(found);
    }
    open(choice).map(Some)
}

#[allow(unused_variables)]
fn count_devices(choice: DeviceChoice) -> usize {
    #[allow(unused_imports)]
    use burn::tensor::DeviceType;
    match choice {
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => Device::enumerate(DeviceType::Cuda).into_iter().count(),
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu => Device::enumerate(DeviceType::Wgpu).into_iter().count(),
        _ => 0,
    }
}

/// Opens `choice` (not `Auto`) and runs a tiny computation on it.
fn open(choice: DeviceChoice) -> Result<SelectedDevice, TrainError> {
    let (device, description): (Device, String) = match choice {
        DeviceChoice::Auto => return select_device(DeviceChoice::Auto),
        #[cfg(feature = "flex")]
        DeviceChoice::Flex => (Device::flex(), "flex (CPU)".to_string()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        DeviceChoice::NdArray => (Device::ndarray(), "ndarray (CPU)".to_string()),
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu => {
            let device = probe_catching(|| Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
                .map_err(|reason| TrainError::Device {
                name: "wgpu".into(),
                reason,
            })?;
            (device, "wgpu (GPU)".to_string())
        }
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => {
            let device =
                probe_catching(|| Device::cuda(0)).map_err(|reason| TrainError::Device {
                    name: "cuda".into(),
                    reason,
                })?;
            (device, "cuda:0 (GPU)".to_string())
        }
        #[allow(unreachable_patterns)]
        other => return Err(not_compiled(other)),
    };
    check_works(&device).map_err(|reason| TrainError::Device {
        name: choice.name().into(),
        reason,
    })?;
    Ok(SelectedDevice {
        device,
        kind: choice,
        description,
    })
}

/// Runs `1 + 1` on `device` and reads it back; a backend that cannot start panics inside
/// Burn, which is turned into an error here.
fn check_works(device: &Device) -> Result<(), String> {
    let device = device.clone();
    let value = probe_catching(move || {
        let t = burn::tensor::Tensor::<1>::ones([2], &device);
        (t.clone() + t).sum().into_scalar::<f32>()
    })?;
    if (value - 4.0).abs() > 1e-6 {
        return Err(format!("a test computation returned {value} instead of 4"));
    }
    Ok(())
}

fn probe_catching<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked while starting".to_string())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        for (name, choice) in DeviceChoice::NAMES.iter().zip(DeviceChoice::ALL) {
            assert_eq!(name.parse::<DeviceChoice>().unwrap(), choice);
        }
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Flex);
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_opens_and_auto_falls_back_to_a_working_device() {
        let flex = select_device(DeviceChoice::Flex).unwrap();
        assert!(!flex.is_gpu());
        let auto = select_device(DeviceChoice::Auto).unwrap();
        check_works(&auto.device).unwrap();
    }

    #[test]
    fn parses_device_lists() {
        let list = parse_device_list("flex, flex").unwrap();
        assert_eq!(list.len(), 2);
        assert!(
            list.iter()
                .all(|s| s.choice == DeviceChoice::Flex && s.index.is_none())
        );
        let gpus = parse_device_list("wgpu:0,wgpu:1").unwrap();
        assert_eq!(gpus[1].index, Some(1));
        assert_eq!(gpus[1].to_string(), "wgpu:1");
        for (bad, says) in [
            ("", "empty"),
            ("auto,flex", "auto"),
            ("flex:1", "repeat the name"),
            ("wgpu:x", "not a device index"),
            ("tpu", "unknown device"),
        ] {
            let err = parse_device_list(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_missing_backend_is_a_clear_error() {
        for choice in DeviceChoice::ALL {
            if !choice.is_compiled() {
                let err = select_device(choice).unwrap_err().to_string();
                assert!(err.contains("--features"), "{err}");
            }
        }
    }
}
