//! From stored records to the engine's f32 input: a seeded epoch order and the gather of one
//! batch, scaled to [0, 1] as the tutorial's `astype("float") / 255.0`.

use super::cifar10::{Split, IMAGE_BYTES};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Epoch `epoch`'s random order of `0..len` (Keras' `shuffle=True`, redrawn every epoch). A
/// function of (seed, epoch) alone, so a resumed run draws the orders it would have drawn.
pub fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(SHUFFLE_STREAM);
    // Each epoch reads its own stretch of the stream; a shuffle uses far fewer than 2^40 words.
    rng.set_word_pos((epoch as u128) << 40);
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng);
    order
}

/// The ChaCha stream of the seed that shuffles (the network's initialisation uses stream 0).
const SHUFFLE_STREAM: u64 = 1;

/// Writes the images at `indices` as NHWC f32 in [0, 1] into `input`, their labels into `labels`.
pub fn gather(split: &Split, indices: &[usize], input: &mut [f32], labels: &mut Vec<u8>) {
    labels.clear();
    for (dst, &i) in input.chunks_exact_mut(IMAGE_BYTES).zip(indices) {
        for (d, s) in dst.iter_mut().zip(split.image(i)) {
            *d = *s as f32 / 255.0;
        }
        labels.push(split.labels[i]);
    }
}
