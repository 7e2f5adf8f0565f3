//! 2×2 max pooling, stride 2, over NHWC images.

use super::{Backward, Forward, Mode};
use crate::engine::cpu::simd::{vectorized, Isa};
use crate::model::Shape;
use rayon::prelude::*;

pub struct MaxPool {
    isa: Isa,
    h: usize,
    w: usize,
    c: usize,
    /// Which of the four window positions (dy·2 + dx) won, per output value.
    winners: Vec<u8>,
}

impl MaxPool {
    pub fn new(isa: Isa, input: Shape, capacity: usize) -> Self {
        let Shape::Image { h, w, c } = input else {
            unreachable!("ModelSpec::place checks pool inputs")
        };
        MaxPool {
            isa,
            h,
            w,
            c,
            winners: vec![0; capacity * (h / 2) * (w / 2) * c],
        }
    }

    fn output_len(&self) -> usize {
        (self.h / 2) * (self.w / 2) * self.c
    }

    pub fn forward(&mut self, io: Forward) {
        let (w, c, out_len, isa) = (self.w, self.c, self.output_len(), self.isa);
        let ow = w / 2;
        // Only training's backward reads the winners.
        let record = io.mode == Mode::Train;
        io.y[..io.n * out_len]
            .par_chunks_mut(out_len)
            .zip(self.winners.par_chunks_mut(out_len))
            .zip(io.x.par_chunks(self.h * w * c))
            .for_each(|((y, winners), x)| {
                vectorized!(isa, Pool<'a> {
                    y: &'a mut [f32] = y,
                    winners: &'a mut [u8] = winners,
                    x: &'a [f32] = x,
                    w: usize = w,
                    c: usize = c,
                    ow: usize = ow,
                    record: bool = record,
                } => {
                    for (o, (y, win)) in y
                        .chunks_exact_mut(c)
                        .zip(winners.chunks_exact_mut(c))
                        .enumerate()
                    {
                        let (oy, ox) = (o / ow, o % ow);
                        let at = |dy: usize, dx: usize| ((2 * oy + dy) * w + 2 * ox + dx) * c;
                        let taps = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                        for j in 0..c {
                            let (mut best, mut arg) = (x[taps[0] + j], 0u8);
                            for (t, &tap) in taps.iter().enumerate().skip(1) {
                                if x[tap + j] > best {
                                    best = x[tap + j];
                                    arg = t as u8;
                                }
                            }
                            y[j] = best;
                            if record {
                                win[j] = arg;
                            }
                        }
                    }
                })
            });
    }

    pub fn backward(&mut self, io: Backward) {
        let Some(dx) = io.dx else { return };
        let (w, c, out_len, isa) = (self.w, self.c, self.output_len(), self.isa);
        let ow = w / 2;
        dx[..io.n * self.h * w * c]
            .par_chunks_mut(self.h * w * c)
            .zip(self.winners.par_chunks(out_len))
            .zip(io.dy.par_chunks(out_len))
            .for_each(|((dx, winners), dy)| {
                vectorized!(isa, PoolGrad<'a> {
                    dx: &'a mut [f32] = dx,
                    winners: &'a [u8] = winners,
                    dy: &'a [f32] = dy,
                    w: usize = w,
                    c: usize = c,
                    ow: usize = ow,
                } => {
                    dx.fill(0.0);
                    for (o, (dy, win)) in
                        dy.chunks_exact(c).zip(winners.chunks_exact(c)).enumerate()
                    {
                        let (oy, ox) = (o / ow, o % ow);
                        for j in 0..c {
                            let (wy, wx) = ((win[j] / 2) as usize, (win[j] % 2) as usize);
                            dx[((2 * oy + wy) * w + 2 * ox + wx) * c + j] = dy[j];
                        }
                    }
                })
            });
    }
}
