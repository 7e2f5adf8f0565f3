//! Pictures from outside CIFAR-10 (`minivgg predict`): any PNG or JPEG, decoded by the `image`
//! crate, made RGB (grey is repeated over the three channels, alpha dropped) and resized to
//! 32×32 as the tutorial series' SimplePreprocessor does (`cv2.resize` to the exact size,
//! aspect ratio not kept), here with a triangle (bilinear) filter, which averages over the
//! whole footprint when shrinking.

use super::cifar10::{IMAGE_BYTES, IMAGE_SIDE};
use image::imageops::FilterType;
use std::path::Path;

/// Why a file could not be made into a network input.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: cannot read: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: not a PNG or JPEG image ({cause})")]
    NotAnImage { path: String, cause: String },
}

/// The image at `path` as CIFAR-10 stores one: 32×32 RGB bytes, row by row (NHWC).
pub fn load_as_cifar(path: &Path) -> Result<Vec<u8>, ImageError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|cause| ImageError::Read {
        path: name.clone(),
        cause,
    })?;
    // The content decides the format, not the file name.
    let decoded = image::load_from_memory(&bytes).map_err(|e| ImageError::NotAnImage {
        path: name,
        cause: e.to_string(),
    })?;
    let side = IMAGE_SIDE as u32;
    let rgb = decoded
        .resize_exact(side, side, FilterType::Triangle)
        .to_rgb8()
        .into_raw();
    debug_assert_eq!(rgb.len(), IMAGE_BYTES);
    Ok(rgb)
}
