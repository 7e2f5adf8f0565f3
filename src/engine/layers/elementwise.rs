//! The layers that act on each value alone: ReLU, Dropout and Flatten. GPU twin:
//! `cuda/layers/elementwise.rs`.

use super::{Backward, Forward, Mode};
use crate::counter_hash::{bits_at, mix64};
use crate::engine::cpu::simd::{vectorized, Isa};
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

pub fn relu_forward(isa: Isa, io: Forward) {
    let len = io.x.len().min(io.y.len());
    io.y[..len]
        .par_chunks_mut(CHUNK)
        .zip(io.x[..len].par_chunks(CHUNK))
        .for_each(|(y, x)| {
            vectorized!(isa, Relu<'a> { y: &'a mut [f32] = y, x: &'a [f32] = x } => {
                for (y, x) in y.iter_mut().zip(x) {
                    *y = x.max(0.0);
                }
            })
        });
}

/// Reads the output: where ReLU passed its input on, the gradient passes too.
pub fn relu_backward(isa: Isa, io: Backward) {
    let Some(dx) = io.dx else { return };
    let len = dx.len();
    dx.par_chunks_mut(CHUNK)
        .zip(io.y[..len].par_chunks(CHUNK))
        .zip(io.dy[..len].par_chunks(CHUNK))
        .for_each(|((dx, y), dy)| {
            let fields = (dx, y, dy);
            vectorized!(isa, ReluGrad<'a> {
                dx: &'a mut [f32] = fields.0,
                y: &'a [f32] = fields.1,
                dy: &'a [f32] = fields.2,
            } => {
                for ((dx, y), dy) in dx.iter_mut().zip(y).zip(dy) {
                    // A bit mask, not a branch: the signs are random, so a branch mispredicts
                    // half the time, and this form vectorizes.
                    let keep = ((*y > 0.0) as u32).wrapping_neg();
                    *dx = f32::from_bits(dy.to_bits() & keep);
                }
            })
        });
}

/// NHWC images flatten in Keras' own order, so Flatten only copies (as a first layer; after
/// another it runs inside that one, which already wrote its output).
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

/// The key of one dropout layer's mask in one training step.
pub fn dropout_key(seed: u64, step: u64, layer: usize) -> u64 {
    mix64(seed.wrapping_add(mix64(step.wrapping_mul(1 << 8).wrapping_add(layer as u64))))
}

/// Whether value `index` survives dropout under `key` (a counter-based draw: the CUDA kernel
/// draws the very same mask).
#[inline]
pub fn dropout_keeps(key: u64, index: usize, rate: f32) -> bool {
    let bits = bits_at(key, index);
    (bits >> 40) as f32 * (1.0 / (1u64 << 24) as f32) >= rate
}

/// Inverted dropout: kept values are scaled by 1/(1 − rate) in training, so evaluation is
/// the identity. Forward keeps each value's factor (0 or 1/(1 − rate)) for backward.
pub struct Dropout {
    isa: Isa,
    rate: f32,
    /// The factors of the last training forward pass.
    factors: Vec<f32>,
}

impl Dropout {
    pub fn new(isa: Isa, rate: f32, len: usize) -> Self {
        Dropout {
            isa,
            rate,
            factors: vec![0.0; len],
        }
    }

    pub fn forward(&mut self, io: Forward) {
        let len = io.y.len();
        if io.mode == Mode::Eval {
            io.y.copy_from_slice(&io.x[..len]);
            return;
        }
        let (key, rate, scale) = (io.dropout_key, self.rate, 1.0 / (1.0 - self.rate));
        let isa = self.isa;
        io.y.par_chunks_mut(CHUNK)
            .zip(self.factors[..len].par_chunks_mut(CHUNK))
            .zip(io.x[..len].par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, ((y, factors), x))| {
                let offset = c * CHUNK;
                vectorized!(isa, Drop<'a> {
                    y: &'a mut [f32] = y,
                    factors: &'a mut [f32] = factors,
                    x: &'a [f32] = x,
                    key: u64 = key,
                    rate: f32 = rate,
                    scale: f32 = scale,
                    offset: usize = offset,
                } => {
                    for (i, ((y, factor), x)) in y.iter_mut().zip(factors).zip(x).enumerate() {
                        // A product, not a branch: a quarter to a half of the draws drop.
                        *factor = dropout_keeps(key, offset + i, rate) as u32 as f32 * scale;
                        *y = x * *factor;
                    }
                })
            });
    }

    pub fn backward(&mut self, io: Backward) {
        if let Some(dx) = io.dx {
            let (len, isa) = (dx.len(), self.isa);
            dx.par_chunks_mut(CHUNK)
                .zip(self.factors[..len].par_chunks(CHUNK))
                .zip(io.dy[..len].par_chunks(CHUNK))
                .for_each(|((dx, factors), dy)| {
                    vectorized!(isa, DropGrad<'a> {
                        dx: &'a mut [f32] = dx,
                        factors: &'a [f32] = factors,
                        dy: &'a [f32] = dy,
                    } => {
                        for ((dx, factor), dy) in dx.iter_mut().zip(factors).zip(dy) {
                            *dx = dy * factor;
                        }
                    })
                });
        }
    }
}
