//! SGD with momentum, Nesterov and time-based decay, in Keras' form:
//! `lr_t = lr / (1 + decay·t)` with t the updates done so far, `v ← m·v − lr_t·g`, then
//! `w ← w + m·v − lr_t·g` (Nesterov) or `w ← w + v`. Optionally (`--schedule linear`) the
//! rate is also scaled by `1 − t/T`, reaching zero after the run's last update T. With
//! `--weight-decay wd`, `g` is `g + wd·w` for every trainable parameter, as PyTorch's
//! `SGD(weight_decay=wd)` (Keras' `l2(wd / 2)` on every weight; the printed loss leaves the
//! penalty out, as PyTorch's does). GPU twin: `cuda/sgd.rs`.

use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub decay: f32,
    /// T of the linear schedule: when non-zero, `lr_t` is also scaled by `max(0, 1 − t/T)`.
    #[serde(default)]
    pub anneal_updates: u64,
    /// `wd` of `g + wd·w`; 0 in the tutorial and in checkpoints from before the flag.
    #[serde(default)]
    pub weight_decay: f32,
}

impl SgdConfig {
    /// `lr_t` after `t` updates. The CUDA kernel `sgd_step` computes the same in f64.
    pub fn lr_at(&self, t: u64) -> f32 {
        let t = t as f64;
        let anneal = match self.anneal_updates {
            0 => 1.0,
            total => (1.0 - t / total as f64).max(0.0),
        };
        (self.lr as f64 / (1.0 + self.decay as f64 * t) * anneal) as f32
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    pub config: SgdConfig,
    /// Updates done so far (Keras' `iterations`).
    pub iterations: u64,
    pub velocity: Vec<f32>,
}

impl SgdConfig {
    /// The tutorial's optimizer: `SGD(lr=0.01, decay=0.01 / 40, momentum=0.9, nesterov=True)`.
    pub const TUTORIAL: SgdConfig = SgdConfig {
        lr: 0.01,
        momentum: 0.9,
        nesterov: true,
        decay: 0.01 / 40.0,
        anneal_updates: 0,
        weight_decay: 0.0,
    };
}

const CHUNK: usize = 1 << 14;

impl Sgd {
    pub fn new(config: SgdConfig, params: usize) -> Sgd {
        Sgd {
            config,
            iterations: 0,
            velocity: vec![0.0; params],
        }
    }

    /// The learning rate the next update will use.
    pub fn current_lr(&self) -> f32 {
        self.config.lr_at(self.iterations)
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let lr = self.current_lr();
        let SgdConfig {
            momentum,
            nesterov,
            weight_decay,
            ..
        } = self.config;
        params
            .par_chunks_mut(CHUNK)
            .zip(self.velocity.par_chunks_mut(CHUNK))
            .zip(grads.par_chunks(CHUNK))
            .for_each(|((w, v), g)| {
                for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
                    let g = g + weight_decay * *w;
                    *v = momentum * *v - lr * g;
                    *w += if nesterov { momentum * *v - lr * g } else { *v };
                }
            });
        self.iterations += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_steps_match_hand_computed_keras_values() {
        // lr 0.1, momentum 0.9, decay 0.5, w0 = 1, g = 2 at every step:
        // t=0: lr 0.1,   v = −0.2,                         w = 1 + 0.9·(−0.2) − 0.2 = 0.62
        // t=1: lr 0.1/1.5, v = 0.9·(−0.2) − 0.1333… = −0.3133…, w = 0.62 − 0.28200 − 0.13333 = 0.204666…
        // t=2: lr 0.05,  v = 0.9·(−0.31333) − 0.1 = −0.382,  w = 0.204666… − 0.3438 − 0.1 = −0.239133…
        let config = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            decay: 0.5,
            anneal_updates: 0,
            weight_decay: 0.0,
        };
        let mut sgd = Sgd::new(config, 1);
        let mut w = [1.0f32];
        let expected = [
            (0.62, -0.2),
            (0.204_666_7, -0.313_333_3),
            (-0.239_133_3, -0.382),
        ];
        for (step, (want_w, want_v)) in expected.into_iter().enumerate() {
            sgd.step(&mut w, &[2.0]);
            assert!(
                (w[0] - want_w).abs() < 1e-6,
                "step {step}: w {} vs {want_w}",
                w[0]
            );
            assert!(
                (sgd.velocity[0] - want_v).abs() < 1e-6,
                "step {step}: v {} vs {want_v}",
                sgd.velocity[0]
            );
        }
        assert_eq!(sgd.iterations, 3);
        assert!((sgd.current_lr() - 0.1 / 2.5).abs() < 1e-9);
    }

    #[test]
    fn without_nesterov_the_velocity_is_the_step() {
        let config = SgdConfig {
            lr: 0.1,
            momentum: 0.5,
            nesterov: false,
            decay: 0.0,
            anneal_updates: 0,
            weight_decay: 0.0,
        };
        let mut sgd = Sgd::new(config, 1);
        let mut w = [0.0f32];
        sgd.step(&mut w, &[1.0]); // v = −0.1, w = −0.1
        sgd.step(&mut w, &[1.0]); // v = −0.05 − 0.1 = −0.15, w = −0.25
        assert!((w[0] + 0.25).abs() < 1e-7, "{}", w[0]);
    }

    #[test]
    fn the_linear_schedule_falls_to_zero_at_the_last_update() {
        // lr 0.1, decay 0.5, T = 4: t=0 → 0.1, t=2 → 0.1/2 · 1/2 = 0.025, t ≥ 4 → 0.
        let config = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            decay: 0.5,
            anneal_updates: 4,
            weight_decay: 0.0,
        };
        let rates: Vec<f32> = (0..6).map(|t| config.lr_at(t)).collect();
        let want = [0.1, 0.1 / 1.5 * 0.75, 0.025, 0.1 / 2.5 * 0.25, 0.0, 0.0];
        for (t, (got, want)) in rates.iter().zip(want).enumerate() {
            assert!((got - want).abs() < 1e-7, "t={t}: {got} vs {want}");
        }
    }

    #[test]
    fn weight_decay_adds_wd_times_the_weight_to_the_gradient() {
        // lr 0.1, momentum 0.9, wd 0.5, w0 = 2, g = 1 at every step, no decay:
        // t=0: g' = 1 + 0.5·2 = 2,      v = −0.2,  w = 2 + 0.9·(−0.2) − 0.2 = 1.62
        // t=1: g' = 1 + 0.5·1.62 = 1.81, v = −0.18 − 0.181 = −0.361,
        //      w = 1.62 − 0.3249 − 0.181 = 1.1141
        let config = SgdConfig {
            weight_decay: 0.5,
            decay: 0.0,
            lr: 0.1,
            ..SgdConfig::TUTORIAL
        };
        let mut sgd = Sgd::new(config, 1);
        let mut w = [2.0f32];
        sgd.step(&mut w, &[1.0]);
        assert!((w[0] - 1.62).abs() < 1e-6, "{}", w[0]);
        sgd.step(&mut w, &[1.0]);
        assert!((w[0] - 1.1141).abs() < 1e-6, "{}", w[0]);
        assert!(
            (sgd.velocity[0] + 0.361).abs() < 1e-6,
            "{}",
            sgd.velocity[0]
        );
    }

    #[test]
    fn a_checkpoint_from_before_weight_decay_reads_as_none() {
        let json = serde_json::to_string(&SgdConfig::TUTORIAL).unwrap();
        let old = json.replace(",\"weight_decay\":0.0", "");
        assert_ne!(old, json);
        let config: SgdConfig = serde_json::from_str(&old).unwrap();
        assert_eq!(config, SgdConfig::TUTORIAL);
    }
}
