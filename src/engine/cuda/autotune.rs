//! Which path each convolution takes, chosen by timing both on this card: cuDNN's fastest
//! deterministic algorithms whose results agree with im2col's ([`super::cudnn`]), against
//! im2col + cuBLAS itself. `MINIVGG_CUDA_CONV` can force either path
//! ([`ConvPath::from_env`]).

use super::cudnn::{ConvPath, CudnnConv};
use super::kernels::DeviceAddr;
use super::layers::conv::Conv2d;
use super::layers::{Backward, Forward, Shared};
use super::{parity_tolerance, relative_error, Gpu};
use crate::engine::Precision;
use anyhow::Result;

/// Layer `conv` at the batch size of `fwd` and `bwd` (its passes' operands): cuDNN's
/// descriptors and algorithms if it is to run there, and why in words. Overwrites the
/// layer's input, output and gradients with random values and results.
pub fn choose(
    shared: Shared,
    conv: &Conv2d,
    (fwd, bwd): (Forward, Backward),
    precision: Precision,
    path: ConvPath,
) -> Result<(Option<CudnnConv>, String)> {
    let gpu = shared.gpu;
    let Some(cudnn) = shared.cudnn else {
        return Ok((None, "im2col (no cuDNN)".into()));
    };
    let s = conv.shape(fwd.n);
    let mut chosen = match CudnnConv::new(s, precision) {
        Ok(chosen) => chosen,
        Err(e) => return Ok((None, format!("im2col ({e:#})"))),
    };
    // Random operands, so agreement means something; the weights are the network's.
    let mut rng = rand::rng();
    let mut random = |len: usize| -> Vec<f32> {
        use rand::Rng;
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    };
    let out_len = s.n * s.h * s.w * s.filters;
    gpu.upload_at(&random(fwd.x_len), fwd.x)?;
    gpu.upload_at(&random(out_len), bwd.dy)?;
    let tolerance = parity_tolerance(precision);

    // im2col: the reference values and times. Its backward overwrites the patches with their
    // gradients, so it is timed after a forward pass each time, as in a real step.
    let im2col_fwd = time_ms(gpu, || conv.forward_on(shared, fwd, None))?;
    let y_ref = gpu.download_at(fwd.y, out_len)?;
    let im2col_step = time_ms(gpu, || {
        conv.forward_on(shared, fwd, None)?;
        conv.backward_on(shared, bwd, None)
    })?;
    let im2col_bwd = (im2col_step - im2col_fwd).max(0.0);
    let grad_ref = gpu.download_at(bwd.grads, conv.kernel_len())?;
    let dx_ref = bwd
        .dx
        .map(|dx| gpu.download_at(dx, bwd.x_len))
        .transpose()?;

    // Each candidate's time where it runs and agrees with im2col's result, else None.
    let agreeing = |ms: Result<f64>, want: &[f32], got: DeviceAddr| -> Result<Option<f64>> {
        let Ok(ms) = ms else { return Ok(None) };
        let error = relative_error(want, &gpu.download_at(got, want.len())?);
        Ok((error <= tolerance).then_some(ms))
    };
    let candidates = chosen.forward_candidates(cudnn)?;
    let best_fwd = fastest(candidates, |candidate| {
        chosen.forward = Some(candidate);
        let ms = time_ms(gpu, || conv.forward_on(shared, fwd, Some(&chosen)));
        agreeing(ms, &y_ref, fwd.y)
    })?;
    chosen.forward = best_fwd.map(|(a, _)| a);
    let (mut best_filter, mut best_data) = (None, None);
    if chosen.forward.is_some() {
        // Backward reads the KRSC kernel the forward pass wrote.
        conv.forward_on(shared, fwd, Some(&chosen))?;
        let filters = chosen.backward_filter_candidates(cudnn)?;
        let datas = match bwd.dx {
            Some(_) => chosen.backward_data_candidates(cudnn)?,
            None => Vec::new(),
        };
        if bwd.dx.is_some() && datas.is_empty() {
            return Ok((
                None,
                "im2col: cuDNN offers no usable input-gradient algorithm".into(),
            ));
        }
        // Time each filter algorithm with the first data one (or none), then each data
        // algorithm with the best filter one: a backward pass needs both.
        chosen.backward_data = datas.first().copied();
        best_filter = fastest(filters, |candidate| {
            chosen.backward_filter = Some(candidate);
            let ms = time_ms(gpu, || conv.backward_on(shared, bwd, Some(&chosen)));
            agreeing(ms, &grad_ref, bwd.grads)
        })?;
        chosen.backward_filter = best_filter.map(|(a, _)| a);
        if let (Some(_), Some(dx), Some(dx_ref)) = (chosen.backward_filter, bwd.dx, &dx_ref) {
            best_data = fastest(datas, |candidate| {
                chosen.backward_data = Some(candidate);
                let ms = time_ms(gpu, || conv.backward_on(shared, bwd, Some(&chosen)));
                agreeing(ms, dx_ref, dx)
            })?;
            chosen.backward_data = best_data.map(|(a, _)| a);
        }
    }
    let complete = chosen.forward.is_some()
        && chosen.backward_filter.is_some()
        && (bwd.dx.is_none() || chosen.backward_data.is_some());
    if !complete {
        return Ok((
            None,
            format!(
                "im2col ({im2col_fwd:.3} ms fwd, {im2col_bwd:.3} ms bwd): no deterministic cuDNN \
                 algorithm agreed with it within {tolerance:e} for every pass"
            ),
        ));
    }
    let cudnn_bwd = best_filter.map_or(0.0, |(_, ms)| ms);
    // The data gradient's timing ran with the best filter algorithm: the whole pass.
    let cudnn_bwd = best_data.map_or(cudnn_bwd, |(_, ms)| ms);
    let cudnn_fwd = best_fwd.map_or(0.0, |(_, ms)| ms);
    let faster = cudnn_fwd + cudnn_bwd < im2col_fwd + im2col_bwd;
    let times = format!(
        "cuDNN {cudnn_fwd:.3} + {cudnn_bwd:.3} ms against im2col {im2col_fwd:.3} + \
         {im2col_bwd:.3} ms (fwd + bwd)"
    );
    let algos = format!(
        "fwd {:?}, bwd filter {:?}, bwd data {:?}",
        chosen.forward, chosen.backward_filter, chosen.backward_data
    );
    Ok(match (path, faster) {
        (ConvPath::Cudnn, _) | (ConvPath::Auto, true) => {
            (Some(chosen), format!("cudnn ({algos}): {times}"))
        }
        _ => (None, format!("im2col: {times}")),
    })
}

/// Mean milliseconds of `encode`'s work over a few runs after one warm-up, from CUDA events
/// (uncaptured).
fn time_ms(gpu: &Gpu, encode: impl Fn() -> Result<()>) -> Result<f64> {
    const RUNS: usize = 5;
    encode()?;
    let start = gpu.timing_event()?;
    for _ in 0..RUNS {
        encode()?;
    }
    let end = gpu.timing_event()?;
    gpu.synchronize()?;
    Ok(Gpu::elapsed_ms(&start, &end)? / RUNS as f64)
}

/// The fastest of `candidates`, with its time, among those `timed` gives a time for (the
/// ones that run and agree).
fn fastest<A: Copy>(
    candidates: Vec<A>,
    mut timed: impl FnMut(A) -> Result<Option<f64>>,
) -> Result<Option<(A, f64)>> {
    let mut best: Option<(A, f64)> = None;
    for candidate in candidates {
        if let Some(ms) = timed(candidate)? {
            if best.is_none_or(|(_, fastest)| ms < fastest) {
                best = Some((candidate, ms));
            }
        }
    }
    Ok(best)
}
