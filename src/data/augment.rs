//! `--augment`: the usual CIFAR-10 augmentation, a random crop of the image padded by 4 zero
//! pixels on every side and a horizontal flip with probability ½. Each image's draw is a
//! counter-based hash of (seed, epoch, image index), so it needs no generator state, a resumed
//! run draws what it would have drawn, and the GPU kernel (`gather_batch` in kernels.cu) draws
//! the very same crops.

use crate::counter_hash::{bits_at, mix64};

/// Zero padding on each side before the 32×32 crop is taken.
pub const PAD: i64 = 4;

/// The key of epoch `epoch`'s draws in a run seeded `seed` (dropout and shuffling use others).
pub fn epoch_key(seed: u64, epoch: usize) -> u64 {
    mix64(mix64(seed ^ 0xA076_1D64_78BD_642F).wrapping_add(epoch as u64))
}

/// Where one image's crop starts, relative to the unpadded image, and whether it is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropFlip {
    /// Row and column offsets in -PAD..=PAD.
    pub dy: i64,
    pub dx: i64,
    pub flip: bool,
}

/// Image `image`'s crop and flip under `key`.
pub fn draw(key: u64, image: usize) -> CropFlip {
    let bits = bits_at(key, image);
    // Multiply-shift maps 16 random bits onto 0..=2·PAD with no modulo bias worth the name.
    let offset = |b: u64| (((b & 0xFFFF) * (2 * PAD as u64 + 1)) >> 16) as i64 - PAD;
    CropFlip {
        dy: offset(bits),
        dx: offset(bits >> 16),
        flip: (bits >> 32) & 1 == 1,
    }
}

impl CropFlip {
    /// The source pixel of output pixel (y, x) in an image `width` wide, `height` tall: `None`
    /// where the crop reaches into the zero padding.
    pub fn source(self, y: i64, x: i64, height: i64, width: i64) -> Option<(i64, i64)> {
        let x = if self.flip { width - 1 - x } else { x };
        let (sy, sx) = (y + self.dy, x + self.dx);
        (0..height).contains(&sy).then_some(())?;
        (0..width).contains(&sx).then_some((sy, sx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_cover_every_offset_and_both_flips_evenly() {
        let key = epoch_key(42, 1);
        let mut offsets = [0usize; 9];
        let mut flips = 0;
        for image in 0..90_000 {
            let d = draw(key, image);
            assert!((-PAD..=PAD).contains(&d.dy) && (-PAD..=PAD).contains(&d.dx));
            offsets[(d.dx + PAD) as usize] += 1;
            flips += d.flip as usize;
        }
        for count in offsets {
            assert!((9_500..10_500).contains(&count), "{offsets:?}");
        }
        assert!((44_000..46_000).contains(&flips), "{flips}");
        // Another epoch draws anew.
        let next = epoch_key(42, 2);
        let same = (0..1000).filter(|&i| draw(key, i) == draw(next, i)).count();
        assert!(same < 50, "{same} of 1000 draws repeat in the next epoch");
    }

    #[test]
    fn crop_reads_shifted_pixels_and_padding() {
        let shift = CropFlip {
            dy: 1,
            dx: -2,
            flip: false,
        };
        assert_eq!(shift.source(0, 0, 32, 32), None);
        assert_eq!(shift.source(0, 2, 32, 32), Some((1, 0)));
        assert_eq!(shift.source(31, 5, 32, 32), None);
        let mirrored = CropFlip {
            dy: 0,
            dx: -2,
            flip: true,
        };
        assert_eq!(mirrored.source(3, 0, 32, 32), Some((3, 29)));
        assert_eq!(mirrored.source(3, 31, 32, 32), None);
        let identity = CropFlip {
            dy: 0,
            dx: 0,
            flip: false,
        };
        assert_eq!(identity.source(7, 9, 32, 32), Some((7, 9)));
    }
}
