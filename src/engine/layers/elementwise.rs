//! The layers that act on each value alone: ReLU, Dropout and Flatten.

use super::{Backward, Forward, Mode};
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

/// SplitMix64's output function: a cheap, well-mixed 64-bit hash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of one dropout layer's mask in one training step.
pub fn dropout_key(seed: u64, step: u64, layer: usize) -> u64 {
    mix64(seed.wrapping_add(mix64(step.wrapping_mul(1 << 8).wrapping_add(layer as u64))))
}

/// Whether value `index` survives dropout under `key`: a counter-based draw (SplitMix64 at
/// position `index`), so a mask needs no generator state, splits across threads freely and
/// the CUDA kernel draws the very same mask.
#[inline]
pub fn dropout_keeps(key: u64, index: usize, rate: f32) -> bool {
    let bits = mix64(key.wrapping_add((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    (bits >> 40) as f32 * (1.0 / (1u64 << 24) as f32) >= rate
}

/// Inverted dropout: kept values are scaled by 1/(1 − rate) in training, so evaluation is
/// the identity. Backward redraws the mask from its key instead of storing it.
pub struct Dropout {
    rate: f32,
    /// The mask of the last training forward pass.
    key: u64,
}

impl Dropout {
    pub fn new(rate: f32) -> Self {
        Dropout { rate, key: 0 }
    }

    /// `out[i] = input[i] · (kept ? 1/(1 − rate) : 0)`.
    fn apply(&self, input: &[f32], out: &mut [f32]) {
        let (key, rate, scale) = (self.key, self.rate, 1.0 / (1.0 - self.rate));
        out.par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (out, input))| {
                for (i, (o, v)) in out.iter_mut().zip(input).enumerate() {
                    *o = if dropout_keeps(key, c * CHUNK + i, rate) {
                        v * scale
                    } else {
                        0.0
                    };
                }
            });
    }

    pub fn forward(&mut self, io: Forward) {
        let len = io.y.len();
        match io.mode {
            Mode::Eval => io.y.copy_from_slice(&io.x[..len]),
            Mode::Train => {
                self.key = io.dropout_key;
                self.apply(&io.x[..len], io.y);
            }
        }
    }

    pub fn backward(&mut self, io: Backward) {
        if let Some(dx) = io.dx {
            let len = dx.len();
            self.apply(&io.dy[..len], dx);
        }
    }
}
