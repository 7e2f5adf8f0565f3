//! Softmax and categorical cross-entropy, fused (the GPU twin of `layers/softmax.rs`): the
//! loss and its gradient straight from the logits through log-sum-exp, in one block.

use super::{Mode, Shared};
use crate::engine::cuda::kernels::{DeviceAddr, SoftmaxCrossEntropy};
use anyhow::Result;

/// The logits and labels a loss reads, and where it writes the probabilities and, in
/// training, the logits' gradient.
#[derive(Debug, Clone, Copy)]
pub struct LossIo {
    pub logits: DeviceAddr,
    pub labels: DeviceAddr,
    pub probs: DeviceAddr,
    pub grad: DeviceAddr,
    pub n: usize,
    pub classes: usize,
}

/// Enqueues the probabilities, the logits' gradient when training, the predictions at the
/// cursor when `predictions` is given, and the batch's loss, correct count and samples added
/// to the three f64 at `metrics`.
pub fn encode_loss(
    shared: Shared,
    io: LossIo,
    mode: Mode,
    predictions: Option<DeviceAddr>,
    metrics: DeviceAddr,
) -> Result<()> {
    shared.gpu.launch(SoftmaxCrossEntropy {
        logits: io.logits,
        labels: io.labels,
        n: io.n,
        classes: io.classes,
        probs: io.probs,
        grad: (mode == Mode::Train).then_some(io.grad),
        predictions,
        state: shared.state,
        metrics,
    })
}
