//! From stored records to the engine's f32 input: a seeded epoch order and the gather of one
//! batch, scaled to [0, 1] as the tutorial's `astype("float") / 255.0`.

use super::augment;
use super::dataset::Split;
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

/// Writes the images at `indices` as NHWC f32 (in [0, 1] for the data sets' bytes) into `input`, their labels into
/// `labels`; with an augmentation key (see [`augment::epoch_key`]), each image cropped and
/// flipped as [`augment::draw`] says.
pub fn gather(
    split: &Split,
    indices: &[usize],
    augment_key: Option<u64>,
    input: &mut [f32],
    labels: &mut Vec<u8>,
) {
    labels.clear();
    let (shape, encoding) = (split.shape(), split.encoding());
    let value_bytes = encoding.value_bytes();
    let (height, width, channels) = (shape.height as i64, shape.width as i64, shape.channels);
    for (dst, &i) in input.chunks_exact_mut(shape.len()).zip(indices) {
        let image = split.image(i);
        match augment_key {
            None => encoding.decode(image, dst),
            Some(key) => {
                let crop = augment::draw(key, i);
                for (p, pixel) in dst.chunks_exact_mut(channels).enumerate() {
                    let (y, x) = (p as i64 / width, p as i64 % width);
                    match crop.source(y, x, height, width) {
                        Some((sy, sx)) => {
                            let at = (sy * width + sx) as usize * channels * value_bytes;
                            encoding.decode(&image[at..at + channels * value_bytes], pixel);
                        }
                        None => pixel.fill(0.0),
                    }
                }
            }
        }
        labels.push(split.labels()[i]);
    }
}
