//! What a run will allocate, worked out from the network and the batch size before anything
//! large is allocated, and checked against what the machine has: a run that cannot fit is
//! refused with both numbers and the largest batch size that would, instead of an allocation
//! failure or the kernel's OOM killer minutes in.

use crate::engine::footprint::{check_architecture, gpu_floats_per_sample};
use crate::model::spec::ParamKind;
use crate::model::ModelSpec;
use anyhow::Result;
use std::fmt;

/// Copies of the model's tensors a checkpoint holds in memory at once: the tensors as bytes
/// and the serialized file, for the one being encoded and the one being written.
const CHECKPOINT_COPIES: u64 = 4;

/// The bytes one run of a network allocates on the host, by what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The layers' buffers for a batch: activations, their gradients, the layers' scratch.
    pub per_sample: u64,
    pub batch_size: usize,
    /// Weights and their gradients, BN statistics, SGD velocities.
    pub parameters: u64,
    /// Checkpoints being encoded and written.
    pub checkpoints: u64,
    /// What the data set keeps in memory ([`crate::data::Dataset::resident_bytes`]: a
    /// memory-mapped cache counts only its labels; 0 for synthetic data).
    pub data: u64,
}

impl MemoryPlan {
    /// The plan for training `spec` in batches of `batch_size` (`networks` of them at once, as
    /// `compare` holds two), on a data set that keeps `data` bytes in memory.
    pub fn for_training(
        spec: &ModelSpec,
        batch_size: usize,
        networks: u64,
        data: u64,
    ) -> Result<MemoryPlan> {
        let (placed, per_sample) = check_architecture(spec)?;
        let count = |kind: ParamKind| -> u64 {
            let tensors = placed.iter().flat_map(|l| &l.params);
            tensors
                .filter(|p| p.kind == kind)
                .map(|p| p.len() as u64)
                .sum()
        };
        let (trainable, moving) = (count(ParamKind::Trainable), count(ParamKind::Moving));
        let floats = 4;
        Ok(MemoryPlan {
            per_sample: networks * floats * per_sample as u64,
            batch_size,
            // Weights, gradients and velocities; BN's moving statistics.
            parameters: networks * floats * (3 * trainable + moving),
            checkpoints: CHECKPOINT_COPIES * floats * (2 * trainable + moving),
            data,
        })
    }

    /// What a GPU training `spec` in batches of `batch_size` holds: its own layers' buffers
    /// (it runs no layer inside another: [`gpu_floats_per_sample`]), the parameters and the
    /// data, and no checkpoints, which are encoded on the host.
    pub fn for_training_on_gpu(
        spec: &ModelSpec,
        batch_size: usize,
        data: u64,
    ) -> Result<MemoryPlan> {
        let (placed, _) = check_architecture(spec)?;
        Ok(MemoryPlan {
            per_sample: u64::try_from(4 * gpu_floats_per_sample(spec, &placed)).unwrap_or(u64::MAX),
            checkpoints: 0,
            ..Self::for_training(spec, batch_size, 1, data)?
        })
    }

    /// Everything, in bytes.
    pub fn total(&self) -> u64 {
        self.network() + self.parameters + self.checkpoints + self.data
    }

    /// The layers' buffers for the whole batch.
    pub fn network(&self) -> u64 {
        self.per_sample.saturating_mul(self.batch_size as u64)
    }

    /// The largest batch size whose plan fits in `bytes`, if any does.
    pub fn largest_batch_within(&self, bytes: u64) -> Option<usize> {
        let fixed = self.parameters + self.checkpoints + self.data;
        let batch = bytes.checked_sub(fixed)? / self.per_sample.max(1);
        (batch > 0).then(|| batch.min(usize::MAX as u64) as usize)
    }

    /// Refuses the plan if it does not fit in what `machine` has available, saying how much it
    /// needs, how much there is, and the largest batch size that fits.
    pub fn check(&self, machine: &Memory) -> Result<(), TooLarge> {
        if self.total() <= machine.available {
            return Ok(());
        }
        Err(TooLarge {
            plan: *self,
            machine: *machine,
            largest_batch: self.largest_batch_within(machine.available),
        })
    }

    /// [`check`](Self::check) against this machine, where the OS says what it has available
    /// (Linux); elsewhere every plan passes.
    pub fn check_here(&self) -> Result<(), TooLarge> {
        match Memory::of_this_machine() {
            Some(machine) => self.check(&machine),
            None => Ok(()),
        }
    }
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of memory (batches of {}: {}; parameters and optimizer {}; checkpoints {}; data {})",
            gib(self.total()),
            self.batch_size,
            gib(self.network()),
            gib(self.parameters),
            gib(self.checkpoints),
            gib(self.data)
        )
    }
}

/// A run that would not fit in memory: exit code 2, with what would.
#[derive(Debug, thiserror::Error)]
#[error(
    "--batch-size {}: the run needs {}, {} has {} available ({} in all); {}",
    plan.batch_size,
    plan,
    machine.holder,
    gib(machine.available),
    gib(machine.total),
    match largest_batch {
        Some(n) => format!("the largest batch size that fits is {n}"),
        None => "no batch size fits".to_string(),
    }
)]
pub struct TooLarge {
    pub plan: MemoryPlan,
    pub machine: Memory,
    pub largest_batch: Option<usize>,
}

/// The memory of the machine (or the GPU) in bytes: all of it, and what a new run can have
/// without swapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
    /// Whose memory, in words: "this machine", "the GPU".
    pub holder: &'static str,
}

impl Memory {
    /// What the OS says the machine has and can give (`None` where it does not say); less if
    /// `$MINIVGG_MEMORY_LIMIT` (bytes) says so: a run kept to part of the machine.
    pub fn of_this_machine() -> Option<Memory> {
        let machine = Memory::of_the_os()?;
        let limit = std::env::var(MEMORY_LIMIT_ENV).ok();
        Some(machine.capped(limit.and_then(|v| v.trim().parse().ok())))
    }

    /// Linux's `MemTotal` and `MemAvailable`, read as the kernel writes them.
    #[cfg(target_os = "linux")]
    fn of_the_os() -> Option<Memory> {
        Memory::from_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
    }

    /// macOS's and Windows' figures, through `sysinfo` (the OS calls of each).
    #[cfg(not(target_os = "linux"))]
    fn of_the_os() -> Option<Memory> {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        (system.total_memory() > 0).then(|| Memory {
            total: system.total_memory(),
            available: system.available_memory(),
            holder: "this machine",
        })
    }

    /// At most `limit` bytes available, if there is a limit.
    fn capped(self, limit: Option<u64>) -> Memory {
        match limit {
            Some(limit) if limit < self.available => Memory {
                available: limit,
                holder: "MINIVGG_MEMORY_LIMIT",
                ..self
            },
            _ => self,
        }
    }

    /// Reads /proc/meminfo's text (`MemTotal:  24000000 kB` …).
    pub fn from_meminfo(text: &str) -> Option<Memory> {
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            kib.checked_mul(1024)
        };
        Some(Memory {
            total: field("MemTotal:")?,
            available: field("MemAvailable:")?,
            holder: "this machine",
        })
    }
}

/// The environment variable that caps the memory a run may plan for, in bytes.
pub const MEMORY_LIMIT_ENV: &str = "MINIVGG_MEMORY_LIMIT";

/// Bytes as GiB with one decimal, or MiB below one GiB.
pub fn gib(bytes: u64) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib < 1024.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{:.1} GiB", mib / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;

    const GIB: u64 = 1 << 30;
    /// CIFAR-10's 60,000 images and labels.
    const CIFAR10_BYTES: u64 = 60_000 * 3073;

    #[test]
    fn a_limit_caps_what_is_available() {
        let machine = Memory {
            total: 24 * GIB,
            available: 20 * GIB,
            holder: "this machine",
        };
        assert_eq!(machine.capped(None), machine);
        assert_eq!(machine.capped(Some(30 * GIB)), machine);
        let capped = machine.capped(Some(GIB));
        assert_eq!(
            (capped.available, capped.holder),
            (GIB, "MINIVGG_MEMORY_LIMIT")
        );
    }

    #[test]
    fn meminfo_is_read_in_kib() {
        let text = "MemTotal:       24567892 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(
            Memory::from_meminfo(text),
            Some(Memory {
                total: 24567892 * 1024,
                available: 20000000 * 1024,
                holder: "this machine",
            })
        );
        assert_eq!(Memory::from_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn a_batch_too_large_is_refused_with_the_largest_that_fits() {
        let plan =
            MemoryPlan::for_training(&zoo::minivggnet(true), 50_000, 1, CIFAR10_BYTES).unwrap();
        let machine = Memory {
            total: 24 * GIB,
            available: 20 * GIB,
            holder: "this machine",
        };
        let err = plan.check(&machine).unwrap_err();
        let largest = err.largest_batch.unwrap();
        let fits = MemoryPlan {
            batch_size: largest,
            ..plan
        };
        assert!(fits.check(&machine).is_ok());
        let one_more = MemoryPlan {
            batch_size: largest + 1,
            ..plan
        };
        assert!(one_more.check(&machine).is_err());
        assert!(
            err.to_string()
                .starts_with("--batch-size 50000: the run needs "),
            "{err}"
        );
        assert!(
            err.to_string().ends_with(&format!(
                "this machine has 20.0 GiB available (24.0 GiB in all); the largest batch size that fits is {largest}"
            )),
            "{err}"
        );
    }

    #[test]
    fn the_tutorials_run_fits_in_half_a_gib() {
        let plan = MemoryPlan::for_training(&zoo::minivggnet(true), 64, 1, CIFAR10_BYTES).unwrap();
        assert!(plan.total() < GIB / 2, "{plan}");
        assert_eq!(plan.data, CIFAR10_BYTES, "{plan}");
    }
}
