//! Pictures made into a network's input (`minivgg predict`, image folders): any file the
//! `image` crate decodes (PNG, JPEG, BMP, GIF's first frame, WebP, TIFF, PNM), made RGB (grey
//! repeated over the three channels, alpha dropped, 16 bits rounded to 8) or grey, and resized
//! to the exact size as the tutorial series' SimplePreprocessor does (`cv2.resize`, aspect
//! ratio not kept), here with a bilinear (triangle) convolution, which averages over the whole
//! footprint when shrinking, as PIL's does; through `fast_image_resize`'s SIMD kernels.

use super::dataset::ImageShape;
use crate::fsutil::read_regular;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::error::LimitErrorKind;
use image::io::Limits;
use std::io::Cursor;
use std::path::Path;

/// Why a file could not be made into a network input.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: cannot read: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: not an image that can be read ({cause})")]
    NotAnImage { path: String, cause: String },
    #[error("{path}: images have 1 (grey) or 3 (RGB) channels, not {channels}")]
    Channels { path: String, channels: usize },
    /// Over the decoding limits: refused from its header, before its pixels are decoded.
    #[error(
        "{path}: a picture larger than minivgg decodes (at most {MAX_IMAGE_SIDE} pixels a side \
         and {} MiB decoded)",
        MAX_DECODED_BYTES >> 20
    )]
    TooLarge { path: String },
}

/// The image at `path` as a data set stores one of `shape`: its bytes row by row, each
/// pixel's channels together (NHWC).
pub fn load_as(path: &Path, shape: ImageShape) -> Result<Vec<u8>, ImageError> {
    let name = path.display().to_string();
    let bytes = read_regular(path).map_err(|cause| ImageError::Read {
        path: name.clone(),
        cause,
    })?;
    decode_as(&name, &bytes, shape)
}

/// The widest and the tallest picture [`decode_as`] decodes, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 1 << 14;
/// The most bytes a picture may decode to (128 MiB: a 40-megapixel RGB photo). A file of a
/// few hundred bytes can declare any size, and decoding costs time and memory in proportion.
pub const MAX_DECODED_BYTES: u64 = 128 << 20;

/// An image file's `bytes` (from `name`, named in errors) as [`load_as`] makes them. A picture
/// larger than [`MAX_IMAGE_SIDE`] or [`MAX_DECODED_BYTES`] is refused before it is decoded.
pub fn decode_as(name: &str, bytes: &[u8], shape: ImageShape) -> Result<Vec<u8>, ImageError> {
    let not_an_image = |cause: String| ImageError::NotAnImage {
        path: name.to_string(),
        cause,
    };
    // The content decides the format, not the file name.
    let mut reader = image::io::Reader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| not_an_image(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    if !matches!(shape.channels, 1 | 3) {
        return Err(ImageError::Channels {
            path: name.to_string(),
            channels: shape.channels,
        });
    }
    let decoded = reader.decode().map_err(|e| match &e {
        // The limits' own words ("Image size exceeds limit") say neither which nor how large.
        image::ImageError::Limits(limit)
            if matches!(
                limit.kind(),
                LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory
            ) =>
        {
            ImageError::TooLarge {
                path: name.to_string(),
            }
        }
        _ => not_an_image(e.to_string()),
    })?;
    // Made grey or RGB first, so the resize moves only the channels that are kept.
    let (pixels, pixel_type) = match shape.channels {
        1 => (decoded.to_luma8().into_raw(), PixelType::U8),
        _ => (decoded.to_rgb8().into_raw(), PixelType::U8x3),
    };
    let (width, height) = (shape.width as u32, shape.height as u32);
    if (decoded.width(), decoded.height()) == (width, height) {
        return Ok(pixels);
    }
    // A picture of no pixels (which some decoders accept) cannot be resized: it is no image.
    let source = Image::from_vec_u8(decoded.width(), decoded.height(), pixels, pixel_type)
        .map_err(|e| not_an_image(e.to_string()))?;
    let mut resized = Image::new(width, height, pixel_type);
    let bilinear = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&source, &mut resized, &bilinear)
        .map_err(|e| not_an_image(e.to_string()))?;
    let pixels = resized.into_vec();
    debug_assert_eq!(pixels.len(), shape.len());
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `image_reader` fuzz target: a 1.3 KB JPEG declaring 65,292×237 pixels of
    /// CMYK, which the decoder filled pixel by pixel (62 MB, seconds) before the resize; now
    /// refused on its header.
    #[test]
    fn a_tiny_jpeg_declaring_a_huge_picture_is_refused_before_decoding() {
        let bytes = include_bytes!("../../tests/fixtures/fuzz-jpeg-65292x237-cmyk.jpg");
        let start = std::time::Instant::now();
        let err = decode_as("wide.jpg", bytes, ImageShape::CIFAR)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "wide.jpg: a picture larger than minivgg decodes (at most 16384 pixels a side and \
             128 MiB decoded)"
        );
        assert!(start.elapsed().as_secs_f64() < 0.5, "{:?}", start.elapsed());
    }

    /// A PNG's header alone may declare 60,000×60,000 pixels: refused, never allocated.
    #[test]
    fn a_png_header_declaring_a_huge_picture_is_refused() {
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut out = (data.len() as u32).to_be_bytes().to_vec();
            let start = out.len();
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let crc = crc32(&out[start..]);
            out.extend_from_slice(&crc.to_be_bytes());
            out
        };
        for (w, h) in [
            (60_000u32, 60_000u32),
            (MAX_IMAGE_SIDE + 1, 1),
            (1, MAX_IMAGE_SIDE + 1),
            // Within the sides, but 256 MiB decoded.
            (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE),
        ] {
            let mut header = w.to_be_bytes().to_vec();
            header.extend_from_slice(&h.to_be_bytes());
            header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey
            let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
            png.extend(chunk(b"IHDR", &header));
            // The start of some pixel data (a zlib header), so that only the size is wrong.
            png.extend(chunk(b"IDAT", &[0x78, 0x9c]));
            png.extend(chunk(b"IEND", &[]));
            let err = decode_as("big.png", &png, ImageShape::CIFAR)
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                "big.png: a picture larger than minivgg decodes (at most 16384 pixels a side \
                 and 128 MiB decoded)",
                "{w}×{h}"
            );
        }
        // At the limit, an image is taken.
        let tall = image::GrayImage::from_pixel(1, MAX_IMAGE_SIDE, image::Luma([7]));
        let mut png = Vec::new();
        tall.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(
            decode_as("tall.png", &png, ImageShape::CIFAR).unwrap(),
            vec![7; ImageShape::CIFAR.len()]
        );
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
