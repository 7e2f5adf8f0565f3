//! 2×2 max pooling, stride 2, over NHWC images. GPU twin: `cuda/layers/pool.rs` (the pool
//! alone).
//!
//! A pool can run its neighbours in its own pass over memory, bit for bit as the layers apart:
//! - the Dropout after it (MiniVGGNet's POOL → DROPOUT): in training each maximum is stored
//!   times its dropout factor, drawn as that layer would draw it (the same key and index), and
//!   backward hands the gradient, times the same factor, to the winner;
//! - the BatchNorm before it (…→ BN → POOL), which then owns the pool: the pool reads the
//!   normalization's input and normalizes each tap as it compares ([`Normalized`]), so BN's
//!   output is never written, and BN's backward reads the pool's gradient where it falls
//!   ([`PooledGrad`]), so the pool's full-size gradient is never written either.

use super::elementwise::dropout_keeps;
use super::{Backward, Forward, Mode};
use crate::engine::cpu::simd::{vectorized, Isa};
use crate::model::Shape;
use rayon::prelude::*;
use std::ops::Range;

/// A winner's byte: the window position (dy·2 + dx) in its low two bits, and, where the
/// dropout runs here, whether it kept the value in this bit.
const KEPT: u8 = 1 << 2;
const POSITION: u8 = 3;

pub struct MaxPool {
    isa: Isa,
    image: PoolImage,
    h: usize,
    /// The rate of the Dropout after it that runs here, if one does.
    dropout: Option<f32>,
    /// Which of the four window positions won, per output value (and whether it was kept).
    winners: Vec<u8>,
}

/// One training step's dropout, as the pool runs it: its key and rate.
#[derive(Clone, Copy)]
struct Drop {
    key: u64,
    rate: f32,
}

impl Drop {
    /// The factor of a value kept or dropped, as the Dropout layer computes it.
    #[inline(always)]
    fn factor(self, kept: bool) -> f32 {
        kept as u32 as f32 * (1.0 / (1.0 - self.rate))
    }
}

/// What [`Drop`] the pool is given where it runs no dropout (never read).
const NO_DROP: Drop = Drop { key: 0, rate: 0.0 };

/// The BatchNorm before a pool, as the pool applies it to each tap: `max(x, floor)·scale +
/// shift` per channel, the operations of BN's own pass.
#[derive(Clone, Copy)]
pub struct Normalized<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub floor: f32,
}

impl MaxPool {
    /// A pool over `input`, for batches of up to `capacity`; `dropout`: the rate of the
    /// Dropout after it, where that runs here.
    pub fn new(isa: Isa, input: Shape, capacity: usize, dropout: Option<f32>) -> Self {
        let Shape::Image { h, w, c } = input else {
            unreachable!("ModelSpec::place checks pool inputs")
        };
        MaxPool {
            isa,
            image: PoolImage { w, c, ow: w / 2 },
            h,
            dropout,
            winners: vec![0; capacity * (h / 2) * (w / 2) * c],
        }
    }

    fn input_len(&self) -> usize {
        self.h * self.image.w * self.image.c
    }

    fn output_len(&self) -> usize {
        (self.h / 2) * self.image.ow * self.image.c
    }

    pub fn forward(&mut self, io: Forward) {
        self.forward_normalized(io, None)
    }

    /// The forward pass, each input value first normalized where `normalized` is given.
    pub fn forward_normalized(&mut self, io: Forward, normalized: Option<Normalized>) {
        let (out_len, in_len, isa, image) =
            (self.output_len(), self.input_len(), self.isa, self.image);
        // Only training's backward reads the winners, and only training drops.
        let record = io.mode == Mode::Train;
        let drop = self.dropout.filter(|_| record).map(|rate| Drop {
            key: io.dropout_key,
            rate,
        });
        io.y[..io.n * out_len]
            .par_chunks_mut(out_len)
            .zip(self.winners.par_chunks_mut(out_len))
            .zip(io.x.par_chunks(in_len))
            .enumerate()
            .for_each(|(sample, ((y, winners), x))| {
                vectorized!(isa, Pool<'a> {
                    y: &'a mut [f32] = y,
                    winners: &'a mut [u8] = winners,
                    x: &'a [f32] = x,
                    image: PoolImage = image,
                    normalized: Option<Normalized<'a>> = normalized,
                    record: bool = record,
                    drop: Option<Drop> = drop,
                    first: usize = sample * out_len,
                } => {
                    let out = (y, winners);
                    match normalized {
                        None => image.forward(x, |x, _| x, out, record, drop, first),
                        Some(Normalized { scale, shift, floor }) => {
                            // Exactly c long, so that reading them needs no bounds checks.
                            let (scale, shift) = (&scale[..image.c], &shift[..image.c]);
                            image.forward(
                                x,
                                |x, j| x.max(floor) * scale[j] + shift[j],
                                out,
                                record,
                                drop,
                                first,
                            )
                        }
                    }
                })
            });
    }

    pub fn backward(&mut self, io: Backward) {
        let Some(dx) = io.dx else { return };
        let (out_len, isa, image) = (self.output_len(), self.isa, self.image);
        let in_len = self.input_len();
        // The key is not needed: the winners' bytes say what was kept.
        let drop = self.dropout.map(|rate| Drop { key: 0, rate });
        dx[..io.n * in_len]
            .par_chunks_mut(in_len)
            .zip(self.winners.par_chunks(out_len))
            .zip(io.dy.par_chunks(out_len))
            .for_each(|((dx, winners), dy)| {
                vectorized!(isa, PoolGrad<'a> {
                    dx: &'a mut [f32] = dx,
                    winners: &'a [u8] = winners,
                    dy: &'a [f32] = dy,
                    image: PoolImage = image,
                    drop: Option<Drop> = drop,
                } => {
                    match drop {
                        Some(drop) => image.backward::<true>(dy, winners, dx, drop),
                        None => image.backward::<false>(dy, winners, dx, NO_DROP),
                    }
                })
            });
    }

    /// The gradient of the pool's input that backward would write from `dy`, to be read
    /// where it is needed instead (by the BatchNorm before, which owns this pool).
    pub fn pooled_grad<'a>(&'a self, dy: &'a [f32]) -> PooledGrad<'a> {
        PooledGrad {
            dy,
            winners: &self.winners,
            image: self.image,
            pixels: self.h * self.image.w,
            oh: self.h / 2,
            // Without a dropout every value is kept with factor 1 (dy · 1 is dy, bit for bit).
            kept_bit: if self.dropout.is_some() { KEPT } else { 0 },
            kept_factor: self
                .dropout
                .map_or(1.0, |rate| Drop { key: 0, rate }.factor(true)),
        }
    }
}

/// One image's geometry: `w` columns of `c` channels in, `ow` columns out.
#[derive(Clone, Copy)]
struct PoolImage {
    w: usize,
    c: usize,
    ow: usize,
}

impl PoolImage {
    /// The input offsets of output pixel `o`'s 2×2 window, in position order.
    #[inline(always)]
    fn window(&self, o: usize) -> [usize; 4] {
        let (oy, ox) = (o / self.ow, o % self.ow);
        let at = |dy: usize, dx: usize| ((2 * oy + dy) * self.w + 2 * ox + dx) * self.c;
        [at(0, 0), at(0, 1), at(1, 0), at(1, 1)]
    }

    /// The four input pixels of output pixel `o`'s window in `x`, in position order, each
    /// exactly `c` values (so that the loops over channels need no bounds checks).
    #[inline(always)]
    fn taps<'x>(&self, x: &'x [f32], o: usize) -> [&'x [f32]; 4] {
        self.window(o).map(|at| &x[at..][..self.c])
    }

    /// The maximum of channel `j` over `taps` as `value(tap[j], j)` reads them, and its
    /// position (the first of equals).
    #[inline(always)]
    fn max_of(value: &impl Fn(f32, usize) -> f32, taps: &[&[f32]; 4], j: usize) -> (f32, u8) {
        let (mut best, mut arg) = (value(taps[0][j], j), 0u8);
        for (t, tap) in taps.iter().enumerate().skip(1) {
            let v = value(tap[j], j);
            if v > best {
                best = v;
                arg = t as u8;
            }
        }
        (best, arg)
    }

    /// One image's maxima of its input `x` as `value(x, channel)` reads each value; in
    /// training (`record`) also their winners, and, with `drop`, the maxima times their
    /// dropout factors (`first` is the index of this image's first output in the batch, the
    /// dropout's draw).
    #[inline(always)]
    fn forward(
        &self,
        x: &[f32],
        value: impl Fn(f32, usize) -> f32,
        (y, winners): (&mut [f32], &mut [u8]),
        record: bool,
        drop: Option<Drop>,
        first: usize,
    ) {
        match (drop, record) {
            (Some(drop), _) => self.forward_recording::<true>(x, &value, y, winners, drop, first),
            (None, true) => self.forward_recording::<false>(x, &value, y, winners, NO_DROP, first),
            (None, false) => {
                for (o, y) in y.chunks_exact_mut(self.c).enumerate() {
                    let taps = self.taps(x, o);
                    for (j, y) in y.iter_mut().enumerate() {
                        *y = Self::max_of(&value, &taps, j).0;
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn forward_recording<const DROP: bool>(
        &self,
        x: &[f32],
        value: &impl Fn(f32, usize) -> f32,
        y: &mut [f32],
        winners: &mut [u8],
        drop: Drop,
        first: usize,
    ) {
        let c = self.c;
        for (o, (y, win)) in y
            .chunks_exact_mut(c)
            .zip(winners.chunks_exact_mut(c))
            .enumerate()
        {
            let taps = self.taps(x, o);
            for (j, (y, win)) in y.iter_mut().zip(win.iter_mut()).enumerate() {
                (*y, *win) = Self::max_of(value, &taps, j);
            }
            if DROP {
                // A loop of its own, so that both vectorize; a product, not a branch: a
                // quarter to a half of the draws drop.
                for j in 0..c {
                    let kept = dropout_keeps(drop.key, first + o * c + j, drop.rate);
                    y[j] *= drop.factor(kept);
                    win[j] |= kept as u8 * KEPT;
                }
            }
        }
    }

    /// The gradient to each window's winner (times its dropout factor where `DROP`), zero
    /// elsewhere.
    #[inline(always)]
    fn backward<const DROP: bool>(&self, dy: &[f32], winners: &[u8], dx: &mut [f32], drop: Drop) {
        let c = self.c;
        dx.fill(0.0);
        for (o, (dy, win)) in dy.chunks_exact(c).zip(winners.chunks_exact(c)).enumerate() {
            let taps = self.window(o);
            for j in 0..c {
                let grad = if DROP {
                    dy[j] * drop.factor(win[j] & KEPT != 0)
                } else {
                    dy[j]
                };
                dx[taps[(win[j] & POSITION) as usize] + j] = grad;
            }
        }
    }
}

/// A pool's input gradient, read in place from its output gradient and winners: the value at
/// input row r (a pixel of the batch), channel j, is what [`MaxPool::backward`] would store
/// there, bit for bit (the gradient, times the dropout factor, at the winner; +0 elsewhere).
#[derive(Clone, Copy)]
pub struct PooledGrad<'a> {
    dy: &'a [f32],
    winners: &'a [u8],
    image: PoolImage,
    /// Input pixels per image, and output rows.
    pixels: usize,
    oh: usize,
    /// The winners' bit that says a value was kept (0 where no dropout runs: all are), and
    /// the factor of a kept value: branch-free, so that the loops over channels vectorize.
    kept_bit: u8,
    kept_factor: f32,
}

impl PooledGrad<'_> {
    /// Channels `channels` of input row r's gradient into `out`.
    #[inline(always)]
    pub fn expand(&self, r: usize, channels: Range<usize>, out: &mut [f32]) {
        let PoolImage { w, c, ow } = self.image;
        let (image, pixel) = (r / self.pixels, r % self.pixels);
        let (y, x) = (pixel / w, pixel % w);
        // The last row or column of an odd side, which no window covers, has no gradient.
        if y / 2 >= self.oh || x / 2 >= ow {
            return out.fill(0.0);
        }
        let output = ((image * self.oh + y / 2) * ow + x / 2) * c;
        let position = ((y % 2) * 2 + x % 2) as u8;
        let (kept_bit, kept_factor) = (self.kept_bit, self.kept_factor);
        let window = output + channels.start..output + channels.end;
        let (dy, winners) = (&self.dy[window.clone()], &self.winners[window]);
        for ((out, &dy), &win) in out.iter_mut().zip(dy).zip(winners) {
            // The Dropout's own product: dy · (kept as 0 or 1 · 1/(1 − rate)).
            let kept = (win & kept_bit == kept_bit) as u32 as f32;
            let grad = dy * (kept * kept_factor);
            // A bit mask, not a branch: three of four positions lose.
            let keep = ((win & POSITION == position) as u32).wrapping_neg();
            *out = f32::from_bits(grad.to_bits() & keep);
        }
    }
}
