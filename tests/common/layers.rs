//! One CPU layer run on its own, as the gradient and GPU parity tests drive it.

use minivgg::engine::layers::{Backward, Forward, Layer, Mode};

/// Forward then backward of one layer, its dropout mask drawn under `key`: (output, moving
/// statistics, parameter gradients, input gradient).
#[allow(clippy::too_many_arguments)]
pub fn pass(
    layer: &mut Layer,
    x: &[f32],
    weights: &[f32],
    moving: &[f32],
    dy: &[f32],
    n: usize,
    mode: Mode,
    key: u64,
) -> [Vec<f32>; 4] {
    let (mut y, mut moving) = (vec![0.0; dy.len()], moving.to_vec());
    layer.forward(Forward {
        weights,
        moving: &mut moving,
        x,
        y: &mut y,
        n,
        mode,
        dropout_key: key,
    });
    let (mut grads, mut dx) = (vec![0.0; weights.len()], vec![0.0; x.len()]);
    layer.backward(Backward {
        weights,
        grads: &mut grads,
        x,
        y: &y,
        dy,
        dx: Some(&mut dx),
        n,
    });
    [y, moving, grads, dx]
}
