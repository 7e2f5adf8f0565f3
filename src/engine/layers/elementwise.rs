//! The layers that act on each value alone: ReLU, Dropout and Flatten.

use super::{Backward, Forward, Mode};
use rand::Rng;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

pub fn relu_forward(io: Forward) {
    let len = io.x.len().min(io.y.len());
    io.y[..len]
        .par_chunks_mut(CHUNK)
        .zip(io.x[..len].par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (y, x) in y.iter_mut().zip(x) {
                *y = x.max(0.0);
            }
        });
}

/// Reads the output: where ReLU passed its input on, the gradient passes too.
pub fn relu_backward(io: Backward) {
    let Some(dx) = io.dx else { return };
    let len = dx.len();
    dx.par_chunks_mut(CHUNK)
        .zip(io.y[..len].par_chunks(CHUNK))
        .zip(io.dy[..len].par_chunks(CHUNK))
        .for_each(|((dx, y), dy)| {
            for ((dx, y), dy) in dx.iter_mut().zip(y).zip(dy) {
                *dx = if *y > 0.0 { *dy } else { 0.0 };
            }
        });
}

/// NHWC images flatten in Keras' own order, so Flatten only copies.
pub fn flatten_forward(io: Forward) {
    let len = io.y.len();
    io.y.copy_from_slice(&io.x[..len]);
}

pub fn flatten_backward(io: Backward) {
    if let Some(dx) = io.dx {
        let len = dx.len();
        dx.copy_from_slice(&io.dy[..len]);
    }
}

/// Inverted dropout: kept values are scaled by 1/(1 − rate) in training, so evaluation is
/// the identity.
pub struct Dropout {
    rate: f32,
    mask: Vec<f32>,
}

impl Dropout {
    pub fn new(rate: f32, per_sample: usize, capacity: usize) -> Self {
        Dropout {
            rate,
            mask: vec![0.0; per_sample * capacity],
        }
    }

    pub fn forward(&mut self, io: Forward) {
        let len = io.y.len();
        match io.mode {
            Mode::Eval => io.y.copy_from_slice(&io.x[..len]),
            Mode::Train => {
                let scale = 1.0 / (1.0 - self.rate);
                for m in &mut self.mask[..len] {
                    *m = if io.rng.random::<f32>() >= self.rate {
                        scale
                    } else {
                        0.0
                    };
                }
                for ((y, x), m) in io.y.iter_mut().zip(io.x).zip(&self.mask) {
                    *y = x * m;
                }
            }
        }
    }

    pub fn backward(&mut self, io: Backward) {
        if let Some(dx) = io.dx {
            for ((dx, dy), m) in dx.iter_mut().zip(io.dy).zip(&self.mask) {
                *dx = dy * m;
            }
        }
    }
}
