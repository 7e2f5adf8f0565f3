//! `data::images::decode_as_cifar` on arbitrary bytes: the reader behind `minivgg predict`
//! (PNG or JPEG of any size, made 32×32 RGB). Whatever the input, it must return an
//! `ImageError`, never panic, hang or allocate without bound (an image declaring huge
//! dimensions in a tiny file is an error, not a huge buffer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use minivgg::data::cifar10::IMAGE_BYTES;
use minivgg::data::images::decode_as_cifar;

fuzz_target!(|data: &[u8]| {
    if let Ok(pixels) = decode_as_cifar("fuzz.png", data) {
        assert_eq!(pixels.len(), IMAGE_BYTES);
    }
});
