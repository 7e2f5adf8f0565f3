//! Conv2D, "same" padding: forward and backward side by side, on the tile kernels (direct
//! or Winograd, `cpu/conv.rs` and `cpu/winograd.rs`) where the filter count allows, else on
//! im2col patches and the products of `affine.rs`. GPU twin: `cuda/layers/conv.rs` (cuDNN or
//! im2col).

use super::affine::{affine_forward, input_grads, weight_grads, BiasSums};
use super::{Backward, Forward};
use crate::engine::cpu::conv::TiledConv;
use crate::engine::cpu::im2col::{col2im, im2col, ConvGeometry};
use crate::engine::cpu::reduce::{partials_len, ROWS_PER_CHUNK};
use crate::engine::cpu::simd::Isa;
use crate::engine::cpu::tile::{self, Epilogue};
use crate::model::Shape;

pub struct Conv2d {
    geometry: ConvGeometry,
    filters: usize,
    kernels: ConvKernels,
    partials: Vec<f64>,
    sums: Vec<f64>,
}

/// How the products are done: the tile kernels (direct or Winograd) where the filter count
/// allows, else im2col and `gemm`.
enum ConvKernels {
    Tiled(Box<TiledConv>),
    /// The im2col patches of the last forward pass, reused for the patch gradients in backward.
    Lowered {
        cols: Vec<f32>,
    },
}

impl Conv2d {
    pub fn new(isa: Isa, input: Shape, filters: usize, kernel: usize, capacity: usize) -> Self {
        Self::with_kernels(isa, input, filters, kernel, capacity, true)
    }

    /// Whether a convolution of `filters` runs the tile kernels (direct, on a padded input and
    /// gradient, or Winograd) rather than im2col and `gemm` (a lowered copy of its input per sample).
    pub fn runs_tiled(filters: usize) -> bool {
        filters.is_multiple_of(tile::COLS)
    }

    /// The floats of scratch a convolution of `filters` over `input` keeps per sample of a
    /// batch, in u128 as the memory plan counts: the direct kernels' (see
    /// [`TiledConv::scratch_per_sample`]) or the lowered input of im2col, and the f64
    /// partial sums of the bias gradient.
    pub fn scratch_per_sample(input: Shape, filters: usize, kernel: usize) -> u128 {
        let Shape::Image { h, w, c } = input else {
            unreachable!("ModelSpec::place checks conv inputs")
        };
        let g = ConvGeometry { h, w, c, k: kernel };
        let pixels = (h * w) as u128;
        let bias_partials = (2 * filters as u128 * pixels).div_ceil(ROWS_PER_CHUNK as u128);
        bias_partials
            + if Self::runs_tiled(filters) {
                TiledConv::scratch_per_sample(g, filters)
            } else {
                pixels * (kernel * kernel) as u128 * c as u128
            }
    }

    /// As [`Conv2d::new`], choosing the im2col and `gemm` path when `direct` is false (the
    /// tests below compare the two).
    fn with_kernels(
        isa: Isa,
        input: Shape,
        filters: usize,
        kernel: usize,
        capacity: usize,
        direct: bool,
    ) -> Self {
        let Shape::Image { h, w, c } = input else {
            unreachable!("ModelSpec::place checks conv inputs")
        };
        let geometry = ConvGeometry { h, w, c, k: kernel };
        let rows = capacity * h * w;
        let kernels = if direct && Self::runs_tiled(filters) {
            ConvKernels::Tiled(Box::new(TiledConv::new(isa, geometry, filters, capacity)))
        } else {
            ConvKernels::Lowered {
                cols: vec![0.0; rows * geometry.patch_len()],
            }
        };
        Conv2d {
            geometry,
            filters,
            kernels,
            partials: vec![0.0; partials_len(rows, filters)],
            sums: vec![0.0; filters],
        }
    }

    fn rows(&self, n: usize) -> usize {
        n * self.geometry.h * self.geometry.w
    }

    pub fn forward(&mut self, io: Forward) {
        self.forward_then_relu_affine(io, None, false);
    }

    /// Whether [`Conv2d::forward_then_relu_affine`] can also run a 2×2 max pooling.
    pub fn pools_as_it_stores(&self) -> bool {
        matches!(&self.kernels, ConvKernels::Tiled(tiled) if tiled.pools_as_it_stores())
    }

    /// The forward pass, then `max(·, 0)·scale + shift` per filter where `relu_affine` is
    /// given: the ReLU and evaluation-mode BatchNorm after this layer, done as its outputs are
    /// stored (see `Network::forward`).
    ///
    /// With `pool`, also the 2×2 max pooling after them, `y` the pooled image; only where
    /// [`Conv2d::pools_as_it_stores`].
    pub fn forward_then_relu_affine(
        &mut self,
        io: Forward,
        relu_affine: Option<(&[f32], &[f32])>,
        pool: bool,
    ) {
        let (rows, patch, filters) = (self.rows(io.n), self.geometry.patch_len(), self.filters);
        match &mut self.kernels {
            ConvKernels::Tiled(tiled) => {
                tiled.forward(io.x, io.weights, io.y, io.n, (relu_affine, pool))
            }
            ConvKernels::Lowered { cols } => {
                let cols = &mut cols[..rows * patch];
                im2col(self.geometry, io.x, cols);
                affine_forward(cols, io.weights, io.y, rows, patch, filters);
                if relu_affine.is_some() {
                    assert!(!pool, "im2col does not pool as it stores");
                    let epilogue = Epilogue {
                        bias: None,
                        relu_affine,
                        pool: false,
                    };
                    for row in io.y[..rows * filters].chunks_exact_mut(filters) {
                        for (f, v) in row.iter_mut().enumerate() {
                            *v = epilogue.apply(f, *v);
                        }
                    }
                }
            }
        }
    }

    pub fn backward(&mut self, io: Backward) {
        let (rows, patch, filters) = (self.rows(io.n), self.geometry.patch_len(), self.filters);
        let bias_sums = BiasSums {
            partials: &mut self.partials,
            sums: &mut self.sums,
        };
        match &mut self.kernels {
            ConvKernels::Tiled(tiled) => {
                let (kernel_grad, bias_grad) = io.grads.split_at_mut(patch * filters);
                tiled.kernel_grad(io.x, io.dy, kernel_grad, io.n);
                bias_sums.compute(io.dy, bias_grad, rows);
                if let Some(dx) = io.dx {
                    tiled.input_grad(io.dy, &io.weights[..patch * filters], dx, io.n);
                }
            }
            ConvKernels::Lowered { cols } => {
                let cols = &mut cols[..rows * patch];
                weight_grads(cols, io.dy, io.grads, bias_sums, rows, patch, filters);
                if let Some(dx) = io.dx {
                    // The patches are no longer needed: their buffer takes the patch gradients.
                    input_grads(io.dy, io.weights, cols, rows, patch, filters);
                    col2im(self.geometry, cols, dx);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::simd::CpuPath;
    use crate::engine::cpu::winograd::TileSize;
    use crate::engine::layers::Mode;
    use crate::engine::precision::Precision;

    /// Forward, kernel and bias gradients, and input gradient of one layer.
    fn run(layer: &mut Conv2d, x: &[f32], weights: &[f32], dy: &[f32], n: usize) -> [Vec<f32>; 3] {
        let mut y = vec![0.0; dy.len()];
        layer.forward(Forward {
            weights,
            moving: &mut [],
            x,
            y: &mut y,
            n,
            mode: Mode::Train,
            dropout_key: 0,
        });
        let mut grads = vec![0.0; weights.len()];
        let mut dx = vec![0.0; x.len()];
        layer.backward(Backward {
            weights,
            grads: &mut grads,
            x,
            y: &y,
            dy,
            dx: Some(&mut dx),
            n,
        });
        [y, grads, dx]
    }

    /// Channel counts below, at and above one 16-wide tile, odd image sizes (partial pixel
    /// tiles, the direct kernels) and even ones (Winograd), 3×3 and 5×5, and more images than
    /// one kernel-gradient group; 132 tiles of 32 + 32 channels are three Winograd blocks, the
    /// last partial; sides in 4s take F(4×4, 3×3) in fp32. `(h, w, c, k, filters, n)`.
    const CASES: [(usize, usize, usize, usize, usize, usize); 12] = [
        (6, 5, 3, 3, 16, 3),
        (7, 9, 16, 3, 32, 10),
        (8, 8, 20, 5, 16, 2),
        (4, 4, 33, 3, 48, 17),
        (8, 6, 16, 3, 32, 10),
        (2, 2, 8, 3, 16, 1),
        (6, 4, 3, 3, 16, 2),
        (24, 22, 32, 3, 32, 3),
        (4, 6, 64, 3, 16, 9),
        (8, 12, 32, 3, 32, 5),
        (16, 16, 16, 3, 16, 2),
        (4, 4, 16, 3, 48, 3),
    ];

    /// y, grads and dx of case `(h, w, c, k, filters, n)` on `isa`, direct or through im2col,
    /// from waves of values in −1..1.
    fn run_case(
        case: (usize, usize, usize, usize, usize, usize),
        isa: Isa,
        direct: bool,
    ) -> [Vec<f32>; 3] {
        run_waves(case, isa, direct, |i, phase| {
            (i as f32 * 0.37 + phase).sin()
        })
    }

    /// As [`run_case`], the values drawn by `wave(index, phase)`.
    fn run_waves(
        (h, w, c, k, filters, n): (usize, usize, usize, usize, usize, usize),
        isa: Isa,
        direct: bool,
        wave: impl Fn(usize, f32) -> f32,
    ) -> [Vec<f32>; 3] {
        let input = Shape::Image { h, w, c };
        let wave =
            |len: usize, phase: f32| -> Vec<f32> { (0..len).map(|i| wave(i, phase)).collect() };
        let x = wave(n * h * w * c, 0.1);
        let weights = wave(k * k * c * filters + filters, 0.7);
        let dy = wave(n * h * w * filters, 1.3);
        let mut layer = Conv2d::with_kernels(isa, input, filters, k, n, direct);
        assert_eq!(matches!(layer.kernels, ConvKernels::Tiled(_)), direct);
        run(&mut layer, &x, &weights, &dy, n)
    }

    /// The largest difference of `got` from `want`, relative to `want`'s largest magnitude
    /// (at least 1), over y, grads and dx.
    fn relative_error(got: &[Vec<f32>; 3], want: &[Vec<f32>; 3]) -> (f32, &'static str) {
        let mut worst = (0.0f32, "");
        for (what, got, want) in ["y", "grads", "dx"]
            .into_iter()
            .zip(got)
            .zip(want)
            .map(|((w, g), v)| (w, g, v))
        {
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (got, want) in got.iter().zip(want) {
                let error = (got - want).abs() / scale;
                if error > worst.0 || error.is_nan() {
                    worst = (error, what);
                }
            }
        }
        worst
    }

    fn isa(path: CpuPath, precision: Precision) -> Isa {
        Isa::new(path, precision).expect("supported")
    }

    /// The tolerance of fp32 against im2col and `gemm`, relative to the largest value: 1e-5,
    /// and 1e-4 where F(4×4, 3×3) runs (its coefficients, up to 8 and down to 1/24, round
    /// more).
    fn fp32_tolerance(case: (usize, usize, usize, usize, usize, usize)) -> f32 {
        match winograd_size(case, Precision::Fp32) {
            Some(TileSize::F4) => 1e-4,
            _ => 1e-5,
        }
    }

    /// The Winograd size the case's forward pass runs in `precision`, if any.
    fn winograd_size(
        (h, w, c, k, ..): (usize, usize, usize, usize, usize, usize),
        precision: Precision,
    ) -> Option<TileSize> {
        TileSize::for_layer(ConvGeometry { h, w, c, k }, precision)
    }

    #[test]
    fn portable_direct_kernels_match_im2col_and_gemm() {
        for case in CASES {
            let want = run_case(case, isa(CpuPath::Portable, Precision::Fp32), false);
            let got = run_case(case, isa(CpuPath::Portable, Precision::Fp32), true);
            let (error, what) = relative_error(&got, &want);
            assert!(
                error <= fp32_tolerance(case),
                "{case:?}: {what} off by {error:e}"
            );
        }
    }

    /// Every path this CPU runs, fp32, against the portable path: within the tolerance of
    /// fp32 (FMA or not changes the rounding, not more).
    #[test]
    fn every_path_matches_the_portable_path() {
        let paths = CpuPath::supported_paths();
        eprintln!("paths on this CPU: {paths:?}");
        for case in CASES {
            let want = run_case(case, isa(CpuPath::Portable, Precision::Fp32), true);
            for &path in &paths[1..] {
                let got = run_case(case, isa(path, Precision::Fp32), true);
                let (error, what) = relative_error(&got, &want);
                let tolerance = fp32_tolerance(case);
                assert!(
                    error <= tolerance,
                    "{path}, {case:?}: {what} off by {error:e}"
                );
            }
        }
    }

    /// bf16 products: within 5e-2 of the largest value from fp32, yet not equal to it (the
    /// rounding happens); and every path's bf16, AVX512_BF16's `vdpbf16ps` included where the
    /// CPU has it, within 1e-5 of the portable path's emulation of it. Each factor keeps 8
    /// significant bits (2⁻⁹ relative error); Winograd's transformed values are sums of up to
    /// 9 inputs, so the rounding of a large transformed value shows in a small output: these
    /// waves measure up to 3.8e-2 (the kernel gradient of 8×6×16, summed over 120 tiles).
    #[test]
    fn bf16_products_match_fp32_within_bf16_rounding() {
        let mut bf16_paths = vec![CpuPath::Portable];
        bf16_paths.extend(
            CpuPath::supported_paths()
                .into_iter()
                .filter(|&p| p != CpuPath::Portable && Isa::new(p, Precision::Bf16).is_some()),
        );
        eprintln!("bf16 on: {bf16_paths:?}");
        for case in CASES {
            let fp32 = run_case(case, isa(CpuPath::Portable, Precision::Fp32), true);
            let portable = run_case(case, isa(CpuPath::Portable, Precision::Bf16), true);
            let (error, what) = relative_error(&portable, &fp32);
            assert!(
                error <= 5e-2,
                "bf16, {case:?}: {what} off fp32 by {error:e}"
            );
            if winograd_size(case, Precision::Bf16).is_some() {
                assert!(error > 1e-5, "bf16, {case:?}: no rounding seen ({error:e})");
            }
            for &path in &bf16_paths[1..] {
                let got = run_case(case, isa(path, Precision::Bf16), true);
                let (error, what) = relative_error(&got, &portable);
                assert!(
                    error <= 1e-5,
                    "bf16 {path}, {case:?}: {what} off by {error:e}"
                );
            }
        }
    }

    /// Small integers, and the Winograd transforms of them, are exact in bf16, and so are
    /// their products and (short) sums in f32: then bf16 must give fp32's result exactly. This
    /// catches a pairing or layout mistake that rounding would hide.
    #[test]
    fn bf16_products_of_exact_values_are_exact() {
        let small_integers =
            |i: usize, phase: f32| ((i * 7 + (phase * 10.0) as usize) % 5) as f32 - 2.0;
        for path in CpuPath::supported_paths() {
            let Some(bf16) = Isa::new(path, Precision::Bf16) else {
                continue;
            };
            for case in CASES {
                // im2col and gemm: F(4×4)'s fractions would not be exact.
                let want = run_waves(
                    case,
                    isa(CpuPath::Portable, Precision::Fp32),
                    false,
                    small_integers,
                );
                let got = run_waves(case, bf16, true, small_integers);
                let (error, what) = relative_error(&got, &want);
                assert!(
                    error <= 1e-6,
                    "bf16 {path}, {case:?}: {what} off by {error:e}"
                );
            }
        }
    }
}
