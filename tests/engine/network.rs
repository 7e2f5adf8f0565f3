//! The network runs some layers together (a ReLU inside the BatchNorm after it; a MaxPool and
//! the Dropout after it inside the BatchNorm before them; in evaluation, CONV → RELU → BN and
//! the pool as one pass). These tests run MiniVGGNet's layers one by one, each its own
//! `Layer`, and require the network's results to be the same bit for bit, for every network
//! the tests know.

use crate::common::{self, bits};
use minivgg::engine::layers::elementwise::dropout_key;
use minivgg::engine::layers::softmax::softmax_cross_entropy;
use minivgg::engine::layers::{Backward, Forward, Layer, Mode};
use minivgg::engine::Network;
use minivgg::model::ModelSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N: usize = 3;

/// The network of `spec`, its parameters and moving statistics drawn away from their initial
/// values (so that BN's γ, β, mean and variance all matter), and a random input batch.
fn network(spec: &ModelSpec) -> (Network, Vec<f32>) {
    let mut net = Network::new(spec, N, 1).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for tensor in net.tensors().to_vec() {
        let name = tensor.name.rsplit('/').next().unwrap().to_string();
        let range = tensor.offset..tensor.offset + tensor.len();
        let (store, low, high) = match name.as_str() {
            "gamma" => (&mut net.params, 0.5, 1.5),
            "beta" | "bias" => (&mut net.params, -0.2, 0.2),
            "moving_mean" => (&mut net.moving, -0.3, 0.3),
            "moving_variance" => (&mut net.moving, 0.5, 2.0),
            _ => continue,
        };
        store[range]
            .iter_mut()
            .for_each(|v| *v = rng.random_range(low..high));
    }
    let input = (0..N * spec.input.len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    (net, input)
}

/// Every layer on its own, as `Layer::new` builds it: the forward pass in `mode` with the
/// network's dropout keys, returning the layers (which keep what backward needs) and the
/// outputs of all of them, the input first.
fn forward_layer_by_layer(net: &Network, input: &[f32], mode: Mode) -> (Vec<Layer>, Vec<Vec<f32>>) {
    let (mut layers, mut acts) = (Vec::new(), vec![input.to_vec()]);
    for (i, p) in net.placed().iter().enumerate() {
        let ranges = net.layer_ranges()[i].clone();
        let mut layer = Layer::new(net.isa(), p, N);
        let mut y = vec![0.0; N * p.output.len()];
        layer.forward(Forward {
            weights: &net.params[ranges.weights],
            moving: &mut net.moving[ranges.moving].to_vec(),
            x: &acts[i],
            y: &mut y,
            n: N,
            mode,
            dropout_key: dropout_key(net.dropout_seed, net.train_steps, i),
        });
        layers.push(layer);
        acts.push(y);
    }
    (layers, acts)
}

/// Every network the tests know: the zoo's (MiniVGGNet with and without BN, ShallowNet,
/// LeNet) and examples/vgg_three_blocks.json: between them every group of layers the network
/// runs as one (a Flatten inside a ReLU, a MaxPool, or a BN that runs its pool and dropout; a
/// MaxPool with and without BN before it).
/// Those, and two whose logits come through layers that run inside the one before them (a
/// Flatten just before the softmax, after a BN that runs its pool).
fn networks() -> Vec<ModelSpec> {
    let to_logits = |layers: &str| {
        let text = format!(r#"{{"input": [4, 4, 10], "classes": 10, "layers": [{layers}]}}"#);
        minivgg::model::network_file::parse(&text, "to_logits").unwrap()
    };
    let mut networks = common::every_network();
    networks.push(to_logits(
        r#"{"type": "conv2d", "filters": 10, "kernel": 3}, {"type": "max_pool"}, {"type": "max_pool"}, {"type": "flatten"}, {"type": "softmax"}"#,
    ));
    networks.push(to_logits(
        r#"{"type": "batch_norm"}, {"type": "max_pool"}, {"type": "dropout", "rate": 0.5}, {"type": "max_pool"}, {"type": "flatten"}, {"type": "softmax"}"#,
    ));
    networks
}

#[test]
fn evaluation_forward_equals_the_layers_one_by_one() {
    for spec in networks() {
        let (mut net, input) = network(&spec);
        let (_, want) = forward_layer_by_layer(&net, &input, Mode::Eval);
        net.input_mut(N).copy_from_slice(&input);
        net.forward(N, Mode::Eval);
        let got = bits(net.probabilities(N));
        assert_eq!(got, bits(want.last().unwrap()), "{}", spec.name);
    }
}

#[test]
fn training_gradients_equal_the_layers_one_by_one() {
    for spec in networks() {
        let (mut net, input) = network(&spec);
        let labels = [3u8, 0, 7];
        let (mut layers, acts) = forward_layer_by_layer(&net, &input, Mode::Train);
        // Backward from the logits' gradient, as `Network::train_batch` starts it.
        let last = layers.len() - 1;
        let mut dy = vec![0.0; acts[last].len()];
        softmax_cross_entropy(&acts[last], &labels, net.classes(), Some(&mut dy));
        let mut grads = vec![0.0; net.grads.len()];
        for i in (0..last).rev() {
            let weights = net.layer_ranges()[i].weights.clone();
            let mut dx = vec![0.0; acts[i].len()];
            layers[i].backward(Backward {
                weights: &net.params[weights.clone()],
                grads: &mut grads[weights],
                x: &acts[i],
                y: &acts[i + 1],
                dy: &dy,
                dx: (i > 0).then_some(&mut dx[..]),
                n: N,
            });
            dy = dx;
        }
        net.input_mut(N).copy_from_slice(&input);
        net.train_batch(&labels);
        assert_eq!(bits(&net.grads), bits(&grads), "{}", spec.name);
    }
}
