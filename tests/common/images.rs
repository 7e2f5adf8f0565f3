//! Pictures: written as files, as a folder of classes, or as PNG bytes.

use image::{DynamicImage, ImageFormat, RgbImage};
use std::path::Path;

/// Saves `picture` at `path`, in the format its extension names, making the directories
/// above it.
pub fn save_picture(path: &Path, picture: impl Into<DynamicImage>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    picture.into().save(path).unwrap();
}

/// Writes `count` pictures of every class of `classes` into `folder/CLASS/`, as `0.png`,
/// `1.png` …: `picture(c, i)` for the `i`th of the `c`th class.
pub fn write_class_folders(
    folder: &Path,
    classes: &[impl AsRef<Path>],
    count: u32,
    picture: impl Fn(usize, u32) -> RgbImage,
) {
    for (c, class) in classes.iter().enumerate() {
        for i in 0..count {
            save_picture(&folder.join(class).join(format!("{i}.png")), picture(c, i));
        }
    }
}

/// `picture` as the bytes of a PNG file.
pub fn png_bytes(picture: impl Into<DynamicImage>) -> Vec<u8> {
    let mut bytes = Vec::new();
    picture
        .into()
        .write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

/// A PNG of a header alone that declares `width`×`height` grey pixels: a few dozen bytes that
/// would decode to `width · height` bytes.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
        out
    };
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, no interlacing
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &header));
    png.extend(chunk(b"IEND", &[]));
    png
}
