//! `model::network_file::parse` on arbitrary text: a network file (`--model NAME.json`). Whatever the
//! input, it must return an error, never panic, overflow or allocate without bound; what parses
//! goes on to be placed and allocated, so a parsed spec must also give its summary, pass
//! `check_architecture`, and hold no more parameters than the library allows. A small one is
//! built as `train` would build it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minivgg::engine::Network;
use minivgg::model::network_file::parse;
use minivgg::engine::footprint::{check_architecture, MAX_FLOATS_PER_SAMPLE};
use minivgg::model::spec::MAX_PARAMETERS;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = parse(text, "fuzz") else {
        return;
    };
    let summary = spec.summary().expect("a parsed network has a summary");
    assert!(summary.contains("Total params"));
    let (placed, per_sample) = check_architecture(&spec).expect("a parsed network is valid");
    assert_eq!(placed.len(), spec.layers.len());
    assert!(per_sample <= MAX_FLOATS_PER_SAMPLE);
    let (trainable, moving) = spec
        .parameter_counts()
        .expect("a parsed network has counts");
    assert!(trainable + moving <= MAX_PARAMETERS);
    // Small networks are allocated and initialized, as `train` does before its first batch.
    if trainable + moving <= 1 << 16 && per_sample <= 1 << 16 {
        let net = Network::new(&spec, 2, 0).expect("a parsed network is built");
        assert_eq!(net.params.len(), trainable);
    }
});
