//! What a network's buffers take per sample of a batch, on the CPU ([`floats_per_sample`],
//! the buffers `network.rs` and the layers allocate) and on the GPU
//! ([`gpu_floats_per_sample`], `cuda/network.rs`'s and `cuda/layers/`'), worked out from the architecture alone so
//! that an architecture from outside is checked before anything is allocated for it.
//! tests/plan.rs measures the engine against these counts.

use super::layers::batchnorm::BatchNorm;
use super::layers::{conv::Conv2d, dense::Dense};
use super::layers::{is_fused, last_fused_with};
use crate::model::spec::PlacedLayer;
use crate::model::{LayerSpec, ModelSpec};
use anyhow::{bail, Result};

/// The most floats a stored architecture may need per sample of a batch (256 MiB), counting
/// every layer's output, its gradient and the layer's own buffers.
pub const MAX_FLOATS_PER_SAMPLE: u128 = 1 << 26;
/// The most floats a loaded network's buffers may take for its batch capacity (128 GiB, more
/// than a GPU's memory): a guard for library callers; the command line's memory plan checks
/// what the machine has.
pub const MAX_BATCH_FLOATS: u128 = 1 << 35;

/// Checks an architecture that came from outside before anything is allocated for it: its
/// sizes, layers and parameters ([`ModelSpec::check_sizes`]) and the floats it needs per
/// sample (at most [`MAX_FLOATS_PER_SAMPLE`]), which it returns with the placed layers.
pub fn check_architecture(spec: &ModelSpec) -> Result<(Vec<PlacedLayer>, u128)> {
    let placed = spec.check_sizes()?;
    let per_sample = floats_per_sample(spec, &placed);
    if per_sample > MAX_FLOATS_PER_SAMPLE {
        bail!(
            "needs {per_sample} floats per sample, more than the {MAX_FLOATS_PER_SAMPLE} allowed"
        );
    }
    Ok((placed, per_sample))
}

/// The floats a network's buffers take per sample of a batch: its input; each layer's output
/// and its gradient, those of the last layer it runs (a layer that runs inside a neighbour
/// has neither, nor a dropout's factors); a pool's winners; and the scratch of convolutions,
/// BN and dense layers. In u128: an
/// architecture from a file is checked with it before anything is allocated, so nothing may
/// overflow.
pub fn floats_per_sample(spec: &ModelSpec, placed: &[PlacedLayer]) -> u128 {
    let mut floats = spec.input.len() as u128;
    for (i, layer) in placed.iter().enumerate() {
        let out = layer.output.len() as u128;
        if is_fused(placed, i) {
            // A pool's winners are kept wherever it runs: a byte each, a quarter of a float.
            if layer.spec == LayerSpec::MaxPool {
                floats += out.div_ceil(4);
            }
            continue;
        }
        floats += 2 * placed[last_fused_with(placed, i)].output.len() as u128;
        floats += match (&layer.spec, layer.input) {
            (LayerSpec::Dropout { .. }, _) => out,
            (LayerSpec::MaxPool, _) => out.div_ceil(4),
            (LayerSpec::BatchNorm, input) => BatchNorm::scratch_per_sample(input.len()),
            (&LayerSpec::Dense { units }, input) => Dense::scratch_per_sample(input.len(), units),
            (&LayerSpec::Conv2d { filters, kernel }, input) => {
                Conv2d::scratch_per_sample(input, filters, kernel)
            }
            _ => 0,
        };
    }
    // The libraries' own scratch within a step (gemm's packed blocks, which grow with the
    // batch up to their block sizes) is not theirs to tell: a sixteenth more covers it.
    floats + floats.div_ceil(16)
}

/// The floats the GPU's network keeps per sample of a batch (`engine/cuda/network.rs` and `cuda/layers/`): it runs
/// every layer on its own, so each keeps its output and gradient, every convolution its im2col
/// columns and every pool its winners (a byte each). Of a placed, checked architecture.
pub fn gpu_floats_per_sample(spec: &ModelSpec, placed: &[PlacedLayer]) -> u128 {
    let layers = placed.iter().map(|layer| {
        let out = layer.output.len() as u128;
        2 * out
            + match (&layer.spec, layer.input) {
                (&LayerSpec::Conv2d { kernel, .. }, input) => {
                    input.len() as u128 * (kernel * kernel) as u128
                }
                (LayerSpec::MaxPool, _) => out.div_ceil(4),
                _ => 0,
            }
    });
    spec.input.len() as u128 + layers.sum::<u128>()
}
