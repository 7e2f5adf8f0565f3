//! Column reductions over a `[rows × cols]` matrix on the device, the mirror of
//! [`crate::engine::cpu::reduce`]: rows split into at most [`MAX_CHUNKS`] chunks, each summed
//! in f64 by one block of 32 columns × `LANES` rows into a partials buffer, which a
//! finishing kernel adds up per column in a fixed order: deterministic, no atomics.

use super::kernels::{ColumnPartials, DeviceAddr};
use super::Gpu;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

/// The most chunks a reduction splits its rows into (the partials buffer holds this many).
pub const MAX_CHUNKS: usize = 256;
/// Rows a block reads at once (kernels.cu's `LANES`).
const LANES: usize = 8;
/// kernels.cu's `SUM_*`, one per [`ColumnSums`].
const SUM_X: usize = 0;
const SUM_CENTRED_SQ: usize = 1;
const SUM_DY_DY_XHAT: usize = 2;

/// What a reduction sums per column (kernels.cu's `SUM_*`).
#[derive(Debug, Clone, Copy)]
pub enum ColumnSums {
    /// Σ x.
    Values { x: DeviceAddr },
    /// Σ (x − mean64)², around the f64 batch mean.
    CentredSquares { x: DeviceAddr, mean64: DeviceAddr },
    /// Σ dy, and Σ dy·x̂ with x̂ = (x − mean)·inv_std (BatchNorm's backward).
    GradAndGradTimesNormalized {
        x: DeviceAddr,
        dy: DeviceAddr,
        mean: DeviceAddr,
        inv_std: DeviceAddr,
    },
}

/// One block per chunk and 32 columns.
pub fn partials_config(chunks: usize, cols: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (chunks as u32, cols.div_ceil(32) as u32, 1),
        block_dim: (32, LANES as u32, 1),
        shared_mem_bytes: 0,
    }
}

/// The f64 values the partials buffer needs for matrices up to `widest` columns.
pub fn partials_len(widest: usize) -> usize {
    MAX_CHUNKS * 2 * widest
}

/// Enqueues the per-chunk column sums `sums` of `rows × cols` values into `partials`;
/// returns the number of chunks, for the finishing kernel.
pub fn column_partials(
    gpu: &Gpu,
    sums: ColumnSums,
    rows: usize,
    cols: usize,
    partials: DeviceAddr,
) -> Result<usize> {
    let rows_per_chunk = rows.div_ceil(MAX_CHUNKS).max(LANES);
    let (what, x, dy, mean64, mean, inv_std) = match sums {
        ColumnSums::Values { x } => (SUM_X, x, None, None, None, None),
        ColumnSums::CentredSquares { x, mean64 } => {
            (SUM_CENTRED_SQ, x, None, Some(mean64), None, None)
        }
        ColumnSums::GradAndGradTimesNormalized {
            x,
            dy,
            mean,
            inv_std,
        } => (SUM_DY_DY_XHAT, x, Some(dy), None, Some(mean), Some(inv_std)),
    };
    let kernel = ColumnPartials {
        x,
        dy,
        mean64,
        mean,
        inv_std,
        rows,
        cols,
        rows_per_chunk,
        what,
        partials,
    };
    gpu.launch(kernel)?;
    Ok(rows.div_ceil(rows_per_chunk))
}
