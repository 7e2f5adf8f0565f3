//! `data::images::decode_as` on arbitrary bytes: the reader behind `minivgg predict` and image
//! folders (any format the `image` crate reads, of any size, made 32×32 RGB here). Whatever the
//! input, it must return an `ImageError`, never panic, hang or allocate without bound (an
//! image declaring huge dimensions in a tiny file is an error, not a huge buffer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use minivgg::data::images::decode_as;
use minivgg::data::ImageShape;

fuzz_target!(|data: &[u8]| {
    if let Ok(pixels) = decode_as("fuzz.png", data, ImageShape::CIFAR) {
        assert_eq!(pixels.len(), ImageShape::CIFAR.len());
    }
});
