//! "Same" k×k convolutions over NHWC images without materialised im2col patches.
//!
//! The input is copied once into a zero-bordered buffer; then one micro-kernel (`tile.rs`), a
//! tile of `S::ROWS` × 16 of a matrix product whose left operand is gathered through two offset
//! tables, serves all three products of a convolution (written once over [`Simd`]: 6 × 16 on
//! AVX2, 16 × 16 on AVX-512, see `simd.rs`):
//! - forward: `y[p, f] = Σ_(tap, c) x̃[p + tap, c] · W[(tap, c), f]`;
//! - input gradient: the same convolution of the padded output gradient with the kernels
//!   flipped and transposed, `W'[(k²−1−tap, f), c] = W[(tap, c), f]`;
//! - kernel gradient: `dW[(tap, c), f] = Σ_p x̃[p + tap, c] · dy[p, f]`, the long reduction over
//!   pixels, summed over fixed groups of images in order (the same result for any thread count).
//!
//! Measured on MiniVGGNet (`minivgg bench`), this is faster than im2col plus `gemm`: the
//! patches (9× the input) are never written or read back, and the tile keeps its
//! accumulators in registers over the whole reduction. Where Winograd applies (3×3 kernels,
//! image sides in 2s or 4s, channels in 16s), all three products use it instead, on the same
//! micro-kernel and without the zero-bordered copies (see `winograd.rs`).

use super::super::precision::Precision;
use super::im2col::ConvGeometry;
use super::simd::{dispatch, Isa, Kernel, Simd, MAX_ROWS};
use super::tile::{store_lanes, tile, Epilogue, ReluAffine, TileOut, COLS};
use super::winograd::{TileSize, Winograd};
use rayon::prelude::*;
use std::ops::Range;

/// Images per partial kernel gradient: a fixed split, so the sum's order never changes.
const IMAGES_PER_GROUP: usize = 8;
/// Pixels per pass of the kernel-gradient tiles, so their rows stay in the L1/L2 caches.
const PIXELS_PER_BLOCK: usize = 128;

/// Offsets into one zero-bordered image of `c` channels: where each pixel's window starts,
/// and where each (tap, channel) of the window sits relative to that start.
#[derive(Debug, Clone)]
struct Offsets {
    padded_len: usize,
    pixels: Vec<usize>,
    taps: Vec<usize>,
}

impl Offsets {
    fn new(g: ConvGeometry) -> Offsets {
        let wp = g.padded_width();
        let pixels = (0..g.h * g.w)
            .map(|p| ((p / g.w) * wp + p % g.w) * g.c)
            .collect();
        let taps = (0..g.k * g.k * g.c)
            .map(|j| {
                let (tap, c) = (j / g.c, j % g.c);
                ((tap / g.k) * wp + tap % g.k) * g.c + c
            })
            .collect();
        Offsets {
            padded_len: g.padded_len(),
            pixels,
            taps,
        }
    }
}

/// Copies `n` images into the interiors of their zero-bordered copies (borders stay zero).
fn pad(g: ConvGeometry, images: &[f32], padded: &mut [f32], n: usize) {
    let (wp, pad, c, padded_len) = (g.padded_width(), g.k / 2, g.c, g.padded_len());
    padded[..n * padded_len]
        .par_chunks_mut(padded_len)
        .zip(images.par_chunks(g.image_len()))
        .for_each(|(padded, image)| {
            for (y, row) in image.chunks_exact(g.w * c).enumerate() {
                let start = ((y + pad) * wp + pad) * c;
                padded[start..start + row.len()].copy_from_slice(row);
            }
        });
}

/// One "same" convolution of one zero-bordered image: `y[p, f] = epilogue(Σ_j x̃[p + taps[j]]
/// · kernel[j, f])`, for `outputs` columns of a kernel `ldk` (a multiple of [`COLS`]) wide.
struct ConvolveImage<'a> {
    offsets: &'a Offsets,
    image: &'a [f32],
    kernel: &'a [f32],
    ldk: usize,
    epilogue: Epilogue<'a>,
    y: &'a mut [f32],
    outputs: usize,
}

impl Kernel for ConvolveImage<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let Self {
            offsets: o,
            image,
            kernel,
            ldk,
            epilogue,
            y,
            outputs,
        } = self;
        let pixels = o.pixels.len();
        let mut out = [[0.0; COLS]; MAX_ROWS];
        for f0 in (0..outputs).step_by(COLS) {
            let width = COLS.min(outputs - f0);
            let epilogue = epilogue.lanes::<S>(f0, width);
            for p0 in (0..pixels).step_by(S::ROWS) {
                // SAFETY: the largest offsets index the image's last padded pixel, and the
                // kernel holds taps × ldk values (asserted by the caller), ldk a multiple of
                // COLS.
                let rows = S::ROWS.min(pixels - p0);
                tile::<S, f32>(
                    image.as_ptr(),
                    (&o.pixels, p0),
                    &o.taps,
                    (kernel.as_ptr().add(f0), ldk),
                    TileOut::into_buffer(&mut out, rows),
                );
                for (r, sums) in out.iter().enumerate().take(rows) {
                    let row = &mut y[(p0 + r) * outputs + f0..][..width];
                    store_lanes::<S>(row, epilogue.apply(S::load(sums.as_ptr())));
                }
            }
        }
    }
}

/// [`ConvolveImage`] over `n` zero-bordered images, in parallel.
#[allow(clippy::too_many_arguments)]
fn convolve(
    isa: Isa,
    offsets: &Offsets,
    padded: &[f32],
    kernel: &[f32],
    ldk: usize,
    epilogue: Epilogue,
    y: &mut [f32],
    outputs: usize,
    n: usize,
) {
    let pixels = offsets.pixels.len();
    assert!(ldk.is_multiple_of(COLS) && ldk >= outputs && kernel.len() >= offsets.taps.len() * ldk);
    assert!(padded.len() >= n * offsets.padded_len);
    y[..n * pixels * outputs]
        .par_chunks_mut(pixels * outputs)
        .zip(padded.par_chunks(offsets.padded_len))
        .for_each(|(y, image)| {
            let kernel = ConvolveImage {
                offsets,
                image,
                kernel,
                ldk,
                epilogue,
                y,
                outputs,
            };
            // SAFETY: the CPU runs `isa` (Isa::new checked); the bounds are asserted above.
            unsafe { dispatch(isa, kernel) }
        });
}

/// One group of images' partial kernel gradient, `partial[(tap, c), f] = Σ_images Σ_p
/// x̃[p + tap, c] · dy[p, f]`.
struct KernelGradGroup<'a> {
    offsets: &'a Offsets,
    padded: &'a [f32],
    dy: &'a [f32],
    filters: usize,
    images: Range<usize>,
    partial: &'a mut [f32],
}

impl Kernel for KernelGradGroup<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let Self {
            offsets: o,
            padded,
            dy,
            filters: f,
            images,
            partial,
        } = self;
        let (patch, pixels) = (o.taps.len(), o.pixels.len());
        partial.fill(0.0);
        for image in images {
            let x = &padded[image * o.padded_len..][..o.padded_len];
            let dy = &dy[image * pixels * f..][..pixels * f];
            for p0 in (0..pixels).step_by(PIXELS_PER_BLOCK) {
                let block = &o.pixels[p0..(p0 + PIXELS_PER_BLOCK).min(pixels)];
                for f0 in (0..f).step_by(COLS) {
                    for j0 in (0..patch).step_by(S::ROWS) {
                        // SAFETY: as in ConvolveImage; dy holds `pixels` rows of f values, and
                        // `partial` patch rows of f.
                        let out = TileOut {
                            ptr: partial[j0 * f + f0..].as_mut_ptr(),
                            ld: f,
                            rows: S::ROWS.min(patch - j0),
                            accumulate: true,
                        };
                        let b = (dy.as_ptr().add(p0 * f + f0), f);
                        tile::<S, f32>(x.as_ptr(), (&o.taps, j0), block, b, out);
                    }
                }
            }
        }
    }
}

/// A convolution layer on the tile kernels: direct, or Winograd where it applies; its scratch
/// sized for `capacity` images.
pub struct TiledConv {
    isa: Isa,
    geometry: ConvGeometry,
    filters: usize,
    /// The forward pass's input, zero-bordered: read again for the kernel gradient. (Empty
    /// where Winograd applies: its transforms read the border themselves.)
    padded_input: Vec<f32>,
    input_offsets: Offsets,
    /// The output gradient, zero-bordered (empty where Winograd applies), and the flipped,
    /// transposed kernels, their columns (input channels) padded to a multiple of [`COLS`].
    padded_grad: Vec<f32>,
    grad_offsets: Offsets,
    flipped: Vec<f32>,
    /// Winograd's F(m×m, 3×3), where it applies: `forward_winograd` for the forward pass and the
    /// kernel gradient, `grad_winograd` for the input gradient.
    forward_winograd: Option<Winograd>,
    grad_winograd: Option<Winograd>,
    /// One partial kernel gradient per group of images.
    partials: Vec<f32>,
}

impl TiledConv {
    /// Tile kernels for `filters` (a multiple of [`COLS`]) filters over `g`, on `isa`'s
    /// instructions. Its precision applies to the Winograd products; the other direct
    /// products (a thin first layer, other kernel sizes) stay f32.
    pub fn new(isa: Isa, g: ConvGeometry, filters: usize, capacity: usize) -> TiledConv {
        assert!(
            filters.is_multiple_of(COLS),
            "direct convolution needs filters in 16s"
        );
        let input_offsets = Offsets::new(g);
        let grad_geometry = ConvGeometry { c: filters, ..g };
        let grad_offsets = Offsets::new(grad_geometry);
        let groups = capacity.div_ceil(IMAGES_PER_GROUP);
        let ldc = g.c.next_multiple_of(COLS);
        let winograd = |inputs, ldk, kernel_grads| {
            let g = ConvGeometry { c: inputs, ..g };
            TileSize::for_layer(g, isa.precision())
                .map(|size| Winograd::new(isa, size, g, ldk, capacity, kernel_grads))
        };
        let (forward_winograd, grad_winograd) =
            (winograd(g.c, filters, true), winograd(filters, ldc, false));
        let (pads_input, pads_grad) = Self::pads(g, filters);
        let padded =
            |pads: bool, o: &Offsets| vec![0.0; if pads { capacity * o.padded_len } else { 0 }];
        TiledConv {
            isa: isa.fp32(),
            padded_input: padded(pads_input, &input_offsets),
            padded_grad: padded(pads_grad, &grad_offsets),
            forward_winograd,
            grad_winograd,
            geometry: g,
            filters,
            flipped: vec![0.0; grad_offsets.taps.len() * ldc],
            // Only the direct kernel gradient sums by groups (Winograd's sums by chunks).
            partials: vec![
                0.0;
                if pads_input {
                    groups * g.patch_len() * filters
                } else {
                    0
                }
            ],
            input_offsets,
            grad_offsets,
        }
    }

    /// Whether the kernels keep a zero-bordered copy of the input, and of the output gradient:
    /// where Winograd does not run that product (its transforms read the border themselves;
    /// whether it runs does not depend on the precision).
    pub fn pads(g: ConvGeometry, filters: usize) -> (bool, bool) {
        let pads = |g: ConvGeometry| TileSize::for_layer(g, Precision::Fp32).is_none();
        (pads(g), pads(ConvGeometry { c: filters, ..g }))
    }

    /// The floats [`TiledConv::new`] keeps per image of its capacity, in u128 as the memory
    /// plan counts: the zero-bordered copies and the kernel gradient's partial sums.
    pub fn scratch_per_sample(g: ConvGeometry, filters: usize) -> u128 {
        let (pads_input, pads_grad) = Self::pads(g, filters);
        let [hp, wp, c, f] = [g.h + g.k - 1, g.w + g.k - 1, g.c, filters].map(|n| n as u128);
        let patch = (g.k * g.k) as u128 * c;
        let input = hp * wp * c + (patch * f).div_ceil(IMAGES_PER_GROUP as u128);
        pads_input as u128 * input + pads_grad as u128 * hp * wp * f
    }

    /// Whether [`TiledConv::forward`] can also run the 2×2 max pooling after it.
    pub fn pools_as_it_stores(&self) -> bool {
        self.forward_winograd.is_some()
    }

    /// `y = conv(x, kernel) + bias` for `n` images, then `max(·, 0)·scale + shift` where
    /// `relu_affine` is given, then 2×2 max pooling where `pool` (only where
    /// [`TiledConv::pools_as_it_stores`]); `weights` is the kernel `[k·k·C × F]` then the
    /// bias.
    pub fn forward(
        &mut self,
        x: &[f32],
        weights: &[f32],
        y: &mut [f32],
        n: usize,
        (relu_affine, pool): (Option<ReluAffine>, bool),
    ) {
        assert!(!pool || self.pools_as_it_stores());
        let (kernel, bias) = weights.split_at(self.geometry.patch_len() * self.filters);
        let epilogue = Epilogue {
            bias: Some(bias),
            relu_affine,
            pool,
        };
        let (o, f) = (&self.input_offsets, self.filters);
        match &mut self.forward_winograd {
            Some(winograd) => winograd.convolve(x, kernel, epilogue, y, f, n),
            None => {
                pad(self.geometry, x, &mut self.padded_input, n);
                convolve(
                    self.isa,
                    o,
                    &self.padded_input,
                    kernel,
                    f,
                    epilogue,
                    y,
                    f,
                    n,
                )
            }
        }
    }

    /// The input gradient `dx` from `dy`, by the flipped, transposed kernels.
    pub fn input_grad(&mut self, dy: &[f32], kernel: &[f32], dx: &mut [f32], n: usize) {
        let ConvGeometry { k, c, .. } = self.geometry;
        let (f, ldc) = (self.filters, c.next_multiple_of(COLS));
        for (tap, rows) in kernel.chunks_exact(c * f).enumerate() {
            let flipped_tap = k * k - 1 - tap;
            for (ci, row) in rows.chunks_exact(f).enumerate() {
                for (fi, &v) in row.iter().enumerate() {
                    self.flipped[(flipped_tap * f + fi) * ldc + ci] = v;
                }
            }
        }
        let grad_geometry = ConvGeometry {
            c: f,
            ..self.geometry
        };
        let (o, flipped) = (&self.grad_offsets, &self.flipped);
        match &mut self.grad_winograd {
            Some(winograd) => winograd.convolve(dy, flipped, Epilogue::default(), dx, c, n),
            None => {
                pad(grad_geometry, dy, &mut self.padded_grad, n);
                let epilogue = Epilogue::default();
                convolve(
                    self.isa,
                    o,
                    &self.padded_grad,
                    flipped,
                    ldc,
                    epilogue,
                    dx,
                    c,
                    n,
                )
            }
        }
    }

    /// The kernel gradient `[k·k·C × F]` from the forward pass's input `x` and `dy`.
    pub fn kernel_grad(&mut self, x: &[f32], dy: &[f32], kernel_grad: &mut [f32], n: usize) {
        if let Some(winograd) = &mut self.forward_winograd {
            return winograd.kernel_grad(x, dy, kernel_grad, n);
        }
        let (offsets, f, isa) = (&self.input_offsets, self.filters, self.isa);
        let patch = offsets.taps.len();
        let groups = n.div_ceil(IMAGES_PER_GROUP);
        let padded = &self.padded_input;
        assert!(padded.len() >= n * offsets.padded_len);
        assert!(dy.len() >= n * offsets.pixels.len() * f);
        self.partials[..groups * patch * f]
            .par_chunks_mut(patch * f)
            .enumerate()
            .for_each(|(group, partial)| {
                let images = group * IMAGES_PER_GROUP..((group + 1) * IMAGES_PER_GROUP).min(n);
                let kernel = KernelGradGroup {
                    offsets,
                    padded,
                    dy,
                    filters: f,
                    images,
                    partial,
                };
                // SAFETY: the CPU runs `isa`; the bounds are asserted above.
                unsafe { dispatch(isa, kernel) }
            });
        let kernel_grad = &mut kernel_grad[..patch * f];
        kernel_grad.fill(0.0);
        for partial in self.partials[..groups * patch * f].chunks_exact(patch * f) {
            for (g, p) in kernel_grad.iter_mut().zip(partial) {
                *g += p;
            }
        }
    }
}
