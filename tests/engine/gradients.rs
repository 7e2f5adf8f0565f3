//! Every layer's backward against central finite differences of its forward.
//!
//! The layers compute in f32, so the check does too, with a step of 1e-2 and the scalar
//! objective L = Σ y·r (r fixed random weights) accumulated in f64. Linear layers have no
//! truncation error, so the tolerance covers f32 rounding (up to 3e-4 here) and BN's curvature
//! (O(step²)): |numeric − analytic| ≤ 3e-3 · max(1, |analytic|). Inputs keep clear of ReLU's
//! kink and of max-pool ties, where a finite difference is not a derivative.

use crate::common::{assert_close, bits, pass};
use minivgg::engine::cpu::simd::{CpuPath, Isa};
use minivgg::engine::layers::softmax::softmax_cross_entropy;
use minivgg::engine::layers::{Backward, Forward, Layer, Mode};
use minivgg::engine::Precision;
use minivgg::model::spec::{LayerSpec, ParamKind, PlacedLayer};
use minivgg::model::Shape;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const STEP: f32 = 1e-2;
const TOLERANCE: f64 = 3e-3;
const CHECKS_PER_TENSOR: usize = 40;

struct Case {
    layer: Layer,
    /// The finite differences' step.
    step: f32,
    placed: PlacedLayer,
    n: usize,
    mode: Mode,
    weights: Vec<f32>,
    moving: Vec<f32>,
    r: Vec<f32>,
}

impl Case {
    fn new(
        isa: Isa,
        spec: LayerSpec,
        input: Shape,
        n: usize,
        mode: Mode,
        rng: &mut ChaCha8Rng,
    ) -> Case {
        let placed = PlacedLayer::new("layer".into(), spec, input).unwrap();
        let count = |kind| {
            placed
                .params
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.len())
                .sum::<usize>()
        };
        let weights = (0..count(ParamKind::Trainable))
            .map(|_| rng.random_range(-0.5..0.5f32) + 0.2)
            .collect();
        // Moving variance must stay positive for evaluation-mode BN.
        let moving = (0..count(ParamKind::Moving))
            .map(|_| rng.random_range(0.5..1.5f32))
            .collect();
        let r = (0..n * placed.output.len())
            .map(|_| rng.random_range(-1.0..1.0f32))
            .collect();
        Case {
            layer: Layer::new(isa, &placed, n),
            step: STEP,
            placed,
            n,
            mode,
            weights,
            moving,
            r,
        }
    }

    /// Forward with the same dropout key, so every evaluation draws the same mask; returns L = Σ y·r and the output.
    fn objective(&mut self, x: &[f32], weights: &[f32]) -> (f64, Vec<f32>) {
        let mut y = vec![0.0; self.n * self.placed.output.len()];
        let mut moving = self.moving.clone();
        self.layer.forward(Forward {
            weights,
            moving: &mut moving,
            x,
            y: &mut y,
            n: self.n,
            mode: self.mode,
            dropout_key: 7,
        });
        let loss = y
            .iter()
            .zip(&self.r)
            .map(|(y, r)| *y as f64 * *r as f64)
            .sum();
        (loss, y)
    }

    fn check(&mut self, x: Vec<f32>, what: &str) {
        let weights = self.weights.clone();
        let (_, y) = self.objective(&x, &weights);
        let mut dx = vec![0.0; x.len()];
        let mut grads = vec![0.0; weights.len()];
        let r = self.r.clone();
        self.layer.backward(Backward {
            weights: &weights,
            grads: &mut grads,
            x: &x,
            y: &y,
            dy: &r,
            dx: Some(&mut dx),
            n: self.n,
        });
        let mut pick = ChaCha8Rng::seed_from_u64(11);
        let mut coords: Vec<usize> = (0..x.len()).collect();
        coords.shuffle(&mut pick);
        for &i in coords.iter().take(CHECKS_PER_TENSOR) {
            let numeric = self.central_difference(&x, &weights, Some(i), None);
            assert_matches(numeric, dx[i] as f64, &format!("{what}: d/dx[{i}]"));
        }
        let mut coords: Vec<usize> = (0..weights.len()).collect();
        coords.shuffle(&mut pick);
        for &i in coords.iter().take(CHECKS_PER_TENSOR) {
            let numeric = self.central_difference(&x, &weights, None, Some(i));
            assert_matches(numeric, grads[i] as f64, &format!("{what}: d/dweight[{i}]"));
        }
    }

    fn central_difference(
        &mut self,
        x: &[f32],
        weights: &[f32],
        xi: Option<usize>,
        wi: Option<usize>,
    ) -> f64 {
        let step = self.step;
        let mut eval = |delta: f32| {
            let (mut x, mut w) = (x.to_vec(), weights.to_vec());
            if let Some(i) = xi {
                x[i] += delta;
            }
            if let Some(i) = wi {
                w[i] += delta;
            }
            self.objective(&x, &w).0
        };
        (eval(step) - eval(-step)) / (2.0 * step as f64)
    }
}

/// The finite difference `numeric` against the backward pass's `analytic` derivative.
fn assert_matches(numeric: f64, analytic: f64, what: &str) {
    let tolerance = TOLERANCE * analytic.abs().max(1.0);
    assert_close(
        numeric,
        analytic,
        tolerance,
        &format!("{what} (finite difference, backward)"),
    );
}

/// Values at least 0.1 from zero (ReLU's kink), all distinct by more than 2·STEP (max-pool ties).
fn spread_input(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut values: Vec<f32> = (0..len)
        .map(|i| {
            let v = 0.1 + 0.05 * (i as f32 / 2.0).floor();
            if i % 2 == 0 {
                v
            } else {
                -v
            }
        })
        .collect();
    values.shuffle(rng);
    let scale = 1.0 / values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    values.iter().map(|v| v * scale * 2.0).collect()
}

/// The fp32 kernels of every CPU path this machine runs (portable, AVX2, AVX-512).
fn fp32_paths() -> Vec<Isa> {
    CpuPath::supported_paths()
        .into_iter()
        .map(|path| Isa::new(path, Precision::Fp32).unwrap())
        .collect()
}

/// The layer's gradients on every CPU path.
fn check_layer(spec: LayerSpec, input: Shape, mode: Mode) {
    check_layer_with_step(spec, input, mode, STEP)
}

fn check_layer_with_step(spec: LayerSpec, input: Shape, mode: Mode, step: f32) {
    for isa in fp32_paths() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 3;
        let mut case = Case::new(isa, spec.clone(), input, n, mode, &mut rng);
        case.step = step;
        let x = spread_input(n * input.len(), &mut rng);
        case.check(
            x,
            &format!("{spec:?} on {input} in {mode:?}, {}", isa.path()),
        );
    }
}

const IMAGE: Shape = Shape::Image { h: 6, w: 5, c: 3 };

#[test]
fn conv3x3_backward_matches_finite_differences() {
    check_layer(
        LayerSpec::Conv2d {
            filters: 4,
            kernel: 3,
        },
        IMAGE,
        Mode::Train,
    );
}

/// 16 filters: the direct kernels (the layer tests in `layers/conv.rs` compare them with im2col
/// and `gemm` on larger shapes).
#[test]
fn conv3x3_with_16_filters_backward_matches_finite_differences() {
    check_layer(
        LayerSpec::Conv2d {
            filters: 16,
            kernel: 3,
        },
        IMAGE,
        Mode::Train,
    );
}

/// An even image of 16 channels: Winograd's F(2×2, 3×3) for all three products.
#[test]
fn conv3x3_winograd_backward_matches_finite_differences() {
    check_layer(
        LayerSpec::Conv2d {
            filters: 16,
            kernel: 3,
        },
        Shape::Image { h: 4, w: 6, c: 16 },
        Mode::Train,
    );
}

/// Sides in 4s, 16 channels: F(4×4, 3×3) for all three products (in fp32). Its forward pass
/// rounds more (about 3e-6 of the largest output, against 2e-7 for the direct kernels), which
/// a step of 1e-2 would magnify into the difference quotient; a convolution is linear in its
/// input and its weights, so a step of 0.5 is as exact and divides that noise by 50.
#[test]
fn conv3x3_winograd_f4_backward_matches_finite_differences() {
    check_layer_with_step(
        LayerSpec::Conv2d {
            filters: 16,
            kernel: 3,
        },
        Shape::Image { h: 4, w: 8, c: 16 },
        Mode::Train,
        0.5,
    );
}

#[test]
fn conv5x5_backward_matches_finite_differences() {
    check_layer(
        LayerSpec::Conv2d {
            filters: 2,
            kernel: 5,
        },
        IMAGE,
        Mode::Train,
    );
}

#[test]
fn dense_backward_matches_finite_differences() {
    check_layer(LayerSpec::Dense { units: 7 }, Shape::Flat(11), Mode::Train);
}

#[test]
fn relu_backward_matches_finite_differences() {
    check_layer(LayerSpec::Relu, IMAGE, Mode::Train);
}

#[test]
fn batchnorm_after_conv_backward_matches_finite_differences() {
    check_layer(LayerSpec::BatchNorm, IMAGE, Mode::Train);
}

#[test]
fn batchnorm_after_dense_backward_matches_finite_differences() {
    check_layer(LayerSpec::BatchNorm, Shape::Flat(5), Mode::Train);
}

#[test]
fn batchnorm_in_evaluation_backward_matches_finite_differences() {
    check_layer(LayerSpec::BatchNorm, IMAGE, Mode::Eval);
}

/// A BatchNorm that runs the ReLU before it, as the network builds MiniVGGNet's
/// CONV → RELU → BN.
#[test]
fn batchnorm_after_relu_backward_matches_finite_differences() {
    let isa = Isa::new(CpuPath::Portable, Precision::Fp32).unwrap();
    for mode in [Mode::Train, Mode::Eval] {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 3;
        let mut case = Case::new(isa, LayerSpec::BatchNorm, IMAGE, n, mode, &mut rng);
        case.layer = Layer::batchnorm_after_relu(isa, &case.placed, n);
        let x = spread_input(n * IMAGE.len(), &mut rng);
        case.check(x, &format!("ReLU inside BatchNorm in {mode:?}"));
    }
}

#[test]
fn batchnorm_after_relu_equals_the_two_layers_bit_for_bit() {
    let (n, shape) = (4, Shape::Image { h: 3, w: 5, c: 8 });
    let place = |spec| PlacedLayer::new("l".into(), spec, shape).unwrap();
    let (relu_placed, bn_placed) = (place(LayerSpec::Relu), place(LayerSpec::BatchNorm));
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut draw = |len: usize, low: f32, high: f32| -> Vec<f32> {
        (0..len).map(|_| rng.random_range(low..high)).collect()
    };
    let (x, dy) = (
        draw(n * shape.len(), -1.0, 1.0),
        draw(n * shape.len(), -1.0, 1.0),
    );
    let (weights, moving) = (draw(2 * 8, -1.0, 1.0), draw(2 * 8, 0.5, 1.5));
    for mode in [Mode::Train, Mode::Eval] {
        let isa = Isa::new(CpuPath::Portable, Precision::Fp32).unwrap();
        let mut relu = Layer::new(isa, &relu_placed, n);
        let mut bn = Layer::new(isa, &bn_placed, n);
        let mut fused = Layer::batchnorm_after_relu(isa, &bn_placed, n);
        let [r, ..] = pass(&mut relu, &x, &[], &[], &vec![0.0; x.len()], n, mode, 0);
        let [y, moving_after, grads, dr] = pass(&mut bn, &r, &weights, &moving, &dy, n, mode, 0);
        let [.., dx] = pass(&mut relu, &x, &[], &[], &dr, n, mode, 0);
        let want = [y, moving_after, grads, dx];
        let got = pass(&mut fused, &x, &weights, &moving, &dy, n, mode, 0);
        assert_same_bits(&got, &want, &format!("in {mode:?}"));
    }
}

/// The four results of [`pass`], bit for bit.
fn assert_same_bits(got: &[Vec<f32>; 4], want: &[Vec<f32>; 4], what: &str) {
    assert_first_same_bits(4, got, want, what)
}

/// The first `count` results of [`pass`], bit for bit.
fn assert_first_same_bits(count: usize, got: &[Vec<f32>; 4], want: &[Vec<f32>; 4], what: &str) {
    let results = ["y", "moving", "grads", "dx"]
        .into_iter()
        .zip(got)
        .zip(want);
    for ((name, got), want) in results.take(count) {
        assert_eq!(bits(got), bits(want), "{name} {what}");
    }
}

/// A MaxPool that runs the Dropout after it, as the network builds MiniVGGNet's
/// POOL → DROPOUT, in training (evaluation's backward is never run: the pool records no
/// winners there), on every CPU path; 17 channels, so each path's vectors have a remainder.
#[test]
fn maxpool_running_the_dropout_after_it_backward_matches_finite_differences() {
    let input = Shape::Image { h: 4, w: 6, c: 17 };
    for isa in fp32_paths() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 3;
        let mut case = Case::new(isa, LayerSpec::MaxPool, input, n, Mode::Train, &mut rng);
        case.layer = Layer::maxpool_then_dropout(isa, &case.placed, 0.5, n);
        let x = spread_input(n * input.len(), &mut rng);
        case.check(x, &format!("Dropout inside MaxPool, {}", isa.path()));
    }
}

/// The fused POOL → DROPOUT against the two layers apart and against the portable path, bit
/// for bit: the same maxima, the same mask (the Dropout's key), the same gradients. The input
/// has ties (values in steps of 1/8), where the first of equals must win on every path.
#[test]
fn maxpool_then_dropout_equals_the_two_layers_bit_for_bit() {
    let (n, shape, rate, key) = (4, Shape::Image { h: 6, w: 8, c: 20 }, 0.25, 0xD0D0);
    let pool_placed = PlacedLayer::new("p".into(), LayerSpec::MaxPool, shape).unwrap();
    let pooled = pool_placed.output;
    let drop_placed = PlacedLayer::new("d".into(), LayerSpec::Dropout { rate }, pooled).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x: Vec<f32> = (0..n * shape.len())
        .map(|_| rng.random_range(-8..8) as f32 / 8.0)
        .collect();
    let dy: Vec<f32> = (0..n * pooled.len())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let portable = Isa::new(CpuPath::Portable, Precision::Fp32).unwrap();
    // Evaluation: the maxima alone (its backward compares winners never recorded, as equal).
    for mode in [Mode::Train, Mode::Eval] {
        let mut reference = None;
        for isa in fp32_paths() {
            let mut pool = Layer::new(portable, &pool_placed, n);
            let mut drop = Layer::new(portable, &drop_placed, n);
            let mut fused = Layer::maxpool_then_dropout(isa, &pool_placed, rate, n);
            let zeros = vec![0.0; n * pooled.len()];
            let [p, ..] = pass(&mut pool, &x, &[], &[], &zeros, n, mode, 0);
            let [y, _, _, dp] = pass(&mut drop, &p, &[], &[], &dy, n, mode, key);
            let [.., dx] = pass(&mut pool, &x, &[], &[], &dp, n, mode, 0);
            let got = pass(&mut fused, &x, &[], &[], &dy, n, mode, key);
            let want = [y, Vec::new(), Vec::new(), dx];
            assert_same_bits(&got, &want, &format!("in {mode:?}, {}", isa.path()));
            let reference = reference.get_or_insert_with(|| got.clone());
            assert_same_bits(
                &got,
                reference,
                &format!("in {mode:?}, {} against portable", isa.path()),
            );
        }
    }
}

#[test]
fn maxpool_backward_matches_finite_differences() {
    check_layer(
        LayerSpec::MaxPool,
        Shape::Image { h: 6, w: 4, c: 3 },
        Mode::Train,
    );
}

#[test]
fn dropout_backward_matches_finite_differences() {
    check_layer(LayerSpec::Dropout { rate: 0.5 }, IMAGE, Mode::Train);
}

#[test]
fn flatten_backward_matches_finite_differences() {
    check_layer(LayerSpec::Flatten, IMAGE, Mode::Train);
}

#[test]
fn softmax_cross_entropy_gradient_matches_finite_differences() {
    let (n, classes) = (4, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let logits: Vec<f32> = (0..n * classes)
        .map(|_| rng.random_range(-3.0..3.0f32))
        .collect();
    let labels = [3u8, 0, 9, 3];
    let mut grad = vec![0.0; n * classes];
    let metrics = softmax_cross_entropy(&logits, &labels, classes, Some(&mut grad));
    for i in 0..n * classes {
        let eval = |delta: f32| {
            let mut z = logits.clone();
            z[i] += delta;
            softmax_cross_entropy(&z, &labels, classes, None).mean_loss()
        };
        let numeric = (eval(STEP) - eval(-STEP)) / (2.0 * STEP as f64);
        assert_matches(
            numeric,
            grad[i] as f64,
            &format!("softmax-CE d/dlogit[{i}]"),
        );
    }
    // Huge logits must neither overflow nor give an infinite loss.
    let extreme = softmax_cross_entropy(&[1e30, -1e30, 0.0], &[1], 3, None);
    assert!(
        extreme.loss_sum.is_finite() && extreme.loss_sum > 1e29,
        "{extreme:?}"
    );
    assert_eq!(metrics.samples, 4);
}

#[test]
fn dropout_keeps_the_expected_share_and_scales_it() {
    let placed = PlacedLayer::new(
        "d".into(),
        LayerSpec::Dropout { rate: 0.25 },
        Shape::Flat(10_000),
    )
    .unwrap();
    let mut layer = Layer::new(
        Isa::new(CpuPath::Portable, Precision::Fp32).unwrap(),
        &placed,
        1,
    );
    let x = vec![1.0f32; 10_000];
    let mut forward = |mode: Mode| {
        let mut y = vec![0.0; 10_000];
        layer.forward(Forward {
            weights: &[],
            moving: &mut [],
            x: &x,
            y: &mut y,
            n: 1,
            mode,
            dropout_key: 1,
        });
        y
    };
    let y = forward(Mode::Train);
    let kept = y.iter().filter(|v| **v != 0.0).count();
    assert!(
        (7300..=7700).contains(&kept),
        "kept {kept} of 10000 at rate 0.25"
    );
    assert!(y
        .iter()
        .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6));
    let y = forward(Mode::Eval);
    assert!(
        y.iter().all(|v| *v == 1.0),
        "evaluation mode must be the identity"
    );
}

/// MiniVGGNet's RELU → BN → POOL → DROPOUT as the network builds it: the BN layer runs the
/// ReLU before it and the pool and dropout after it (`Layer::in_network`). Returns the placed
/// layers and the BN's index; without `dropout`, RELU → BN → POOL.
fn relu_batchnorm_pool(shape: Shape, dropout: bool) -> (Vec<PlacedLayer>, usize) {
    let mut specs = vec![LayerSpec::Relu, LayerSpec::BatchNorm, LayerSpec::MaxPool];
    if dropout {
        specs.push(LayerSpec::Dropout { rate: 0.25 });
    }
    let mut input = shape;
    let placed = specs
        .into_iter()
        .map(|spec| {
            let layer = PlacedLayer::new("l".into(), spec, input).unwrap();
            input = layer.output;
            layer
        })
        .collect();
    (placed, 1)
}

/// The BN that runs the ReLU before it and the pool (and dropout) after it, in training, on
/// every CPU path, against finite differences; 20 channels, so each path's vectors have a
/// remainder, and 5 columns, so one of them no window covers.
#[test]
fn batchnorm_running_the_pool_and_dropout_after_it_backward_matches_finite_differences() {
    let shape = Shape::Image { h: 4, w: 5, c: 20 };
    for dropout in [false, true] {
        let (placed, bn) = relu_batchnorm_pool(shape, dropout);
        for isa in fp32_paths() {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let n = 3;
            let mut case = Case::new(isa, LayerSpec::BatchNorm, shape, n, Mode::Train, &mut rng);
            case.layer = Layer::in_network(isa, &placed, bn, n);
            assert!(case.layer.is_batchnorm_with_pool());
            case.placed = placed.last().unwrap().clone();
            // |γ| well above the step: a γ near 0 reorders the taps of a window as it moves.
            for gamma in &mut case.weights[..20] {
                *gamma = gamma.signum() * (0.5 + gamma.abs());
            }
            case.r = (0..n * case.placed.output.len())
                .map(|_| rng.random_range(-1.0..1.0f32))
                .collect();
            let x = spread_input(n * shape.len(), &mut rng);
            let what = format!("ReLU, pool, dropout {dropout} inside BN, {}", isa.path());
            case.check(x, &what);
        }
    }
}

/// The fused RELU → BN → POOL → DROPOUT against the four layers apart (portable) and
/// against the portable path, bit for bit, in training and evaluation; an odd width, so one
/// column no window covers.
#[test]
fn batchnorm_with_pool_and_dropout_equals_the_layers_apart_bit_for_bit() {
    let (n, shape, key) = (4, Shape::Image { h: 6, w: 7, c: 24 }, 0xBEEF);
    let (placed, bn) = relu_batchnorm_pool(shape, true);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut draw = |len: usize, low: f32, high: f32| -> Vec<f32> {
        (0..len).map(|_| rng.random_range(low..high)).collect()
    };
    let pooled = placed[2].output.len();
    let (x, dy) = (
        draw(n * shape.len(), -1.0, 1.0),
        draw(n * pooled, -1.0, 1.0),
    );
    let (weights, moving) = (draw(2 * 24, -1.0, 1.0), draw(2 * 24, 0.5, 1.5));
    let portable = Isa::new(CpuPath::Portable, Precision::Fp32).unwrap();
    for mode in [Mode::Train, Mode::Eval] {
        let apart = |i: usize| Layer::new(portable, &placed[i], n);
        let (mut relu, mut norm, mut pool, mut drop) = (apart(0), apart(1), apart(2), apart(3));
        let zeros = |len: usize| vec![0.0; len];
        let [r, ..] = pass(&mut relu, &x, &[], &[], &zeros(x.len()), n, mode, 0);
        let [b, moving_after, ..] = pass(
            &mut norm,
            &r,
            &weights,
            &moving,
            &zeros(x.len()),
            n,
            mode,
            0,
        );
        let [p, ..] = pass(&mut pool, &b, &[], &[], &zeros(n * pooled), n, mode, 0);
        let [y, .., dp] = pass(&mut drop, &p, &[], &[], &dy, n, mode, key);
        let [.., db] = pass(&mut pool, &b, &[], &[], &dp, n, mode, 0);
        let [.., grads, dr] = pass(&mut norm, &r, &weights, &moving, &db, n, mode, 0);
        let [.., dx] = pass(&mut relu, &x, &[], &[], &dr, n, mode, 0);
        let want = [y, moving_after, grads, dx];
        for isa in fp32_paths() {
            let mut fused = Layer::in_network(isa, &placed, bn, n);
            let got = pass(&mut fused, &x, &weights, &moving, &dy, n, mode, key);
            // Evaluation's backward is never run after a pool (it records no winners).
            let compared = if mode == Mode::Train { 4 } else { 2 };
            let what = format!("in {mode:?}, {}", isa.path());
            assert_first_same_bits(compared, &got, &want, &what);
        }
    }
}
