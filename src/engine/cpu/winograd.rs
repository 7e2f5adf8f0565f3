//! Winograd's F(2×2, 3×3) for "same" 3×3 convolutions of zero-bordered NHWC images: each 2×2
//! block of outputs from its 4×4 input patch with 16 products per channel pair instead of 36.
//!
//! `Y = Aᵀ [Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)] A`: the kernels are transformed once per call, each
//! image's patches into 16 matrices `[tiles × C]`, and the 16 products `[tiles × C]·[C × F]`
//! run on the direct convolution's micro-kernel. An image's transformed patches and products
//! (about 1 MB for MiniVGGNet's second layer) stay in the core's cache while it is worked on.
//! The result equals the direct convolution's up to f32 rounding (layer tests compare them).

use super::conv::{tile, tile_rows, COLS, ROWS};
use super::im2col::ConvGeometry;
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _mm256_add_ps as add, _mm256_loadu_ps as load, _mm256_setzero_ps as zero,
    _mm256_storeu_ps as store, _mm256_sub_ps as sub,
};

/// Channels per AVX register: the transforms do the same adds for every channel.
const LANES: usize = 8;

/// Chunks of images, each with its own scratch: enough to keep a few cores busy on an unevenly
/// loaded machine. A fixed number, not the thread count: asking rayon for that here would
/// start its global pool before `--threads` can size it (and each image's result does not
/// depend on its chunk).
const CHUNKS: usize = 8;

pub struct Winograd {
    /// The images convolved: output size h × w, `c` input channels, k = 3.
    geometry: ConvGeometry,
    /// Columns of the kernel matrix and of the transformed kernels (a multiple of COLS).
    ldk: usize,
    /// `G g Gᵀ` for the 16 positions: `[16][inputs][ldk]`.
    kernels: Vec<f32>,
    /// Per chunk of images: the transformed patches `[16][tiles][inputs]` and the products
    /// `[16][tiles][ldk]`.
    scratch: Vec<f32>,
    chunks: usize,
    /// 0, 1, …, inputs − 1: the micro-kernel's column offsets into a row of patches.
    channel_offsets: Vec<usize>,
    /// t · inputs: where tile t's row starts in a transformed-patch matrix.
    tile_offsets: Vec<usize>,
}

impl Winograd {
    /// Whether F(2×2, 3×3) covers the convolution `g`: 3×3, even image sizes, channels in
    /// 8s (the transforms take 8 at a time; a thin first layer gains nothing anyway).
    pub fn applies(g: ConvGeometry) -> bool {
        g.k == 3 && g.h.is_multiple_of(2) && g.w.is_multiple_of(2) && g.c.is_multiple_of(LANES)
    }

    pub fn new(geometry: ConvGeometry, ldk: usize, capacity: usize) -> Winograd {
        assert!(Self::applies(geometry) && ldk.is_multiple_of(COLS));
        let ConvGeometry {
            h, w, c: inputs, ..
        } = geometry;
        let tiles = (h / 2) * (w / 2);
        let chunks = CHUNKS.min(capacity);
        Winograd {
            geometry,
            ldk,
            kernels: vec![0.0; 16 * inputs * ldk],
            scratch: vec![0.0; chunks * 16 * tiles * (inputs + ldk)],
            chunks,
            channel_offsets: (0..inputs).collect(),
            tile_offsets: (0..tiles).map(|t| t * inputs).collect(),
        }
    }

    /// As `conv::convolve`: `y[p, f] = bias[f] + (x̃ ⋆ kernel)[p, f]` for `outputs` columns,
    /// `kernel` being `[9 · inputs × ldk]` in (tap, channel) row order.
    pub fn convolve(
        &mut self,
        padded: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
        outputs: usize,
        n: usize,
    ) {
        let ConvGeometry { h, w, c, .. } = self.geometry;
        let (ldk, padded_len) = (self.ldk, self.geometry.padded_len());
        let (tiles, pixels) = ((h / 2) * (w / 2), h * w);
        assert!(outputs <= ldk && kernel.len() >= 9 * c * ldk);
        assert!(padded.len() >= n * padded_len && y.len() >= n * pixels * outputs);
        transform_kernels(kernel, c, ldk, &mut self.kernels);
        let per_chunk = n.div_ceil(self.chunks);
        let scratch_len = 16 * tiles * (c + ldk);
        let (kernels, offsets) = (&self.kernels, (&self.channel_offsets, &self.tile_offsets));
        y[..n * pixels * outputs]
            .par_chunks_mut(per_chunk * pixels * outputs)
            .zip(padded[..n * padded_len].par_chunks(per_chunk * padded_len))
            .zip(self.scratch.par_chunks_mut(scratch_len))
            .for_each(|((y, padded), scratch)| {
                let (patches, products) = scratch.split_at_mut(16 * tiles * c);
                for (y, image) in y
                    .chunks_exact_mut(pixels * outputs)
                    .zip(padded.chunks_exact(padded_len))
                {
                    // SAFETY: the layer chose this path only where conv::available().
                    unsafe {
                        transform_patches(image, h, w, c, patches);
                        multiply(patches, kernels, products, tiles, c, ldk, offsets);
                        transform_products(products, h, w, ldk, bias, y, outputs);
                    }
                }
            });
    }
}

/// `U[ξν][c][f] = (G g Gᵀ)[ξ][ν]` with `g[ky][kx] = kernel[(3·ky + kx)·C + c][f]` and
/// G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
fn transform_kernels(kernel: &[f32], c: usize, ldk: usize, out: &mut [f32]) {
    let g_rows = |a: f32, b: f32, d: f32| [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
    for ci in 0..c {
        for f in 0..ldk {
            let g = |tap: usize| kernel[(tap * c + ci) * ldk + f];
            // G g: 4 rows of 3, then (G g) Gᵀ: 4 × 4.
            let columns: [[f32; 4]; 3] =
                std::array::from_fn(|kx| g_rows(g(kx), g(3 + kx), g(6 + kx)));
            for xi in 0..4 {
                let row = g_rows(columns[0][xi], columns[1][xi], columns[2][xi]);
                for (nu, v) in row.into_iter().enumerate() {
                    out[((xi * 4 + nu) * c + ci) * ldk + f] = v;
                }
            }
        }
    }
}

/// Bᵀ applied to four vectors: Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn bt(d: [__m256; 4]) -> [__m256; 4] {
    [
        sub(d[0], d[2]),
        add(d[1], d[2]),
        sub(d[2], d[1]),
        sub(d[1], d[3]),
    ]
}

/// Aᵀ applied to four vectors: Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn at(m: [__m256; 4]) -> [__m256; 2] {
    [add(add(m[0], m[1]), m[2]), sub(sub(m[1], m[2]), m[3])]
}

/// `V[ξν][t][c] = (Bᵀ d B)[ξ][ν]` for every 4×4 patch d (stride 2) of one padded image.
///
/// # Safety
/// The CPU has AVX2; `image` holds (h + 2)(w + 2)·c values, `out` 16 · tiles · c, and c is a
/// multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transform_patches(image: &[f32], h: usize, w: usize, c: usize, out: &mut [f32]) {
    let (wp, tiles_w, tiles) = (w + 2, w / 2, (h / 2) * (w / 2));
    debug_assert!(image.len() >= (h + 2) * wp * c && out.len() >= 16 * tiles * c);
    let (image, out) = (image.as_ptr(), out.as_mut_ptr());
    for t in 0..tiles {
        let base = image.add((2 * (t / tiles_w) * wp + 2 * (t % tiles_w)) * c);
        for c0 in (0..c).step_by(LANES) {
            let d = |y: usize, x: usize| load(base.add((y * wp + x) * c + c0));
            let rows: [[__m256; 4]; 4] =
                std::array::from_fn(|y| bt([d(y, 0), d(y, 1), d(y, 2), d(y, 3)]));
            for nu in 0..4 {
                let column = bt(rows.map(|row| row[nu]));
                for (xi, v) in column.into_iter().enumerate() {
                    store(out.add(((xi * 4 + nu) * tiles + t) * c + c0), v);
                }
            }
        }
    }
}

/// `y = Aᵀ M A + bias` per tile, for the first `outputs` of the products' `ldk` columns.
///
/// # Safety
/// The CPU has AVX2; `products` holds 16 · tiles · ldk values, `y` h · w · outputs, ldk is a
/// multiple of 8 and `outputs ≤ ldk`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transform_products(
    products: &[f32],
    h: usize,
    w: usize,
    ldk: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
    outputs: usize,
) {
    let (tiles_w, tiles) = (w / 2, (h / 2) * (w / 2));
    debug_assert!(products.len() >= 16 * tiles * ldk && y.len() >= h * w * outputs);
    let products = products.as_ptr();
    let mut spill = [0.0f32; LANES];
    for t in 0..tiles {
        let (ty, tx) = (2 * (t / tiles_w), 2 * (t % tiles_w));
        for f0 in (0..outputs).step_by(LANES) {
            let m =
                |xi: usize, nu: usize| load(products.add(((xi * 4 + nu) * tiles + t) * ldk + f0));
            let rows: [[__m256; 2]; 4] =
                std::array::from_fn(|xi| at([m(xi, 0), m(xi, 1), m(xi, 2), m(xi, 3)]));
            let width = LANES.min(outputs - f0);
            let b = match bias {
                Some(b) if width == LANES => load(b.as_ptr().add(f0)),
                Some(b) => {
                    spill = [0.0; LANES];
                    spill[..width].copy_from_slice(&b[f0..f0 + width]);
                    load(spill.as_ptr())
                }
                None => zero(),
            };
            for a in 0..2 {
                let column = at(rows.map(|row| row[a]));
                for (dy, v) in column.into_iter().enumerate() {
                    let out = &mut y[((ty + dy) * w + tx + a) * outputs + f0..][..width];
                    if width == LANES {
                        store(out.as_mut_ptr(), add(v, b));
                    } else {
                        store(spill.as_mut_ptr(), add(v, b));
                        out.copy_from_slice(&spill[..width]);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transform_patches(_: &[f32], _: usize, _: usize, _: usize, _: &mut [f32]) {
    unreachable!("conv::available() is false off x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transform_products(
    _: &[f32],
    _: usize,
    _: usize,
    _: usize,
    _: Option<&[f32]>,
    _: &mut [f32],
    _: usize,
) {
    unreachable!("conv::available() is false off x86-64")
}

/// The 16 products `M[ξν] = V[ξν] · U[ξν]`, `[tiles × c] · [c × ldk]`.
///
/// # Safety
/// The CPU has AVX2 and FMA.
unsafe fn multiply(
    patches: &[f32],
    kernels: &[f32],
    products: &mut [f32],
    tiles: usize,
    c: usize,
    ldk: usize,
    (channel_offsets, tile_offsets): (&Vec<usize>, &Vec<usize>),
) {
    let mut out = [[0.0; COLS]; ROWS];
    for k in 0..16 {
        let v = &patches[k * tiles * c..][..tiles * c];
        let u = &kernels[k * c * ldk..][..c * ldk];
        let m = &mut products[k * tiles * ldk..][..tiles * ldk];
        for f0 in (0..ldk).step_by(COLS) {
            for t0 in (0..tiles).step_by(ROWS) {
                // SAFETY: rows index tile rows of v (t · c + channel < tiles · c), and u holds
                // c rows of ldk.
                unsafe {
                    tile(
                        v.as_ptr(),
                        &tile_rows(tile_offsets, t0),
                        channel_offsets,
                        u.as_ptr().add(f0),
                        ldk,
                        &mut out,
                    );
                }
                for (r, sums) in out.iter().enumerate().take(tiles - t0) {
                    m[(t0 + r) * ldk + f0..][..COLS].copy_from_slice(sums);
                }
            }
        }
    }
}
