//! "Same" k×k convolutions over NHWC images without materialised im2col patches.
//!
//! The input is copied once into a zero-bordered buffer; then one AVX2 micro-kernel, a 6×16
//! tile of a matrix product whose left operand is gathered through two offset tables, serves
//! all three products of a convolution:
//! - forward: `y[p, f] = Σ_(tap, c) x̃[p + tap, c] · W[(tap, c), f]`;
//! - input gradient: the same convolution of the padded output gradient with the kernels
//!   flipped and transposed, `W'[(k²−1−tap, f), c] = W[(tap, c), f]`;
//! - kernel gradient: `dW[(tap, c), f] = Σ_p x̃[p + tap, c] · dy[p, f]`, the long reduction over
//!   pixels, summed over fixed groups of images in order (the same result for any thread count).
//!
//! Measured on MiniVGGNet (`minivgg bench`), this is faster than im2col plus `gemm`: the
//! patches (9× the input) are never written or read back, and the tile keeps its 12
//! accumulators in registers over the whole reduction. Where Winograd's F(2×2, 3×3) applies
//! (3×3 kernels, even image sizes, channels in 8s), all three products use it instead, on the
//! same micro-kernel and without the zero-bordered copies (see `winograd.rs`).

use super::im2col::ConvGeometry;
use super::winograd::Winograd;
use rayon::prelude::*;

/// Output rows (pixels, or kernel rows for the kernel gradient) per micro-kernel tile.
pub(super) const ROWS: usize = 6;
/// Output columns per tile: two AVX registers of f32.
pub const COLS: usize = 16;
/// Images per partial kernel gradient: a fixed split, so the sum's order never changes.
const IMAGES_PER_GROUP: usize = 8;
/// Pixels per pass of the kernel-gradient tiles, so their rows stay in the L1/L2 caches.
const PIXELS_PER_BLOCK: usize = 128;

/// Whether this CPU runs the direct kernels (else the layer uses im2col and `gemm`).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[r][..] = Σ_j a[rows[r] + cols[j]] · b[j·ldb ..][..16]`.
///
/// # Safety
/// The CPU has AVX2 and FMA, and every `a[rows[r] + cols[j]]` and `b[j·ldb + 0..16]` is in
/// bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile(
    a: *const f32,
    rows: &[usize; ROWS],
    cols: &[usize],
    b: *const f32,
    ldb: usize,
    out: &mut [[f32; COLS]; ROWS],
) {
    use std::arch::x86_64::*;
    let a_rows = rows.map(|r| a.add(r));
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    let mut b_row = b;
    for &col in cols {
        let b0 = _mm256_loadu_ps(b_row);
        let b1 = _mm256_loadu_ps(b_row.add(8));
        for r in 0..ROWS {
            let x = _mm256_broadcast_ss(&*a_rows[r].add(col));
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
        b_row = b_row.add(ldb);
    }
    for r in 0..ROWS {
        _mm256_storeu_ps(out[r].as_mut_ptr(), acc[r][0]);
        _mm256_storeu_ps(out[r].as_mut_ptr().add(8), acc[r][1]);
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn tile(
    _: *const f32,
    _: &[usize; ROWS],
    _: &[usize],
    _: *const f32,
    _: usize,
    _: &mut [[f32; COLS]; ROWS],
) {
    unreachable!("conv::available() is false off x86-64")
}

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

/// The `ROWS` table entries from `start`, the last one repeated past the end (those rows
/// are computed and dropped).
pub(super) fn tile_rows(table: &[usize], start: usize) -> [usize; ROWS] {
    std::array::from_fn(|r| table[(start + r).min(table.len() - 1)])
}

/// What a convolution does to its sums before storing them: adds the bias and, in
/// evaluation, may also run the ReLU and BatchNorm after it, `max(·, 0)·scale + shift` per
/// filter (the same operations as those layers, so bit for bit their result).
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub relu_affine: Option<(&'a [f32], &'a [f32])>,
}

impl Epilogue<'_> {
    /// The stored value of filter `f` whose sum is `sum`.
    #[inline]
    pub fn apply(&self, f: usize, sum: f32) -> f32 {
        let v = match self.bias {
            Some(bias) => sum + bias[f],
            None => sum,
        };
        match self.relu_affine {
            Some((scale, shift)) => v.max(0.0) * scale[f] + shift[f],
            None => v,
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

/// One "same" convolution of zero-bordered images: `y[p, f] = epilogue(Σ_j x̃[p + taps[j]] ·
/// kernel[j, f])`, for `outputs` (a multiple of [`COLS`]) columns of a kernel `ldk` wide.
#[allow(clippy::too_many_arguments)]
fn convolve(
    o: &Offsets,
    padded: &[f32],
    kernel: &[f32],
    ldk: usize,
    epilogue: Epilogue,
    y: &mut [f32],
    outputs: usize,
    n: usize,
) {
    let pixels = o.pixels.len();
    assert!(ldk.is_multiple_of(COLS) && ldk >= outputs && kernel.len() >= o.taps.len() * ldk);
    assert!(padded.len() >= n * o.padded_len);
    y[..n * pixels * outputs]
        .par_chunks_mut(pixels * outputs)
        .zip(padded.par_chunks(o.padded_len))
        .for_each(|(y, image)| {
            let mut out = [[0.0; COLS]; ROWS];
            for f0 in (0..outputs).step_by(COLS) {
                let width = COLS.min(outputs - f0);
                for p0 in (0..pixels).step_by(ROWS) {
                    // SAFETY: available() was checked when the layer chose this path; the
                    // largest offsets index the image's last padded pixel, and the kernel
                    // holds taps × ldk values (asserted above), ldk a multiple of COLS.
                    unsafe {
                        tile(
                            image.as_ptr(),
                            &tile_rows(&o.pixels, p0),
                            &o.taps,
                            kernel.as_ptr().add(f0),
                            ldk,
                            &mut out,
                        );
                    }
                    for (r, sums) in out.iter().enumerate().take(pixels - p0) {
                        let row = &mut y[(p0 + r) * outputs + f0..][..width];
                        for (f, (v, s)) in (f0..).zip(row.iter_mut().zip(sums)) {
                            *v = epilogue.apply(f, *s);
                        }
                    }
                }
            }
        });
}

/// A convolution layer's scratch for the direct kernels, sized for `capacity` images.
pub struct DirectConv {
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
    /// Winograd's F(2×2, 3×3), where it applies: `forward_winograd` for the forward pass and the
    /// kernel gradient, `grad_winograd` for the input gradient.
    forward_winograd: Option<Winograd>,
    grad_winograd: Option<Winograd>,
    /// One partial kernel gradient per group of images.
    partials: Vec<f32>,
}

impl DirectConv {
    /// Direct kernels for `filters` (a multiple of [`COLS`]) filters over `g`.
    pub fn new(g: ConvGeometry, filters: usize, capacity: usize) -> DirectConv {
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
            Winograd::applies(g).then(|| Winograd::new(g, ldk, capacity, kernel_grads))
        };
        let (forward_winograd, grad_winograd) =
            (winograd(g.c, filters, true), winograd(filters, ldc, false));
        let padded = |winograd: &Option<Winograd>, o: &Offsets| match winograd {
            Some(_) => Vec::new(),
            None => vec![0.0; capacity * o.padded_len],
        };
        DirectConv {
            padded_input: padded(&forward_winograd, &input_offsets),
            padded_grad: padded(&grad_winograd, &grad_offsets),
            forward_winograd,
            grad_winograd,
            geometry: g,
            filters,
            flipped: vec![0.0; grad_offsets.taps.len() * ldc],
            partials: vec![0.0; groups * g.patch_len() * filters],
            input_offsets,
            grad_offsets,
        }
    }

    /// `y = conv(x, kernel) + bias` for `n` images, then `max(·, 0)·scale + shift` where
    /// `relu_affine` is given; `weights` is the kernel `[k·k·C × F]` then the bias.
    pub fn forward(
        &mut self,
        x: &[f32],
        weights: &[f32],
        y: &mut [f32],
        n: usize,
        relu_affine: Option<(&[f32], &[f32])>,
    ) {
        let (kernel, bias) = weights.split_at(self.geometry.patch_len() * self.filters);
        let epilogue = Epilogue {
            bias: Some(bias),
            relu_affine,
        };
        let (o, f) = (&self.input_offsets, self.filters);
        match &mut self.forward_winograd {
            Some(winograd) => winograd.convolve(x, kernel, epilogue, y, f, n),
            None => {
                pad(self.geometry, x, &mut self.padded_input, n);
                convolve(o, &self.padded_input, kernel, f, epilogue, y, f, n)
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
                convolve(
                    o,
                    &self.padded_grad,
                    flipped,
                    ldc,
                    Epilogue::default(),
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
        let (o, f) = (&self.input_offsets, self.filters);
        let (patch, pixels) = (o.taps.len(), o.pixels.len());
        let groups = n.div_ceil(IMAGES_PER_GROUP);
        let padded = &self.padded_input;
        self.partials[..groups * patch * f]
            .par_chunks_mut(patch * f)
            .enumerate()
            .for_each(|(group, partial)| {
                partial.fill(0.0);
                let mut out = [[0.0; COLS]; ROWS];
                let images = group * IMAGES_PER_GROUP..((group + 1) * IMAGES_PER_GROUP).min(n);
                for image in images {
                    let x = &padded[image * o.padded_len..][..o.padded_len];
                    let dy = &dy[image * pixels * f..][..pixels * f];
                    for p0 in (0..pixels).step_by(PIXELS_PER_BLOCK) {
                        let block = &o.pixels[p0..(p0 + PIXELS_PER_BLOCK).min(pixels)];
                        for f0 in (0..f).step_by(COLS) {
                            for j0 in (0..patch).step_by(ROWS) {
                                // SAFETY: as in convolve; dy holds `pixels` rows of f values.
                                unsafe {
                                    tile(
                                        x.as_ptr(),
                                        &tile_rows(&o.taps, j0),
                                        block,
                                        dy.as_ptr().add(p0 * f + f0),
                                        f,
                                        &mut out,
                                    );
                                }
                                for (r, sums) in out.iter().enumerate().take(patch - j0) {
                                    let row = &mut partial[(j0 + r) * f + f0..][..COLS];
                                    for (g, s) in row.iter_mut().zip(sums) {
                                        *g += s;
                                    }
                                }
                            }
                        }
                    }
                }
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
