//! Winograd's F(2×2, 3×3) for "same" 3×3 convolutions of NHWC images: each 2×2 block of
//! outputs from its 4×4 input patch with 16 products per channel pair instead of 36. The
//! patch transform reads the zero border itself, so the images need no padded copy.
//!
//! `Y = Aᵀ [Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)] A`: the kernels are transformed once per call; an image's
//! patches are transformed a block of tiles at a time into 16 matrices `[tiles × C]`, and
//! the 16 products `[tiles × C]·[C × F]` run on the direct convolution's micro-kernel. The
//! block is sized so that its transformed patches and products stay in the core's L2 cache.
//! The result equals the direct convolution's up to f32 rounding (layer tests compare them).
//!
//! The kernel gradient runs the same algebra backwards: with `dM = A dY Aᵀ` for each 2×2 block
//! of the output gradient, `dU[ξν] = Σ_tiles V[ξν]ᵀ · dM[ξν]` (16 products reducing over
//! tiles) and `dg = Gᵀ dU G`.

use super::conv::{tile, tile_rows, Epilogue, COLS, ROWS};
use super::im2col::ConvGeometry;
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _mm256_add_ps as add, _mm256_loadu_ps as load, _mm256_setzero_ps as zero,
    _mm256_storeu_ps as store, _mm256_sub_ps as sub,
};
use std::ops::Range;

/// Channels per AVX register: the transforms do the same adds for every channel.
const LANES: usize = 8;

/// Chunks of images, each with its own scratch: enough to keep a few cores busy on an unevenly
/// loaded machine. A fixed number, not the thread count: asking rayon for that here would
/// start its global pool before `--threads` can size it (and each image's result does not
/// depend on its chunk).
const CHUNKS: usize = 8;

/// Bytes of transformed patches and products per block of tiles: half of Zen 3's 512 KB L2,
/// leaving the rest to the transformed kernels. Against whole images (1 MB for conv2d_2),
/// `minivgg bench` measured the training step 74 → 65 ms; 128 KB and 512 KB did no better.
const BLOCK_BYTES: usize = 256 << 10;

pub struct Winograd {
    /// The images convolved: output size h × w, `c` input channels, k = 3.
    geometry: ConvGeometry,
    /// Columns of the kernel matrix and of the transformed kernels (a multiple of COLS).
    ldk: usize,
    /// `G g Gᵀ` for the 16 positions: `[16][inputs][ldk]`.
    kernels: Vec<f32>,
    /// Tiles per block: a multiple of ROWS (at least one), or all the image's where fewer.
    block: usize,
    /// Per chunk of images: one block's transformed patches `[16][block][inputs]` and products
    /// (or, for the kernel gradient, transformed output gradients) `[16][block][ldk]`.
    scratch: Vec<f32>,
    /// Per chunk of images, for the kernel gradient: `dU` summed over its images,
    /// `[16][inputs][ldk]` (empty where the kernel gradient is not asked for).
    kernel_grad_partials: Vec<f32>,
    chunks: usize,
    /// 0, 1, …, inputs − 1: the micro-kernel's column offsets into a row of patches.
    channel_offsets: Vec<usize>,
    /// t · inputs: where tile t's row starts in a block's transformed-patch matrix.
    tile_offsets: Vec<usize>,
}

impl Winograd {
    /// Whether F(2×2, 3×3) covers the convolution `g`: 3×3, even image sizes, channels in
    /// 8s (the transforms take 8 at a time; a thin first layer gains nothing anyway).
    pub fn applies(g: ConvGeometry) -> bool {
        g.k == 3 && g.h.is_multiple_of(2) && g.w.is_multiple_of(2) && g.c.is_multiple_of(LANES)
    }

    /// F(2×2, 3×3) over `geometry` for kernels `ldk` columns wide, sized for `capacity`
    /// images; `kernel_grads` also plans the scratch of [`Winograd::kernel_grad`].
    pub fn new(
        geometry: ConvGeometry,
        ldk: usize,
        capacity: usize,
        kernel_grads: bool,
    ) -> Winograd {
        assert!(Self::applies(geometry) && ldk.is_multiple_of(COLS));
        let ConvGeometry {
            h, w, c: inputs, ..
        } = geometry;
        let tiles = (h / 2) * (w / 2);
        let chunks = CHUNKS.min(capacity);
        let fitting = BLOCK_BYTES / (16 * (inputs + ldk) * size_of::<f32>());
        let block = (fitting / ROWS * ROWS).max(ROWS).min(tiles);
        Winograd {
            geometry,
            ldk,
            kernels: vec![0.0; 16 * inputs * ldk],
            block,
            scratch: vec![0.0; chunks * 16 * block * (inputs + ldk)],
            kernel_grad_partials: vec![
                0.0;
                if kernel_grads {
                    chunks * 16 * inputs * ldk
                } else {
                    0
                }
            ],
            chunks,
            channel_offsets: (0..inputs).collect(),
            tile_offsets: (0..block).map(|t| t * inputs).collect(),
        }
    }

    /// As `conv::convolve`: `y[p, f] = epilogue((x̃ ⋆ kernel)[p, f])` for `outputs` columns,
    /// `kernel` being `[9 · inputs × ldk]` in (tap, channel) row order.
    pub fn convolve(
        &mut self,
        images: &[f32],
        kernel: &[f32],
        epilogue: Epilogue,
        y: &mut [f32],
        outputs: usize,
        n: usize,
    ) {
        let ConvGeometry { h, w, c, .. } = self.geometry;
        let (ldk, image_len) = (self.ldk, self.geometry.image_len());
        let (tiles, pixels) = ((h / 2) * (w / 2), h * w);
        assert!(outputs <= ldk && kernel.len() >= 9 * c * ldk);
        assert!(images.len() >= n * image_len && y.len() >= n * pixels * outputs);
        transform_kernels(kernel, c, ldk, &mut self.kernels);
        let (per_chunk, block) = (n.div_ceil(self.chunks), self.block);
        let scratch_len = 16 * block * (c + ldk);
        let (kernels, channel_offsets) = (&self.kernels, &self.channel_offsets[..]);
        let tile_offsets = &self.tile_offsets[..];
        y[..n * pixels * outputs]
            .par_chunks_mut(per_chunk * pixels * outputs)
            .zip(images[..n * image_len].par_chunks(per_chunk * image_len))
            .zip(self.scratch.par_chunks_mut(scratch_len))
            .for_each(|((y, images), scratch)| {
                let (patches, sums) = scratch.split_at_mut(16 * block * c);
                for (y, image) in y
                    .chunks_exact_mut(pixels * outputs)
                    .zip(images.chunks_exact(image_len))
                {
                    for t0 in (0..tiles).step_by(block) {
                        let tiles = t0..(t0 + block).min(tiles);
                        // SAFETY: the layer chose this path only where conv::available().
                        unsafe {
                            transform_patches(image, h, w, c, tiles.clone(), patches);
                            let lens = [tiles.len() * c, c * ldk, tiles.len() * ldk];
                            let v = (&*patches, &tile_offsets[..tiles.len()], channel_offsets);
                            products(v, kernels, sums, lens, ldk, false);
                            transform_products(sums, h, w, ldk, tiles, epilogue, y, outputs);
                        }
                    }
                }
            });
    }
}

impl Winograd {
    /// The kernel gradient `[9 · inputs × ldk]` in (tap, channel) row order, from the images
    /// of the forward pass and the output gradient `dy` (`ldk` columns).
    /// Each chunk of images sums its own `dU`; the chunks are then added in order, so the
    /// result depends on `n` but not on the thread count.
    pub fn kernel_grad(&mut self, images: &[f32], dy: &[f32], kernel_grad: &mut [f32], n: usize) {
        let ConvGeometry { h, w, c, .. } = self.geometry;
        let (ldk, image_len) = (self.ldk, self.geometry.image_len());
        let (tiles, pixels, partial_len) = ((h / 2) * (w / 2), h * w, 16 * c * ldk);
        assert!(
            self.kernel_grad_partials.len() >= partial_len,
            "planned without kernel grads"
        );
        assert!(images.len() >= n * image_len && dy.len() >= n * pixels * ldk);
        assert!(kernel_grad.len() >= 9 * c * ldk);
        let (per_chunk, block) = (n.div_ceil(self.chunks), self.block);
        let used = n.div_ceil(per_chunk);
        let scratch_len = 16 * block * (c + ldk);
        let (channel_offsets, tile_offsets) = (&self.channel_offsets[..], &self.tile_offsets[..]);
        let partials = &mut self.kernel_grad_partials[..used * partial_len];
        partials
            .par_chunks_mut(partial_len)
            .zip(dy[..n * pixels * ldk].par_chunks(per_chunk * pixels * ldk))
            .zip(images[..n * image_len].par_chunks(per_chunk * image_len))
            .zip(self.scratch.par_chunks_mut(scratch_len))
            .for_each(|(((partial, dy), images), scratch)| {
                partial.fill(0.0);
                let (patches, grads) = scratch.split_at_mut(16 * block * c);
                for (dy, image) in dy
                    .chunks_exact(pixels * ldk)
                    .zip(images.chunks_exact(image_len))
                {
                    for t0 in (0..tiles).step_by(block) {
                        let tiles = t0..(t0 + block).min(tiles);
                        // SAFETY: the layer chose this path only where conv::available().
                        unsafe {
                            transform_patches(image, h, w, c, tiles.clone(), patches);
                            transform_output_grad(dy, h, w, ldk, tiles.clone(), grads);
                            let lens = [tiles.len() * c, tiles.len() * ldk, c * ldk];
                            let v = (&*patches, channel_offsets, &tile_offsets[..tiles.len()]);
                            products(v, grads, partial, lens, ldk, true);
                        }
                    }
                }
            });
        let (sum, rest) = partials.split_at_mut(partial_len);
        for partial in rest.chunks_exact(partial_len) {
            for (s, p) in sum.iter_mut().zip(partial) {
                *s += p;
            }
        }
        untransform_kernel_grad(sum, c, ldk, kernel_grad);
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

/// `dg = Gᵀ dU G` into `[(tap, c)][f]`, from `dU[ξν][c][f]`, the adjoint of
/// [`transform_kernels`]: Gᵀ = [[1, ½, ½, 0], [0, ½, −½, 0], [0, ½, ½, 1]].
fn untransform_kernel_grad(du: &[f32], c: usize, ldk: usize, out: &mut [f32]) {
    let gt = |a: f32, b: f32, d: f32, e: f32| [a + 0.5 * (b + d), 0.5 * (b - d), 0.5 * (b + d) + e];
    for ci in 0..c {
        for f in 0..ldk {
            let du = |xi: usize, nu: usize| du[((xi * 4 + nu) * c + ci) * ldk + f];
            // Gᵀ dU: 3 rows of 4, then (Gᵀ dU) G: 3 × 3.
            let columns: [[f32; 3]; 4] =
                std::array::from_fn(|nu| gt(du(0, nu), du(1, nu), du(2, nu), du(3, nu)));
            for ky in 0..3 {
                let row = gt(
                    columns[0][ky],
                    columns[1][ky],
                    columns[2][ky],
                    columns[3][ky],
                );
                for (kx, v) in row.into_iter().enumerate() {
                    out[((3 * ky + kx) * c + ci) * ldk + f] = v;
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

/// `V[ξν][t][c] = (Bᵀ d B)[ξ][ν]` for the 4×4 patches d (stride 2) of one image, zero
/// outside it, that belong to `tiles`, numbered from the range's start.
///
/// # Safety
/// The CPU has AVX2; `image` holds h · w · c values, `out` 16 · tiles.len() · c, c is a
/// multiple of 8 and the tiles lie within the image's (h/2)(w/2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transform_patches(
    image: &[f32],
    h: usize,
    w: usize,
    c: usize,
    tiles: Range<usize>,
    out: &mut [f32],
) {
    let tiles_w = w / 2;
    debug_assert!(image.len() >= h * w * c && out.len() >= 16 * tiles.len() * c);
    debug_assert!(tiles.end <= (h / 2) * tiles_w);
    let (image, nb) = (image.as_ptr(), tiles.len());
    for (i, t) in tiles.enumerate() {
        // The patch covers rows y0 − 1 ..= y0 + 2 and columns x0 − 1 ..= x0 + 2; those
        // outside the image are the zero border.
        let (y0, x0) = (2 * (t / tiles_w), 2 * (t % tiles_w));
        let row_inside: [bool; 4] = std::array::from_fn(|y| (1..=h).contains(&(y0 + y)));
        let column_inside: [bool; 4] = std::array::from_fn(|x| (1..=w).contains(&(x0 + x)));
        let out = out.as_mut_ptr().add(i * c);
        for c0 in (0..c).step_by(LANES) {
            let d = |y: usize, x: usize| {
                if row_inside[y] && column_inside[x] {
                    load(image.add(((y0 + y - 1) * w + x0 + x - 1) * c + c0))
                } else {
                    zero()
                }
            };
            let rows: [[__m256; 4]; 4] =
                std::array::from_fn(|y| bt([d(y, 0), d(y, 1), d(y, 2), d(y, 3)]));
            for nu in 0..4 {
                let column = bt(rows.map(|row| row[nu]));
                for (xi, v) in column.into_iter().enumerate() {
                    store(out.add((xi * 4 + nu) * nb * c + c0), v);
                }
            }
        }
    }
}

/// A applied to two vectors: A = [[1, 0], [1, 1], [1, −1], [0, −1]].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn a(y: [__m256; 2]) -> [__m256; 4] {
    [y[0], add(y[0], y[1]), sub(y[0], y[1]), sub(zero(), y[1])]
}

/// `dM[ξν][t][f] = (A dY Aᵀ)[ξ][ν]` for the 2×2 blocks dY of one image's output gradient
/// `[h·w][ldk]` that belong to `tiles`: the adjoint of [`transform_products`].
///
/// # Safety
/// The CPU has AVX2; `dy` holds h · w · ldk values, `out` 16 · tiles.len() · ldk, ldk is a
/// multiple of 8 and the tiles lie within the image's (h/2)(w/2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transform_output_grad(
    dy: &[f32],
    h: usize,
    w: usize,
    ldk: usize,
    tiles: Range<usize>,
    out: &mut [f32],
) {
    let tiles_w = w / 2;
    debug_assert!(dy.len() >= h * w * ldk && out.len() >= 16 * tiles.len() * ldk);
    debug_assert!(tiles.end <= (h / 2) * tiles_w);
    let (dy, nb) = (dy.as_ptr(), tiles.len());
    for (i, t) in tiles.enumerate() {
        let (ty, tx) = (2 * (t / tiles_w), 2 * (t % tiles_w));
        let out = out.as_mut_ptr().add(i * ldk);
        for f0 in (0..ldk).step_by(LANES) {
            let d = |y: usize, x: usize| load(dy.add(((ty + y) * w + tx + x) * ldk + f0));
            let [left, right] = [0, 1].map(|x| a([d(0, x), d(1, x)]));
            for (xi, pair) in left.into_iter().zip(right).enumerate() {
                let row = a(pair.into());
                for (nu, v) in row.into_iter().enumerate() {
                    store(out.add((xi * 4 + nu) * nb * ldk + f0), v);
                }
            }
        }
    }
}

/// `y = epilogue(Aᵀ M A)` for the tiles of `tiles`, from their products `[ξν][t][ldk]`, for the
/// first `outputs` of the products' `ldk` columns.
///
/// # Safety
/// The CPU has AVX2; `products` holds 16 · tiles.len() · ldk values, `y` h · w · outputs, ldk
/// is a multiple of 8, `outputs ≤ ldk` and the tiles lie within the image's (h/2)(w/2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_products(
    products: &[f32],
    h: usize,
    w: usize,
    ldk: usize,
    tiles: Range<usize>,
    epilogue: Epilogue,
    y: &mut [f32],
    outputs: usize,
) {
    use std::arch::x86_64::{_mm256_max_ps as max, _mm256_mul_ps as mul};
    let tiles_w = w / 2;
    debug_assert!(products.len() >= 16 * tiles.len() * ldk && y.len() >= h * w * outputs);
    debug_assert!(tiles.end <= (h / 2) * tiles_w);
    let mut spill = [0.0f32; LANES];
    let nb = tiles.len();
    for (i, t) in tiles.enumerate() {
        let (ty, tx) = (2 * (t / tiles_w), 2 * (t % tiles_w));
        let products = products.as_ptr().add(i * ldk);
        for f0 in (0..outputs).step_by(LANES) {
            let m = |xi: usize, nu: usize| load(products.add((xi * 4 + nu) * nb * ldk + f0));
            let rows: [[__m256; 2]; 4] =
                std::array::from_fn(|xi| at([m(xi, 0), m(xi, 1), m(xi, 2), m(xi, 3)]));
            let width = LANES.min(outputs - f0);
            // The epilogue's values for these filters, zero past `outputs`.
            let mut lanes = |values: &[f32]| {
                if width == LANES {
                    return load(values[f0..f0 + LANES].as_ptr());
                }
                spill = [0.0; LANES];
                spill[..width].copy_from_slice(&values[f0..f0 + width]);
                load(spill.as_ptr())
            };
            let b = epilogue.bias.map_or(zero(), &mut lanes);
            let relu_affine = epilogue
                .relu_affine
                .map(|(scale, shift)| (lanes(scale), lanes(shift)));
            for a in 0..2 {
                let column = at(rows.map(|row| row[a]));
                for (dy, v) in column.into_iter().enumerate() {
                    let mut v = add(v, b);
                    if let Some((scale, shift)) = relu_affine {
                        // As BatchNorm computes it: a product, then a sum (no FMA).
                        v = add(mul(max(v, zero()), scale), shift);
                    }
                    let out = &mut y[((ty + dy) * w + tx + a) * outputs + f0..][..width];
                    if width == LANES {
                        store(out.as_mut_ptr(), v);
                    } else {
                        store(spill.as_mut_ptr(), v);
                        out.copy_from_slice(&spill[..width]);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transform_patches(
    _: &[f32],
    _: usize,
    _: usize,
    _: usize,
    _: Range<usize>,
    _: &mut [f32],
) {
    unreachable!("conv::available() is false off x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transform_output_grad(
    _: &[f32],
    _: usize,
    _: usize,
    _: usize,
    _: Range<usize>,
    _: &mut [f32],
) {
    unreachable!("conv::available() is false off x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_products(
    _: &[f32],
    _: usize,
    _: usize,
    _: usize,
    _: Range<usize>,
    _: Epilogue,
    _: &mut [f32],
    _: usize,
) {
    unreachable!("conv::available() is false off x86-64")
}

/// The 16 products of one block, position k's `out[k][r][..ldk] (+)= Σ_j a[k][rows[r] +
/// cols[j]] · b[k][j][..ldk]`, on the micro-kernel; `lens` are the sizes of a[k], b[k] and
/// out[k]. The forward pass takes tiles as rows and channels as columns (`M = V · U`), the
/// kernel gradient channels as rows and tiles as columns, accumulating (`dU += Vᵀ · dM`).
///
/// # Safety
/// The CPU has AVX2 and FMA; every `a[k][rows[r] + cols[j]]` lies within a[k], and b[k]
/// holds `cols.len()` rows of ldk.
#[allow(clippy::too_many_arguments)]
unsafe fn products(
    (a, rows, cols): (&[f32], &[usize], &[usize]),
    b: &[f32],
    out: &mut [f32],
    [a_len, b_len, out_len]: [usize; 3],
    ldk: usize,
    accumulate: bool,
) {
    let mut sums = [[0.0; COLS]; ROWS];
    for k in 0..16 {
        let a = &a[k * a_len..][..a_len];
        let b = &b[k * b_len..][..b_len];
        let out = &mut out[k * out_len..][..out_len];
        for f0 in (0..ldk).step_by(COLS) {
            for r0 in (0..rows.len()).step_by(ROWS) {
                // SAFETY: the caller's contract.
                unsafe {
                    tile(
                        a.as_ptr(),
                        &tile_rows(rows, r0),
                        cols,
                        b.as_ptr().add(f0),
                        ldk,
                        &mut sums,
                    );
                }
                for (r, sums) in sums.iter().enumerate().take(rows.len() - r0) {
                    let out = &mut out[(r0 + r) * ldk + f0..][..COLS];
                    if accumulate {
                        out.iter_mut().zip(sums).for_each(|(o, s)| *o += s);
                    } else {
                        out.copy_from_slice(sums);
                    }
                }
            }
        }
    }
}
