//! `--precision fp32|tf32|bf16`: what the products multiply. fp32, the tutorial's, is the
//! default. bf16 (the CPU's, with AVX512_BF16) rounds both factors of every convolution product
//! to bfloat16 and sums in f32; tf32 (the GPU's tensor cores, through cuBLAS) rounds them to
//! TensorFloat-32's 10-bit mantissa and sums in f32. Master weights, BN statistics, the loss and
//! the optimizer stay f32 in both.

use super::device::Device;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Tf32,
    Bf16,
}

impl Precision {
    /// Whether `device` runs this precision; the error says which does.
    pub fn check_device(self, device: Device) -> Result<(), String> {
        match (self, device) {
            (Precision::Tf32, Device::Cpu) => Err(
                "--precision tf32 runs on NVIDIA GPUs' tensor cores (--device cuda); the CPU \
                 trains in fp32 or bf16"
                    .into(),
            ),
            (Precision::Bf16, Device::Cuda(_)) => {
                Err("--precision bf16 runs on the CPU only; the GPU trains in fp32 or tf32".into())
            }
            _ => Ok(()),
        }
    }

    /// What the CPU kernels of a network in this precision run: a tf32 network's host copy
    /// (weights and state of a GPU run, and anything the CPU computes for it) is fp32.
    pub fn on_cpu(self) -> Precision {
        match self {
            Precision::Tf32 => Precision::Fp32,
            other => other,
        }
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Precision, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!(
                "unknown precision {s:?}; expected fp32, tf32 or bf16"
            )),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        })
    }
}
