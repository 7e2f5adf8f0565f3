//! Where a [`CudaNetwork`]'s time goes, layer by layer, for `minivgg bench --device cuda`.

use super::CudaNetwork;
use crate::engine::cuda::Gpu;
use crate::engine::network::LayerTimes;
use crate::engine::Mode;
use anyhow::Result;

#[derive(Clone, Copy)]
enum Phase {
    Forward,
    Backward,
    Eval,
}

impl CudaNetwork {
    /// Each layer's GPU time over `rounds` uncaptured passes of the batch of `n` in the input
    /// buffer, from CUDA events around its kernels: training forward and backward, and the
    /// evaluation forward pass; the loss and the SGD update as two more rows. Training passes
    /// here update the BN moving statistics and, through SGD, the weights: for benchmarks only.
    pub fn time_layers(&self, n: usize, rounds: usize) -> Result<Vec<LayerTimes>> {
        let gpu = &self.gpu;
        let metrics = gpu.zeros::<f64>(3)?;
        let layers = self.layers.len();
        let mut times = vec![LayerTimes::default(); layers + 2];
        let (loss_row, sgd_row) = (layers, layers + 1);
        let timed = |encode: &dyn Fn() -> Result<()>| -> Result<_> {
            let start = gpu.timing_event()?;
            encode()?;
            Ok((start, gpu.timing_event()?))
        };
        for _ in 0..rounds {
            let mut events = Vec::new();
            for i in 0..layers {
                let pair = timed(&|| self.encode_layer_forward(i, n, Mode::Train))?;
                events.push((i, Phase::Forward, pair));
            }
            let pair = timed(&|| self.encode_loss(n, Mode::Train, None, gpu.addr(&metrics)))?;
            events.push((loss_row, Phase::Forward, pair));
            for i in (0..layers - 1).rev() {
                let pair = timed(&|| self.encode_layer_backward(i, n))?;
                events.push((i, Phase::Backward, pair));
            }
            events.push((sgd_row, Phase::Forward, timed(&|| self.encode_sgd())?));
            for i in 0..layers {
                let pair = timed(&|| self.encode_layer_forward(i, n, Mode::Eval))?;
                events.push((i, Phase::Eval, pair));
            }
            gpu.synchronize()?;
            for (row, phase, (start, end)) in events {
                let ms = Gpu::elapsed_ms(&start, &end)?;
                let t = &mut times[row];
                *match phase {
                    Phase::Forward => &mut t.forward_ms,
                    Phase::Backward => &mut t.backward_ms,
                    Phase::Eval => &mut t.eval_ms,
                } += ms / rounds as f64;
            }
        }
        Ok(times)
    }
}
