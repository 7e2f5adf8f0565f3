//! From stored records to the engine's f32 input: a seeded epoch order and the gather of one
//! batch, scaled to [0, 1] as the tutorial's `astype("float") / 255.0`.

use super::cifar10::{Split, IMAGE_BYTES};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// A fresh random order of `0..len` (Keras' `shuffle=True`, redrawn every epoch).
pub fn shuffled_order(len: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(rng);
    order
}

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
