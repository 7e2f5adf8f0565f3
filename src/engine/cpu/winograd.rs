//! Winograd's minimal filtering for "same" 3×3 convolutions of NHWC images: each M×M block
//! of outputs from its (M + 2)×(M + 2) input patch, F(2×2, 3×3) with 16 products per channel
//! pair instead of 36, F(4×4, 3×3) with 36 instead of 144. The patch transform reads the zero
//! border itself, so the images need no padded copy.
//!
//! `Y = Aᵀ [Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)] A`: the kernels are transformed once per call; an image's
//! patches are transformed a block of tiles at a time into P² matrices `[tiles × C]`
//! (P = M + 2), and the P² products `[tiles × C]·[C × F]` run on the direct convolution's
//! micro-kernel. The block is sized so that its transformed patches and products stay in the
//! core's L2 cache. The result equals the direct convolution's up to f32 rounding (layer tests
//! compare them); F(4×4)'s larger coefficients round more, so it serves fp32 only.
//!
//! The kernel gradient runs the same algebra backwards: with `dM = A dY Aᵀ` for each M×M
//! block of the output gradient, `dU[ξν] = Σ_tiles V[ξν]ᵀ · dM[ξν]` (P² products reducing over
//! tiles) and `dg = Gᵀ dU G`.
//!
//! Both sizes are one source: the transforms apply the constant matrices of [`Transforms`],
//! and the compiler, seeing the constants, keeps only the additions they need.

use super::im2col::ConvGeometry;
use super::simd::{dispatch, Isa, Kernel, Simd, LANES};
use super::tile::{store_lanes, tile, Bf16Pair, Epilogue, Factor, TileOut, COLS};
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

/// Tiles per block come in multiples of this: every path's tile height (4, 6, 16) divides it.
const BLOCK_TILES: usize = 48;

/// The matrices of F(M×M, 3×3), patches P × P (P = M + 2).
pub trait Transforms<const M: usize, const P: usize> {
    /// Bᵀ: the patch transform `V = Bᵀ d B`.
    const BT: [[f32; P]; P];
    /// G: the kernel transform `U = G g Gᵀ`.
    const G: [[f32; 3]; P];
    /// Aᵀ: the output transform `Y = Aᵀ M A`.
    const AT: [[f32; P]; M];

    /// `Bᵀ·v`: the matrix applied as it stands, unless a size factors it.
    ///
    /// # Safety
    /// The CPU runs `S`.
    #[inline(always)]
    unsafe fn bt<S: Simd>(v: &[S::V; P]) -> [S::V; P] {
        apply::<S, P, P>(&Self::BT, v)
    }

    /// `Aᵀ·v`, as [`Transforms::bt`].
    ///
    /// # Safety
    /// The CPU runs `S`.
    #[inline(always)]
    unsafe fn at<S: Simd>(v: &[S::V; P]) -> [S::V; M] {
        apply::<S, M, P>(&Self::AT, v)
    }
}

/// F(2×2, 3×3).
pub struct F2;

impl Transforms<2, 4> for F2 {
    const BT: [[f32; 4]; 4] = [
        [1.0, 0.0, -1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [0.0, -1.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, -1.0],
    ];
    const G: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f32; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
}

/// F(4×4, 3×3), Lavin and Gray's matrices (interpolation points 0, ±1, ±2, ∞).
pub struct F4;

impl Transforms<4, 6> for F4 {
    const BT: [[f32; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f32; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f32; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];

    /// Bᵀ's rows share sums (x1 ± x2, x3 ± x4, x1 − x3, x4 − x2): 14 operations instead of
    /// the 22 of the matrix as it stands. The two transforms are most of F(4×4)'s work besides
    /// the products.
    #[inline(always)]
    unsafe fn bt<S: Simd>(x: &[S::V; 6]) -> [S::V; 6] {
        let (sum12, sum34) = (S::add(x[1], x[2]), S::add(x[3], x[4]));
        let (diff12, diff43) = (S::sub(x[1], x[2]), S::sub(x[4], x[3]));
        let (diff13, diff42) = (S::sub(x[1], x[3]), S::sub(x[4], x[2]));
        [
            scaled::<S>(4.0, x[0], scaled::<S>(-5.0, x[2], x[4])),
            scaled::<S>(-4.0, sum12, sum34),
            scaled::<S>(4.0, diff12, diff43),
            scaled::<S>(-2.0, diff13, diff42),
            scaled::<S>(2.0, diff13, diff42),
            scaled::<S>(4.0, x[1], scaled::<S>(-5.0, x[3], x[5])),
        ]
    }

    /// Aᵀ's rows share x1 ± x2 and x3 ± x4: 10 operations instead of 14.
    #[inline(always)]
    unsafe fn at<S: Simd>(x: &[S::V; 6]) -> [S::V; 4] {
        let (sum12, sum34) = (S::add(x[1], x[2]), S::add(x[3], x[4]));
        let (diff12, diff34) = (S::sub(x[1], x[2]), S::sub(x[3], x[4]));
        [
            S::add(S::add(x[0], sum12), sum34),
            scaled::<S>(2.0, diff34, diff12),
            scaled::<S>(4.0, sum34, sum12),
            S::add(scaled::<S>(8.0, diff34, diff12), x[5]),
        ]
    }
}

/// Which F(M×M, 3×3) a layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileSize {
    F2,
    F4,
}

impl TileSize {
    /// M: outputs per tile side.
    pub fn outputs(self) -> usize {
        match self {
            TileSize::F2 => 2,
            TileSize::F4 => 4,
        }
    }

    /// P²: transformed positions, and products, per tile.
    fn positions(self) -> usize {
        (self.outputs() + 2).pow(2)
    }

    /// The size a layer of `g` in `precision` runs, if Winograd applies at all (3×3, image
    /// sides a multiple of M, channels in 16s: the transforms take a vector of them at a
    /// time, and a thin first layer gains nothing anyway). F(4×4) where it fits, in fp32: its
    /// products are 36 per 16 outputs against F(2×2)'s 64; bf16 keeps F(2×2), whose transforms
    /// lose no precision to bf16's 8 bits.
    pub fn for_layer(g: ConvGeometry, precision: Precision) -> Option<TileSize> {
        let fits = |m: usize| g.k == 3 && g.h.is_multiple_of(m) && g.w.is_multiple_of(m);
        if !g.c.is_multiple_of(LANES) {
            return None;
        }
        match precision {
            Precision::Fp32 if fits(4) => Some(TileSize::F4),
            _ if fits(2) => Some(TileSize::F2),
            _ => None,
        }
    }
}

pub struct Winograd {
    tiling: Tiling,
    /// `G g Gᵀ` for the P² positions: `[P²][inputs][ldk]`, and in bf16 its rows paired
    /// (`[P²][inputs / 2][ldk]`; unused in fp32).
    kernels: Vec<f32>,
    paired_kernels: Vec<Bf16Pair>,
    /// Per chunk of images: one block's transformed patches `[P²][block][inputs]` and products
    /// (or, for the kernel gradient, transformed output gradients) `[P²][block][ldk]`.
    scratch: Vec<f32>,
    /// Per chunk of images, in bf16: the same as pairs (unused in fp32).
    paired_scratch: Vec<Bf16Pair>,
    /// Per chunk of images, for the kernel gradient: `dU` summed over its images,
    /// `[P²][inputs][ldk]` (empty where the kernel gradient is not asked for).
    kernel_grad_partials: Vec<f32>,
}

/// How a Winograd tiles its images, fixed when it is built, and what its chunks of images read.
struct Tiling {
    isa: Isa,
    size: TileSize,
    /// The images convolved: output size h × w, `c` input channels, k = 3.
    geometry: ConvGeometry,
    /// Columns of the kernel matrix and of the transformed kernels (a multiple of COLS).
    ldk: usize,
    /// Tiles per block: a multiple of BLOCK_TILES (at least one), or all of an image's where
    /// fewer.
    block: usize,
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
    /// F(M×M, 3×3) of `size` over `geometry` for kernels `ldk` columns wide, sized for
    /// `capacity` images, on `isa`; `kernel_grads` also sizes the scratch of
    /// [`Winograd::kernel_grad`].
    pub fn new(
        isa: Isa,
        size: TileSize,
        geometry: ConvGeometry,
        ldk: usize,
        capacity: usize,
        kernel_grads: bool,
    ) -> Winograd {
        let ConvGeometry {
            h, w, c: inputs, ..
        } = geometry;
        let (m, positions) = (size.outputs(), size.positions());
        assert!(geometry.k == 3 && h.is_multiple_of(m) && w.is_multiple_of(m));
        assert!(inputs.is_multiple_of(LANES) && ldk.is_multiple_of(COLS));
        let tiles = (h / m) * (w / m);
        let chunks = CHUNKS.min(capacity);
        let fitting = BLOCK_BYTES / (positions * (inputs + ldk) * size_of::<f32>());
        let block = (fitting / BLOCK_TILES * BLOCK_TILES)
            .max(BLOCK_TILES)
            .min(tiles);
        let scratch_len = positions * block * (inputs + ldk);
        let bf16 = isa.precision() == Precision::Bf16;
        let terms = if bf16 { 2 } else { 1 };
        // In fp32 the paired buffers go unused: one pair per chunk keeps the chunking uniform.
        let paired = |len: usize| vec![Bf16Pair::default(); if bf16 { len } else { chunks }];
        Winograd {
            kernels: vec![0.0; positions * inputs * ldk],
            paired_kernels: paired(positions * inputs / 2 * ldk),
            scratch: vec![0.0; chunks * scratch_len],
            // Pairs of tiles round up: a block of b tiles makes ⌈b/2⌉ rows of pairs.
            paired_scratch: paired(chunks * positions * (block + 1) * (inputs + ldk) / 2),
            kernel_grad_partials: vec![
                0.0;
                if kernel_grads {
                    chunks * positions * inputs * ldk
                } else {
                    0
                }
            ],
            tiling: Tiling {
                isa,
                size,
                geometry,
                ldk,
                block,
                chunks,
                channel_offsets: (0..inputs).collect(),
                tile_offsets: (0..block).map(|t| t * inputs / terms).collect(),
                kernel_grad_offsets: (0..block).map(|t| t * inputs).collect(),
            },
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
        let tiling = &self.tiling;
        let ConvGeometry { h, w, c, .. } = tiling.geometry;
        let (ldk, image_len, isa) = (tiling.ldk, tiling.geometry.image_len(), tiling.isa);
        let positions = tiling.size.positions();
        // The pixels stored per image: all of them, or a quarter where the epilogue pools.
        let pixels = if epilogue.pool { h * w / 4 } else { h * w };
        assert!(outputs <= ldk && kernel.len() >= 9 * c * ldk);
        assert!(images.len() >= n * image_len && y.len() >= n * pixels * outputs);
        let transform = KernelTransform {
            size: tiling.size,
            inverse: false,
            from: kernel,
            c,
            ldk,
            to: &mut self.kernels,
        };
        // SAFETY: the CPU runs `isa`; the transform asserts its sizes.
        unsafe { dispatch(isa.fp32(), transform) };
        if isa.precision() == Precision::Bf16 {
            Bf16Pair::across(&self.kernels, [positions, c, ldk], &mut self.paired_kernels);
        }
        let per_chunk = n.div_ceil(tiling.chunks);
        let scratch_len = self.scratch.len() / tiling.chunks;
        let paired_len = self.paired_scratch.len() / tiling.chunks;
        let (kernels, paired_kernels) = (&self.kernels[..], &self.paired_kernels[..]);
        y[..n * pixels * outputs]
            .par_chunks_mut(per_chunk * pixels * outputs)
            .zip(images[..n * image_len].par_chunks(per_chunk * image_len))
            .zip(self.scratch.par_chunks_mut(scratch_len))
            .zip(self.paired_scratch.par_chunks_mut(paired_len))
            .for_each(|(((y, images), scratch), paired_scratch)| {
                let kernel = ForwardChunk {
                    tiling,
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
                // and sized in `new`.
                unsafe { dispatch(isa, kernel) }
            });
    }

    /// The kernel gradient `[9 · inputs × ldk]` in (tap, channel) row order, from the images
    /// of the forward pass and the output gradient `dy` (`ldk` columns).
    /// Each chunk of images sums its own `dU`; the chunks are then added in order, so the
    /// result depends on `n` but not on the thread count.
    pub fn kernel_grad(&mut self, images: &[f32], dy: &[f32], kernel_grad: &mut [f32], n: usize) {
        let tiling = &self.tiling;
        let ConvGeometry { h, w, c, .. } = tiling.geometry;
        let (ldk, image_len, isa) = (tiling.ldk, tiling.geometry.image_len(), tiling.isa);
        let (pixels, partial_len) = (h * w, tiling.size.positions() * c * ldk);
        assert!(
            self.kernel_grad_partials.len() >= partial_len,
            "built without kernel grads"
        );
        assert!(images.len() >= n * image_len && dy.len() >= n * pixels * ldk);
        assert!(kernel_grad.len() >= 9 * c * ldk);
        let per_chunk = n.div_ceil(tiling.chunks);
        let used = n.div_ceil(per_chunk);
        let scratch_len = self.scratch.len() / tiling.chunks;
        let paired_len = self.paired_scratch.len() / tiling.chunks;
        let partials = &mut self.kernel_grad_partials[..used * partial_len];
        partials
            .par_chunks_mut(partial_len)
            .zip(dy[..n * pixels * ldk].par_chunks(per_chunk * pixels * ldk))
            .zip(images[..n * image_len].par_chunks(per_chunk * image_len))
            .zip(self.scratch.par_chunks_mut(scratch_len))
            .zip(self.paired_scratch.par_chunks_mut(paired_len))
            .for_each(|((((partial, dy), images), scratch), paired_scratch)| {
                let kernel = KernelGradChunk {
                    tiling,
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
        let untransform = KernelTransform {
            size: tiling.size,
            inverse: true,
            from: sum,
            c,
            ldk,
            to: kernel_grad,
        };
        // SAFETY: as above.
        unsafe { dispatch(isa.fp32(), untransform) };
    }
}

/// Runs `$chunk.run_with::<S, T, W, M, P>()` for the chunk's precision (T) and tile size.
macro_rules! run_for_size_and_precision {
    ($chunk:expr, $s:ty) => {
        match ($chunk.tiling.isa.precision(), $chunk.tiling.size) {
            (Precision::Fp32, TileSize::F2) => $chunk.run_with::<$s, f32, F2, 2, 4>(),
            (Precision::Fp32, TileSize::F4) => $chunk.run_with::<$s, f32, F4, 4, 6>(),
            (Precision::Bf16, TileSize::F2) => $chunk.run_with::<$s, Bf16Pair, F2, 2, 4>(),
            (Precision::Bf16, TileSize::F4) => $chunk.run_with::<$s, Bf16Pair, F4, 4, 6>(),
            (Precision::Tf32, _) => unreachable!("an Isa is never tf32 (Isa::new)"),
        }
    };
}

/// The forward convolution of one chunk of images, a block of tiles at a time.
struct ForwardChunk<'a> {
    tiling: &'a Tiling,
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
        run_for_size_and_precision!(self, S)
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
    unsafe fn run_with<S, T, W, const M: usize, const P: usize>(self)
    where
        S: Simd,
        T: KernelsAs,
        W: Transforms<M, P>,
    {
        let Tiling {
            geometry,
            ldk,
            block,
            ref channel_offsets,
            ref tile_offsets,
            ..
        } = *self.tiling;
        let ConvGeometry { h, w, c, .. } = geometry;
        let (tiles, image_len) = ((h / M) * (w / M), geometry.image_len());
        let pixels = if self.epilogue.pool { h * w / 4 } else { h * w };
        let (outputs, positions) = (self.outputs, P * P);
        let kernels = T::kernels(self.kernels, self.paired_kernels);
        let paired_scratch = T::scratch(self.paired_scratch);
        let (patches, sums) = self.scratch.split_at_mut(positions * block * c);
        // Blocks run over the chunk's tiles, image after image, so a block of small images'
        // tiles is as large as one of a large image's.
        let all_tiles = self.images.len() / image_len * tiles;
        assert!(self.y.len() >= all_tiles / tiles * pixels * outputs);
        for t0 in (0..all_tiles).step_by(block) {
            let tiles = t0..(t0 + block).min(all_tiles);
            let nb = tiles.len();
            transform_patches::<S, W, M, P>(self.images, h, w, c, tiles.clone(), patches);
            let v = T::along(&patches[..positions * nb * c], paired_scratch);
            let lens = [nb * c / T::TERMS, c / T::TERMS * ldk, nb * ldk];
            let a = (v, &tile_offsets[..nb], &channel_offsets[..c / T::TERMS]);
            products::<S, T>(positions, a, kernels, sums, lens, ldk, false);
            let (epilogue, y) = (self.epilogue, &mut *self.y);
            transform_products::<S, W, M, P>(sums, h, w, ldk, tiles, epilogue, y, outputs);
        }
    }
}

/// The kernel gradient's `dU` of one chunk of images, a block of tiles at a time.
struct KernelGradChunk<'a> {
    tiling: &'a Tiling,
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
        run_for_size_and_precision!(self, S)
    }
}

impl KernelGradChunk<'_> {
    #[inline(always)]
    unsafe fn run_with<S, T, W, const M: usize, const P: usize>(self)
    where
        S: Simd,
        T: KernelsAs,
        W: Transforms<M, P>,
    {
        let Tiling {
            geometry,
            ldk,
            block,
            ref channel_offsets,
            kernel_grad_offsets: ref tile_offsets,
            ..
        } = *self.tiling;
        let ConvGeometry { h, w, c, .. } = geometry;
        let (tiles, pixels, image_len) = ((h / M) * (w / M), h * w, geometry.image_len());
        let positions = P * P;
        self.partial.fill(0.0);
        let (patches, grads) = self.scratch.split_at_mut(positions * block * c);
        let paired = T::scratch(self.paired_scratch);
        let (paired_patches, paired_grads) = paired.split_at_mut(paired.len() * c / (c + ldk));
        let all_tiles = self.images.len() / image_len * tiles;
        assert!(self.dy.len() >= all_tiles / tiles * pixels * ldk);
        for t0 in (0..all_tiles).step_by(block) {
            let tiles = t0..(t0 + block).min(all_tiles);
            let nb = tiles.len();
            transform_patches::<S, W, M, P>(self.images, h, w, c, tiles.clone(), patches);
            transform_output_grad::<S, W, M, P>(self.dy, h, w, ldk, tiles.clone(), grads);
            // dU = Σ_t V[t]ᵀ · dM[t]: the sum runs over tiles, so tiles pair up.
            let v = T::across(
                &patches[..positions * nb * c],
                [positions, nb, c],
                paired_patches,
            );
            let dm = T::across(
                &grads[..positions * nb * ldk],
                [positions, nb, ldk],
                paired_grads,
            );
            let rows = nb.div_ceil(T::TERMS);
            let lens = [rows * c, rows * ldk, c * ldk];
            let a = (v, &channel_offsets[..c], &tile_offsets[..rows]);
            products::<S, T>(positions, a, dm, self.partial, lens, ldk, true);
        }
    }
}

/// `c·a + b` (a function, not a closure: a closure would not inline S's operations).
#[inline(always)]
unsafe fn scaled<S: Simd>(c: f32, a: S::V, b: S::V) -> S::V {
    S::mul_add(S::splat(c), a, b)
}

/// `m · v` for vectors of lanes.
#[inline(always)]
unsafe fn apply<S: Simd, const R: usize, const C: usize>(
    m: &[[f32; C]; R],
    v: &[S::V; C],
) -> [S::V; R] {
    let mut out = [S::zero(); R];
    for (out, row) in out.iter_mut().zip(m) {
        let mut sum: Option<S::V> = None;
        for (&c, &x) in row.iter().zip(v) {
            // Matches, not closures: a closure would not inline S's operations.
            sum = match sum {
                _ if c == 0.0 => sum,
                None if c == 1.0 => Some(x),
                None => Some(S::mul(S::splat(c), x)),
                Some(s) if c == 1.0 => Some(S::add(s, x)),
                Some(s) if c == -1.0 => Some(S::sub(s, x)),
                Some(s) => Some(S::mul_add(S::splat(c), x, s)),
            };
        }
        *out = sum.unwrap_or(S::zero());
    }
    out
}

/// The transpose of a constant matrix.
const fn transpose<const R: usize, const C: usize>(m: &[[f32; C]; R]) -> [[f32; R]; C] {
    let mut t = [[0.0; R]; C];
    let mut i = 0;
    while i < R {
        let mut j = 0;
        while j < C {
            t[j][i] = m[i][j];
            j += 1;
        }
        i += 1;
    }
    t
}

/// `U[ξν][c][f] = (G g Gᵀ)[ξ][ν]` with `g[ky][kx] = kernel[(3·ky + kx)·C + c][f]`, 16
/// filters at a time.
///
/// # Safety
/// The CPU runs `S`; `kernel` holds 9 · c · ldk values, `out` P² · c · ldk, ldk a multiple
/// of 16.
#[inline(always)]
unsafe fn transform_kernels<S: Simd, W: Transforms<M, P>, const M: usize, const P: usize>(
    kernel: &[f32],
    c: usize,
    ldk: usize,
    out: &mut [f32],
) {
    assert!(kernel.len() >= 9 * c * ldk && out.len() >= P * P * c * ldk);
    let (kernel, out) = (kernel.as_ptr(), out.as_mut_ptr());
    for ci in 0..c {
        for f0 in (0..ldk).step_by(LANES) {
            let g = |tap: usize| kernel.add((tap * c + ci) * ldk + f0);
            // G g: a column of P per kernel column kx, then (G g) Gᵀ row by row.
            let mut columns = [[S::zero(); P]; 3];
            for (kx, column) in columns.iter_mut().enumerate() {
                let taps = [S::load(g(kx)), S::load(g(3 + kx)), S::load(g(6 + kx))];
                *column = apply::<S, P, 3>(&W::G, &taps);
            }
            for xi in 0..P {
                let row = apply::<S, P, 3>(&W::G, &column(&columns, xi));
                for (nu, v) in row.into_iter().enumerate() {
                    S::store(out.add(((xi * P + nu) * c + ci) * ldk + f0), v);
                }
            }
        }
    }
}

/// `dg = Gᵀ dU G` into `[(tap, c)][f]`, from `dU[ξν][c][f]`: the adjoint of
/// [`transform_kernels`].
///
/// # Safety
/// As [`transform_kernels`], `du` and `out` swapping roles.
#[inline(always)]
unsafe fn untransform_kernel_grad<S: Simd, W: Transforms<M, P>, const M: usize, const P: usize>(
    du: &[f32],
    c: usize,
    ldk: usize,
    out: &mut [f32],
) {
    let gt = const { &transpose(&W::G) };
    assert!(du.len() >= P * P * c * ldk && out.len() >= 9 * c * ldk);
    let (du, out) = (du.as_ptr(), out.as_mut_ptr());
    for ci in 0..c {
        for f0 in (0..ldk).step_by(LANES) {
            // Gᵀ dU: 3 values per column ν, then (Gᵀ dU) G row by row.
            let mut columns = [[S::zero(); 3]; P];
            for (nu, column) in columns.iter_mut().enumerate() {
                let mut d = [S::zero(); P];
                for (xi, d) in d.iter_mut().enumerate() {
                    *d = S::load(du.add(((xi * P + nu) * c + ci) * ldk + f0));
                }
                *column = apply::<S, 3, P>(gt, &d);
            }
            for ky in 0..3 {
                let row = apply::<S, 3, P>(gt, &column(&columns, ky));
                for (kx, v) in row.into_iter().enumerate() {
                    S::store(out.add(((3 * ky + kx) * c + ci) * ldk + f0), v);
                }
            }
        }
    }
}

/// The kernel transforms of one call, [`transform_kernels`] or (`inverse`)
/// [`untransform_kernel_grad`], on the Winograd's instruction set.
struct KernelTransform<'a> {
    size: TileSize,
    inverse: bool,
    from: &'a [f32],
    c: usize,
    ldk: usize,
    to: &'a mut [f32],
}

impl Kernel for KernelTransform<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let Self {
            size,
            inverse,
            from,
            c,
            ldk,
            to,
        } = self;
        match (size, inverse) {
            (TileSize::F2, false) => transform_kernels::<S, F2, 2, 4>(from, c, ldk, to),
            (TileSize::F4, false) => transform_kernels::<S, F4, 4, 6>(from, c, ldk, to),
            (TileSize::F2, true) => untransform_kernel_grad::<S, F2, 2, 4>(from, c, ldk, to),
            (TileSize::F4, true) => untransform_kernel_grad::<S, F4, 4, 6>(from, c, ldk, to),
        }
    }
}

/// Column `j` of a matrix of vectors.
#[inline(always)]
fn column<V: Copy, const R: usize, const C: usize>(rows: &[[V; C]; R], j: usize) -> [V; R] {
    let mut out = [rows[0][j]; R];
    for (out, row) in out.iter_mut().zip(rows) {
        *out = row[j];
    }
    out
}

/// `V[ξν][t][c] = (Bᵀ d B)[ξ][ν]` for the P×P patches d (stride M), zero outside their image,
/// of the tiles `tiles` of `images` (numbered image after image), numbered from the range's
/// start.
///
/// # Safety
/// The CPU runs `S`; `out` holds P² · tiles.len() · c values, c is a multiple of 16 and the
/// tiles lie within `images` (whole images of h · w · c).
#[inline(always)]
unsafe fn transform_patches<S: Simd, W: Transforms<M, P>, const M: usize, const P: usize>(
    images: &[f32],
    h: usize,
    w: usize,
    c: usize,
    tiles: Range<usize>,
    out: &mut [f32],
) {
    let (tiles_w, per_image) = (w / M, (h / M) * (w / M));
    debug_assert!(out.len() >= P * P * tiles.len() * c);
    debug_assert!(tiles.end <= images.len() / (h * w * c) * per_image);
    let nb = tiles.len();
    for (i, t) in tiles.enumerate() {
        let (image, t) = (
            images.as_ptr().add(t / per_image * h * w * c),
            t % per_image,
        );
        // The patch covers rows y0 − 1 ..= y0 + M and columns x0 − 1 ..= x0 + M; those
        // outside the image are the zero border.
        let (y0, x0) = (M * (t / tiles_w), M * (t % tiles_w));
        let row_inside: [bool; P] = std::array::from_fn(|y| (1..=h).contains(&(y0 + y)));
        let column_inside: [bool; P] = std::array::from_fn(|x| (1..=w).contains(&(x0 + x)));
        let out = out.as_mut_ptr().add(i * c);
        for c0 in (0..c).step_by(LANES) {
            // No closures over S's operations here: a closure is compiled without the
            // instruction set of the function it sits in, so they would not inline.
            let mut rows = [[S::zero(); P]; P];
            for (y, row) in rows.iter_mut().enumerate() {
                let mut d = [S::zero(); P];
                for (x, d) in d.iter_mut().enumerate() {
                    if row_inside[y] && column_inside[x] {
                        *d = S::load(image.add(((y0 + y - 1) * w + x0 + x - 1) * c + c0));
                    }
                }
                *row = W::bt::<S>(&d);
            }
            for nu in 0..P {
                let column = W::bt::<S>(&column(&rows, nu));
                for (xi, v) in column.into_iter().enumerate() {
                    S::store(out.add((xi * P + nu) * nb * c + c0), v);
                }
            }
        }
    }
}

/// `dM[ξν][t][f] = (A dY Aᵀ)[ξ][ν]` for the M×M blocks dY of the output gradients `[h·w][ldk]`
/// (image after image) that belong to `tiles`: the adjoint of [`transform_products`].
///
/// # Safety
/// The CPU runs `S`; `out` holds P² · tiles.len() · ldk values, ldk is a multiple of 16 and
/// the tiles lie within `dy` (whole images of h · w · ldk).
#[inline(always)]
unsafe fn transform_output_grad<S: Simd, W: Transforms<M, P>, const M: usize, const P: usize>(
    dy: &[f32],
    h: usize,
    w: usize,
    ldk: usize,
    tiles: Range<usize>,
    out: &mut [f32],
) {
    let a = const { &transpose(&W::AT) };
    let (tiles_w, per_image) = (w / M, (h / M) * (w / M));
    debug_assert!(out.len() >= P * P * tiles.len() * ldk);
    debug_assert!(tiles.end <= dy.len() / (h * w * ldk) * per_image);
    let (images, nb) = (dy.as_ptr(), tiles.len());
    for (i, t) in tiles.enumerate() {
        let (dy, t) = (images.add(t / per_image * h * w * ldk), t % per_image);
        let (ty, tx) = (M * (t / tiles_w), M * (t % tiles_w));
        let out = out.as_mut_ptr().add(i * ldk);
        for f0 in (0..ldk).step_by(LANES) {
            // A dY column by column (P values each), then (A dY) Aᵀ row by row.
            let mut columns = [[S::zero(); P]; M];
            for (x, column) in columns.iter_mut().enumerate() {
                let mut d = [S::zero(); M];
                for (y, d) in d.iter_mut().enumerate() {
                    *d = S::load(dy.add(((ty + y) * w + tx + x) * ldk + f0));
                }
                *column = apply::<S, P, M>(a, &d);
            }
            for xi in 0..P {
                let row = apply::<S, P, M>(a, &column(&columns, xi));
                for (nu, v) in row.into_iter().enumerate() {
                    S::store(out.add((xi * P + nu) * nb * ldk + f0), v);
                }
            }
        }
    }
}

/// `y = epilogue(Aᵀ M A)` for the tiles of `tiles` (of the images of `y`, numbered image after
/// image), from their products `[ξν][t][ldk]`, for the first `outputs` of the products' `ldk`
/// columns.
///
/// # Safety
/// The CPU runs `S`; `products` holds P² · tiles.len() · ldk values, ldk is a multiple of 16,
/// `outputs ≤ ldk` and the tiles lie within `y` (whole images of h · w · outputs).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_products<S: Simd, W: Transforms<M, P>, const M: usize, const P: usize>(
    products: &[f32],
    h: usize,
    w: usize,
    ldk: usize,
    tiles: Range<usize>,
    epilogue: Epilogue,
    y: &mut [f32],
    outputs: usize,
) {
    let (tiles_w, per_image) = (w / M, (h / M) * (w / M));
    debug_assert!(products.len() >= P * P * tiles.len() * ldk);
    let nb = tiles.len();
    for (i, t) in tiles.enumerate() {
        let image_out = if epilogue.pool { h * w / 4 } else { h * w } * outputs;
        let (y, t) = (
            &mut y[t / per_image * image_out..][..image_out],
            t % per_image,
        );
        let (ty, tx) = (M * (t / tiles_w), M * (t % tiles_w));
        let products = products.as_ptr().add(i * ldk);
        for f0 in (0..outputs).step_by(LANES) {
            // Aᵀ along ν for each ξ, then along ξ for each output column.
            let mut rows = [[S::zero(); M]; P];
            for (xi, row) in rows.iter_mut().enumerate() {
                let mut m = [S::zero(); P];
                for (nu, m) in m.iter_mut().enumerate() {
                    *m = S::load(products.add((xi * P + nu) * nb * ldk + f0));
                }
                *row = W::at::<S>(&m);
            }
            let width = LANES.min(outputs - f0);
            let lanes = epilogue.lanes::<S>(f0, width);
            // The tile's outputs, column by column: values[a][dy] is pixel (ty + dy, tx + a).
            let mut values = [[S::zero(); M]; M];
            for (a, values) in values.iter_mut().enumerate() {
                for (dy, v) in W::at::<S>(&column(&rows, a)).into_iter().enumerate() {
                    values[dy] = lanes.apply(v);
                }
            }
            if !epilogue.pool {
                for (a, values) in values.iter().enumerate() {
                    for (dy, &v) in values.iter().enumerate() {
                        let out = &mut y[((ty + dy) * w + tx + a) * outputs + f0..][..width];
                        store_lanes::<S>(out, v);
                    }
                }
                continue;
            }
            // 2×2 windows, in MaxPool's order of taps and with its comparison: a later tap
            // wins only where it is greater (S::max(new, best)).
            let pooled_w = w / 2;
            for py in 0..M / 2 {
                for px in 0..M / 2 {
                    let (y0, x0) = (2 * py, 2 * px);
                    let mut best = values[x0][y0];
                    best = S::max(values[x0 + 1][y0], best);
                    best = S::max(values[x0][y0 + 1], best);
                    best = S::max(values[x0 + 1][y0 + 1], best);
                    let pixel = (ty / 2 + py) * pooled_w + tx / 2 + px;
                    store_lanes::<S>(&mut y[pixel * outputs + f0..][..width], best);
                }
            }
        }
    }
}

/// The P² products of one block, position k's `out[k][r][..ldk] (+)= Σ_j a[k][rows[r] +
/// cols[j]] · b[k][j][..ldk]`, on the micro-kernel; `lens` are the sizes of a[k], b[k] and
/// out[k]. The forward pass takes tiles as rows and channels as columns (`M = V · U`), the
/// kernel gradient channels as rows and tiles as columns, accumulating (`dU += Vᵀ · dM`).
///
/// # Safety
/// The CPU runs `S`; every `a[k][rows[r] + cols[j]]` lies within a[k], and b[k] holds
/// `cols.len()` rows of ldk.
#[inline(always)]
unsafe fn products<S: Simd, T: Factor>(
    positions: usize,
    (a, rows, cols): (&[T], &[usize], &[usize]),
    b: &[T],
    out: &mut [f32],
    [a_len, b_len, out_len]: [usize; 3],
    ldk: usize,
    accumulate: bool,
) {
    assert!(out.len() >= positions * out_len && out_len >= rows.len() * ldk);
    for k in 0..positions {
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
