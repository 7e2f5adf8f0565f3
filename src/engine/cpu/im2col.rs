//! Lowering a k×k "same" convolution over NHWC images to one matrix product: each output
//! pixel becomes a row of its k·k·C input patch, in the kernel's (ky, kx, c) order, which is
//! also Keras' HWIO kernel layout read as a `[k·k·C × F]` matrix.

use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub struct ConvGeometry {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub k: usize,
}

impl ConvGeometry {
    pub fn patch_len(&self) -> usize {
        self.k * self.k * self.c
    }

    pub fn image_len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Width of the image's zero-bordered copy: a k×k "same" window needs k − 1 more columns
    /// (and rows), k / 2 of them before the image.
    pub fn padded_width(&self) -> usize {
        self.w + self.k - 1
    }

    /// Values in one zero-bordered image.
    pub fn padded_len(&self) -> usize {
        (self.h + self.k - 1) * self.padded_width() * self.c
    }

    /// Calls `visit(patch_offset, Some(image_offset) | None for padding)` for every run of C
    /// channels of output pixel (y, x)'s patch.
    #[inline]
    fn for_each_tap(&self, y: usize, x: usize, mut visit: impl FnMut(usize, Option<usize>)) {
        let pad = self.k / 2;
        for ky in 0..self.k {
            let iy = (y + ky).wrapping_sub(pad);
            for kx in 0..self.k {
                let ix = (x + kx).wrapping_sub(pad);
                let tap = (ky * self.k + kx) * self.c;
                let inside = iy < self.h && ix < self.w;
                visit(tap, inside.then(|| (iy * self.w + ix) * self.c));
            }
        }
    }
}

/// `cols[n·H·W × k·k·C]` from `images[n × H × W × C]`, zeros where the patch leaves the image.
pub fn im2col(g: ConvGeometry, images: &[f32], cols: &mut [f32]) {
    let (patch, c) = (g.patch_len(), g.c);
    cols.par_chunks_mut(g.h * g.w * patch)
        .zip(images.par_chunks(g.image_len()))
        .for_each(|(cols, image)| {
            for y in 0..g.h {
                for x in 0..g.w {
                    let row = &mut cols[(y * g.w + x) * patch..][..patch];
                    g.for_each_tap(y, x, |tap, src| match src {
                        Some(s) => row[tap..tap + c].copy_from_slice(&image[s..s + c]),
                        None => row[tap..tap + c].fill(0.0),
                    });
                }
            }
        });
}

/// The adjoint of [`im2col`]: `images = Σ` of every patch row scattered back to its pixels.
pub fn col2im(g: ConvGeometry, cols: &[f32], images: &mut [f32]) {
    let (patch, c) = (g.patch_len(), g.c);
    images
        .par_chunks_mut(g.image_len())
        .zip(cols.par_chunks(g.h * g.w * patch))
        .for_each(|(image, cols)| {
            image.fill(0.0);
            for y in 0..g.h {
                for x in 0..g.w {
                    let row = &cols[(y * g.w + x) * patch..][..patch];
                    g.for_each_tap(y, x, |tap, dst| {
                        if let Some(d) = dst {
                            for (o, v) in image[d..d + c].iter_mut().zip(&row[tap..tap + c]) {
                                *o += v;
                            }
                        }
                    });
                }
            }
        });
}
