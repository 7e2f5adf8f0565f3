//! Counter-based random bits, shared by dropout and augmentation: draw `index` under `key` is
//! a hash of the two, so a mask or a crop needs no generator state, splits across threads
//! freely, a resumed run draws what it would have drawn, and the CUDA kernels (kernels.cu's
//! `mix64`) draw the very same bits.

/// SplitMix64's output function: a cheap, well-mixed 64-bit hash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bits of draw `index` under `key`: SplitMix64's value at position `index + 1` of the
/// stream seeded `key`.
#[inline]
pub fn bits_at(key: u64, index: usize) -> u64 {
    mix64(key.wrapping_add((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}
