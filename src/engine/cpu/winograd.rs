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

use super::conv::{store_lanes, tile, Bf16Pair, Epilogue, Factor, TileOut, COLS};
use super::im2col::ConvGeometry;
use super::simd::{dispatch, Isa, Kernel, Simd, LANES};
use crate::engine::precision::Precision;
use rayon::prelude::*;
use std::ops::Range;

/// Chunks of images, each with its own scratch: enough to keep a few cores busy on an unevenly
/// loaded machine. A fixed number, not the thread count: asking rayon for that here would
/// start its global pool before `--threads` can size it (and each image's result does not
/// depend on its chunk).
const CHUNKS: usize = 8;

/// Bytes of transformed patches and products per block of tiles: half of Zen 3's 512 KB L2,
/// leaving the rest to the transformed kernels. Against whole images (1 MB for conv2d_2),
/// `minivgg bench` measured the training step 74 → 65 ms; 128 KB and 512 KB did no better.
const BLOCK_BYTES: usize = 256 << 10;

/// Tiles per block come in multiples of this: every path's tile height (4, 6, 12) divides it.
const BLOCK_TILES: usize = 12;

pub struct Winograd {
    isa: Isa,
    /// The images convolved: output size h × w, `c` input channels, k = 3.
    geometry: ConvGeometry,
    /// Columns of the kernel matrix and of the transformed kernels (a multiple of COLS).
    ldk: usize,
    /// `G g Gᵀ` for the 16 positions: `[16][inputs][ldk]`, and in bf16 its rows paired
    /// (`[16][inputs / 2][ldk]`; unused in fp32).
    kernels: Vec<f32>,
    paired_kernels: Vec<Bf16Pair>,
    /// Tiles per block: a multiple of BLOCK_TILES (at least one), or all the image's where
    /// fewer.
    block: usize,
    /// Per chunk of images: one block's transformed patches `[16][block][inputs]` and products
    /// (or, for the kernel gradient, transformed output gradients) `[16][block][ldk]`.
    scratch: Vec<f32>,
    /// Per chunk of images, in bf16: the same as pairs (unused in fp32).
    paired_scratch: Vec<Bf16Pair>,
    /// Per chunk of images, for the kernel gradient: `dU` summed over its images,
    /// `[16][inputs][ldk]` (empty where the kernel gradient is not asked for).
    kernel_grad_partials: Vec<f32>,
    chunks: usize,
    /// 0, 1, …, inputs − 1: the micro-kernel's column offsets into a row of patches.
    channel_offsets: Vec<usize>,
    /// t · inputs / terms (terms: 1 for f32, 2 for bf16 pairs): where tile t's row starts in
    /// a block's transformed-patch matrix.
    tile_offsets: Vec<usize>,
    /// t · inputs: where a pair of tiles' rows start in the kernel gradient's paired patches,
    /// or a tile's in fp32.
    kernel_grad_offsets: Vec<usize>,
}

impl Winograd {
    /// Whether F(2×2, 3×3) covers the convolution `g`: 3×3, even image sizes, channels in
    /// 16s (the transforms take a vector of them at a time; a thin first layer gains nothing
    /// anyway).
    pub fn applies(g: ConvGeometry) -> bool {
        g.k == 3 && g.h.is_multiple_of(2) && g.w.is_multiple_of(2) && g.c.is_multiple_of(LANES)
    }

    /// F(2×2, 3×3) over `geometry` for kernels `ldk` columns wide, sized for `capacity`
    /// images, on `isa`; `kernel_grads` also plans the scratch of [`Winograd::kernel_grad`].
    pub fn new(
        isa: Isa,
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
        let block = (fitting / BLOCK_TILES * BLOCK_TILES)
            .max(BLOCK_TILES)
            .min(tiles);
        let scratch_len = 16 * block * (inputs + ldk);
        let bf16 = isa.precision() == Precision::Bf16;
        let terms = if bf16 { 2 } else { 1 };
        // In fp32 the paired buffers go unused: one pair per chunk keeps the chunking uniform.
        let paired = |len: usize| vec![Bf16Pair::default(); if bf16 { len } else { chunks }];
        Winograd {
            isa,
            geometry,
            ldk,
            kernels: vec![0.0; 16 * inputs * ldk],
            paired_kernels: paired(16 * inputs / 2 * ldk),
            block,
            scratch: vec![0.0; chunks * scratch_len],
            // Pairs of tiles round up: a block of b tiles makes ⌈b/2⌉ rows of pairs.
            paired_scratch: paired(chunks * 16 * (block + 1) * (inputs + ldk) / 2),
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
            tile_offsets: (0..block).map(|t| t * inputs / terms).collect(),
            kernel_grad_offsets: (0..block).map(|t| t * inputs).collect(),
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
        let (ldk, image_len, isa) = (self.ldk, self.geometry.image_len(), self.isa);
        let pixels = h * w;
        assert!(outputs <= ldk && kernel.len() >= 9 * c * ldk);
        assert!(images.len() >= n * image_len && y.len() >= n * pixels * outputs);
        transform_kernels(kernel, c, ldk, &mut self.kernels);
        if isa.precision() == Precision::Bf16 {
            Bf16Pair::across(&self.kernels, [16, c, ldk], &mut self.paired_kernels);
        }
        let per_chunk = n.div_ceil(self.chunks);
        let scratch_len = self.scratch.len() / self.chunks;
        let paired_len = self.paired_scratch.len() / self.chunks;
        let shared = Shared {
            precision: isa.precision(),
            geometry: self.geometry,
            ldk,
            block: self.block,
            channel_offsets: &self.channel_offsets,
            tile_offsets: &self.tile_offsets,
        };
        let (kernels, paired_kernels) = (&self.kernels[..], &self.paired_kernels[..]);
        y[..n * pixels * outputs]
            .par_chunks_mut(per_chunk * pixels * outputs)
            .zip(images[..n * image_len].par_chunks(per_chunk * image_len))
            .zip(self.scratch.par_chunks_mut(scratch_len))
            .zip(self.paired_scratch.par_chunks_mut(paired_len))
            .for_each(|(((y, images), scratch), paired_scratch)| {
                let kernel = ForwardChunk {
                    shared: &shared,
                    images,
                    kernels,
                    paired_kernels,
                    epilogue,
                    y,
                    outputs,
                    scratch,
                    paired_scratch,
                };
                // SAFETY: the CPU runs `isa` (Isa::new checked); the sizes are asserted above
                // and planned in `new`.
                unsafe { dispatch(isa, kernel) }
            });
    }

    /// The kernel gradient `[9 · inputs × ldk]` in (tap, channel) row order, from the images
    /// of the forward pass and the output gradient `dy` (`ldk` columns).
    /// Each chunk of images sums its own `dU`; the chunks are then added in order, so the
    /// result depends on `n` but not on the thread count.
    pub fn kernel_grad(&mut self, images: &[f32], dy: &[f32], kernel_grad: &mut [f32], n: usize) {
        let ConvGeometry { h, w, c, .. } = self.geometry;
        let (ldk, image_len, isa) = (self.ldk, self.geometry.image_len(), self.isa);
        let (pixels, partial_len) = (h * w, 16 * c * ldk);
        assert!(
            self.kernel_grad_partials.len() >= partial_len,
            "planned without kernel grads"
        );
        assert!(images.len() >= n * image_len && dy.len() >= n * pixels * ldk);
        assert!(kernel_grad.len() >= 9 * c * ldk);
        let per_chunk = n.div_ceil(self.chunks);
        let used = n.div_ceil(per_chunk);
        let scratch_len = self.scratch.len() / self.chunks;
        let paired_len = self.paired_scratch.len() / self.chunks;
        let shared = Shared {
            precision: isa.precision(),
            geometry: self.geometry,
            ldk,
            block: self.block,
            channel_offsets: &self.channel_offsets,
            tile_offsets: &self.kernel_grad_offsets,
        };
        let partials = &mut self.kernel_grad_partials[..used * partial_len];
        partials
            .par_chunks_mut(partial_len)
            .zip(dy[..n * pixels * ldk].par_chunks(per_chunk * pixels * ldk))
            .zip(images[..n * image_len].par_chunks(per_chunk * image_len))
            .zip(self.scratch.par_chunks_mut(scratch_len))
            .zip(self.paired_scratch.par_chunks_mut(paired_len))
            .for_each(|((((partial, dy), images), scratch), paired_scratch)| {
                let kernel = KernelGradChunk {
                    shared: &shared,
                    images,
                    dy,
                    partial,
                    scratch,
                    paired_scratch,
                };
                // SAFETY: as in `convolve`.
                unsafe { dispatch(isa, kernel) }
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

/// What the chunks of one call share.
struct Shared<'a> {
    precision: Precision,
    geometry: ConvGeometry,
    ldk: usize,
    block: usize,
    channel_offsets: &'a [usize],
    tile_offsets: &'a [usize],
}

/// The forward convolution of one chunk of images, a block of tiles at a time.
struct ForwardChunk<'a> {
    shared: &'a Shared<'a>,
    images: &'a [f32],
    kernels: &'a [f32],
    paired_kernels: &'a [Bf16Pair],
    epilogue: Epilogue<'a>,
    y: &'a mut [f32],
    outputs: usize,
    scratch: &'a mut [f32],
    paired_scratch: &'a mut [Bf16Pair],
}

impl Kernel for ForwardChunk<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        match self.shared.precision {
            Precision::Fp32 => self.run_with::<S, f32>(),
            Precision::Bf16 => self.run_with::<S, Bf16Pair>(),
        }
    }
}

/// The kernels as `T`: the f32 ones, or their pairs.
trait KernelsAs: Factor {
    fn kernels<'a>(f32s: &'a [f32], pairs: &'a [Bf16Pair]) -> &'a [Self];
    fn scratch(pairs: &mut [Bf16Pair]) -> &mut [Self];
}

impl KernelsAs for f32 {
    #[inline(always)]
    fn kernels<'a>(f32s: &'a [f32], _: &'a [Bf16Pair]) -> &'a [f32] {
        f32s
    }
    #[inline(always)]
    fn scratch(_: &mut [Bf16Pair]) -> &mut [f32] {
        &mut []
    }
}

impl KernelsAs for Bf16Pair {
    #[inline(always)]
    fn kernels<'a>(_: &'a [f32], pairs: &'a [Bf16Pair]) -> &'a [Bf16Pair] {
        pairs
    }
    #[inline(always)]
    fn scratch(pairs: &mut [Bf16Pair]) -> &mut [Bf16Pair] {
        pairs
    }
}

impl ForwardChunk<'_> {
    #[inline(always)]
    unsafe fn run_with<S: Simd, T: KernelsAs>(self) {
        let Shared {
            precision: _,
            geometry,
            ldk,
            block,
            channel_offsets,
            tile_offsets,
        } = *self.shared;
        let ConvGeometry { h, w, c, .. } = geometry;
        let (tiles, pixels, image_len) = ((h / 2) * (w / 2), h * w, geometry.image_len());
        let outputs = self.outputs;
        let kernels = T::kernels(self.kernels, self.paired_kernels);
        let paired_scratch = T::scratch(self.paired_scratch);
        let (patches, sums) = self.scratch.split_at_mut(16 * block * c);
        for (y, image) in self
            .y
            .chunks_exact_mut(pixels * outputs)
            .zip(self.images.chunks_exact(image_len))
        {
            for t0 in (0..tiles).step_by(block) {
                let tiles = t0..(t0 + block).min(tiles);
                let nb = tiles.len();
                transform_patches::<S>(image, h, w, c, tiles.clone(), patches);
                let v = T::along(&patches[..16 * nb * c], paired_scratch);
                let lens = [nb * c / T::TERMS, c / T::TERMS * ldk, nb * ldk];
                let a = (v, &tile_offsets[..nb], &channel_offsets[..c / T::TERMS]);
                products::<S, T>(a, kernels, sums, lens, ldk, false);
                transform_products::<S>(sums, h, w, ldk, tiles, self.epilogue, y, outputs);
            }
        }
    }
}

/// The kernel gradient's `dU` of one chunk of images, a block of tiles at a time.
struct KernelGradChunk<'a> {
    shared: &'a Shared<'a>,
    images: &'a [f32],
    dy: &'a [f32],
    partial: &'a mut [f32],
    scratch: &'a mut [f32],
    paired_scratch: &'a mut [Bf16Pair],
}

impl Kernel for KernelGradChunk<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        match self.shared.precision {
            Precision::Fp32 => self.run_with::<S, f32>(),
            Precision::Bf16 => self.run_with::<S, Bf16Pair>(),
        }
    }
}

impl KernelGradChunk<'_> {
    #[inline(always)]
    unsafe fn run_with<S: Simd, T: KernelsAs>(self) {
        let Shared {
            precision: _,
            geometry,
            ldk,
            block,
            channel_offsets,
            tile_offsets,
        } = *self.shared;
        let ConvGeometry { h, w, c, .. } = geometry;
        let (tiles, pixels, image_len) = ((h / 2) * (w / 2), h * w, geometry.image_len());
        self.partial.fill(0.0);
        let (patches, grads) = self.scratch.split_at_mut(16 * block * c);
        let paired = T::scratch(self.paired_scratch);
        let (paired_patches, paired_grads) = paired.split_at_mut(paired.len() * c / (c + ldk));
        for (dy, image) in self
            .dy
            .chunks_exact(pixels * ldk)
            .zip(self.images.chunks_exact(image_len))
        {
            for t0 in (0..tiles).step_by(block) {
                let tiles = t0..(t0 + block).min(tiles);
                let nb = tiles.len();
                transform_patches::<S>(image, h, w, c, tiles.clone(), patches);
                transform_output_grad::<S>(dy, h, w, ldk, tiles.clone(), grads);
                // dU = Σ_t V[t]ᵀ · dM[t]: the sum runs over tiles, so tiles pair up.
                let v = T::across(&patches[..16 * nb * c], [16, nb, c], paired_patches);
                let dm = T::across(&grads[..16 * nb * ldk], [16, nb, ldk], paired_grads);
                let rows = nb.div_ceil(T::TERMS);
                let lens = [rows * c, rows * ldk, c * ldk];
                let a = (v, &channel_offsets[..c], &tile_offsets[..rows]);
                products::<S, T>(a, dm, self.partial, lens, ldk, true);
            }
        }
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

/// Column `j` of four rows.
#[inline(always)]
fn column<V: Copy, const N: usize>(rows: &[[V; N]; 4], j: usize) -> [V; 4] {
    [rows[0][j], rows[1][j], rows[2][j], rows[3][j]]
}

/// Bᵀ applied to four vectors: Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]].
#[inline(always)]
unsafe fn bt<S: Simd>(d: [S::V; 4]) -> [S::V; 4] {
    [
        S::sub(d[0], d[2]),
        S::add(d[1], d[2]),
        S::sub(d[2], d[1]),
        S::sub(d[1], d[3]),
    ]
}

/// Aᵀ applied to four vectors: Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]].
#[inline(always)]
unsafe fn at<S: Simd>(m: [S::V; 4]) -> [S::V; 2] {
    [
        S::add(S::add(m[0], m[1]), m[2]),
        S::sub(S::sub(m[1], m[2]), m[3]),
    ]
}

/// A applied to two vectors: A = [[1, 0], [1, 1], [1, −1], [0, −1]].
#[inline(always)]
unsafe fn a<S: Simd>(y: [S::V; 2]) -> [S::V; 4] {
    [
        y[0],
        S::add(y[0], y[1]),
        S::sub(y[0], y[1]),
        S::sub(S::zero(), y[1]),
    ]
}

/// `V[ξν][t][c] = (Bᵀ d B)[ξ][ν]` for the 4×4 patches d (stride 2) of one image, zero
/// outside it, that belong to `tiles`, numbered from the range's start.
///
/// # Safety
/// The CPU runs `S`; `image` holds h · w · c values, `out` 16 · tiles.len() · c, c is a
/// multiple of 16 and the tiles lie within the image's (h/2)(w/2).
#[inline(always)]
unsafe fn transform_patches<S: Simd>(
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
            // No closures over S's operations here: a closure is compiled without the
            // instruction set of the function it sits in, so they would not inline.
            let mut rows = [[S::zero(); 4]; 4];
            for (y, row) in rows.iter_mut().enumerate() {
                let mut d = [S::zero(); 4];
                for (x, d) in d.iter_mut().enumerate() {
                    if row_inside[y] && column_inside[x] {
                        *d = S::load(image.add(((y0 + y - 1) * w + x0 + x - 1) * c + c0));
                    }
                }
                *row = bt::<S>(d);
            }
            for nu in 0..4 {
                let column = bt::<S>(column(&rows, nu));
                for (xi, v) in column.into_iter().enumerate() {
                    S::store(out.add((xi * 4 + nu) * nb * c + c0), v);
                }
            }
        }
    }
}

/// `dM[ξν][t][f] = (A dY Aᵀ)[ξ][ν]` for the 2×2 blocks dY of one image's output gradient
/// `[h·w][ldk]` that belong to `tiles`: the adjoint of [`transform_products`].
///
/// # Safety
/// The CPU runs `S`; `dy` holds h · w · ldk values, `out` 16 · tiles.len() · ldk, ldk is a
/// multiple of 16 and the tiles lie within the image's (h/2)(w/2).
#[inline(always)]
unsafe fn transform_output_grad<S: Simd>(
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
            let at_pixel = |y: usize, x: usize| dy.add(((ty + y) * w + tx + x) * ldk + f0);
            let mut columns = [[S::zero(); 4]; 2];
            for (x, column) in columns.iter_mut().enumerate() {
                *column = a::<S>([S::load(at_pixel(0, x)), S::load(at_pixel(1, x))]);
            }
            for (xi, (&left, &right)) in columns[0].iter().zip(&columns[1]).enumerate() {
                let row = a::<S>([left, right]);
                for (nu, v) in row.into_iter().enumerate() {
                    S::store(out.add((xi * 4 + nu) * nb * ldk + f0), v);
                }
            }
        }
    }
}

/// `y = epilogue(Aᵀ M A)` for the tiles of `tiles`, from their products `[ξν][t][ldk]`, for the
/// first `outputs` of the products' `ldk` columns.
///
/// # Safety
/// The CPU runs `S`; `products` holds 16 · tiles.len() · ldk values, `y` h · w · outputs, ldk
/// is a multiple of 16, `outputs ≤ ldk` and the tiles lie within the image's (h/2)(w/2).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_products<S: Simd>(
    products: &[f32],
    h: usize,
    w: usize,
    ldk: usize,
    tiles: Range<usize>,
    epilogue: Epilogue,
    y: &mut [f32],
    outputs: usize,
) {
    let tiles_w = w / 2;
    debug_assert!(products.len() >= 16 * tiles.len() * ldk && y.len() >= h * w * outputs);
    debug_assert!(tiles.end <= (h / 2) * tiles_w);
    let nb = tiles.len();
    for (i, t) in tiles.enumerate() {
        let (ty, tx) = (2 * (t / tiles_w), 2 * (t % tiles_w));
        let products = products.as_ptr().add(i * ldk);
        for f0 in (0..outputs).step_by(LANES) {
            let mut rows = [[S::zero(); 2]; 4];
            for (xi, row) in rows.iter_mut().enumerate() {
                let m = products.add(xi * 4 * nb * ldk + f0);
                let step = nb * ldk;
                *row = at::<S>([
                    S::load(m),
                    S::load(m.add(step)),
                    S::load(m.add(2 * step)),
                    S::load(m.add(3 * step)),
                ]);
            }
            let width = LANES.min(outputs - f0);
            let epilogue = epilogue.lanes::<S>(f0, width);
            for a in 0..2 {
                let column = at::<S>(column(&rows, a));
                for (dy, v) in column.into_iter().enumerate() {
                    let out = &mut y[((ty + dy) * w + tx + a) * outputs + f0..][..width];
                    store_lanes::<S>(out, epilogue.apply(v));
                }
            }
        }
    }
}

/// The 16 products of one block, position k's `out[k][r][..ldk] (+)= Σ_j a[k][rows[r] +
/// cols[j]] · b[k][j][..ldk]`, on the micro-kernel; `lens` are the sizes of a[k], b[k] and
/// out[k]. The forward pass takes tiles as rows and channels as columns (`M = V · U`), the
/// kernel gradient channels as rows and tiles as columns, accumulating (`dU += Vᵀ · dM`).
///
/// # Safety
/// The CPU runs `S`; every `a[k][rows[r] + cols[j]]` lies within a[k], and b[k] holds
/// `cols.len()` rows of ldk.
#[inline(always)]
unsafe fn products<S: Simd, T: Factor>(
    (a, rows, cols): (&[T], &[usize], &[usize]),
    b: &[T],
    out: &mut [f32],
    [a_len, b_len, out_len]: [usize; 3],
    ldk: usize,
    accumulate: bool,
) {
    assert!(out.len() >= 16 * out_len && out_len >= rows.len() * ldk);
    for k in 0..16 {
        let a = &a[k * a_len..][..a_len];
        let b = &b[k * b_len..][..b_len];
        let out = &mut out[k * out_len..][..out_len];
        for f0 in (0..ldk).step_by(COLS) {
            for r0 in (0..rows.len()).step_by(S::ROWS) {
                // The tile writes its rows straight into `out` (asserted large enough).
                let tile_out = TileOut {
                    ptr: out[r0 * ldk + f0..].as_mut_ptr(),
                    ld: ldk,
                    rows: S::ROWS.min(rows.len() - r0),
                    accumulate,
                };
                tile::<S, T>(
                    a.as_ptr(),
                    (rows, r0),
                    cols,
                    (b.as_ptr().add(f0), ldk),
                    tile_out,
                );
            }
        }
    }
}
