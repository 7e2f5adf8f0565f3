//! The training loop on synthetic data: `--seed` reproduces a run bit for bit, and another
//! seed gives another run.

use minivgg::data::cifar10::{Split, IMAGE_BYTES};
use minivgg::engine::Network;
use minivgg::model::zoo;
use minivgg::train::fit::{fit, FitConfig};
use minivgg::train::history::History;
use minivgg::train::sgd::{Sgd, SgdConfig};
use rand::{Rng, SeedableRng};

fn synthetic(len: usize, seed: u64) -> Split {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Split {
        images: (0..len * IMAGE_BYTES).map(|_| rng.random()).collect(),
        labels: (0..len).map(|_| rng.random_range(0..10)).collect(),
    }
}

fn train(seed: u64) -> (Vec<f32>, Vec<f32>, History) {
    let (train, validation) = (synthetic(200, 1), synthetic(50, 2));
    let mut net = Network::new(&zoo::minivggnet(true), 64, seed).unwrap();
    let config = SgdConfig::TUTORIAL;
    let mut sgd = Sgd::new(config, net.params.len());
    let fit_config = FitConfig {
        epochs: 2,
        seed,
        progress: false,
    };
    let mut history = fit(&mut net, &mut sgd, &train, &validation, &fit_config, |_| {}).unwrap();
    history.epochs.iter_mut().for_each(|e| e.seconds = 0.0);
    (net.params, net.moving, history)
}

#[test]
fn the_same_seed_reproduces_a_run_bit_for_bit() {
    let (params_a, moving_a, history_a) = train(5);
    let (params_b, moving_b, history_b) = train(5);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&params_a), bits(&params_b));
    assert_eq!(bits(&moving_a), bits(&moving_b));
    assert_eq!(history_a, history_b);
    let (params_c, _, _) = train(6);
    assert_ne!(
        bits(&params_a),
        bits(&params_c),
        "another seed must give another run"
    );
}
