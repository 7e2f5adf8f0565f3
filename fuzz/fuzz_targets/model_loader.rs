//! `store::model_file::from_bytes` on arbitrary bytes: a safetensors file whose metadata holds the
//! architecture. Whatever the input, loading must return an error, never panic, abort or
//! allocate without bound (a header or an architecture claiming huge tensors is an error).
//!
//! An input that starts with `{` is also taken as the architecture's JSON alone and wrapped
//! into a safetensors file without tensors: inside a real file the JSON sits in a header whose
//! length prefix and offsets any change of length breaks, which hides it from most mutations.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minivgg::engine::Precision;
use minivgg::store::model_file::{from_bytes, read_metadata};
use std::collections::HashMap;
use std::path::Path;

fn load(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let _ = read_metadata(path, data);
    // As `evaluate` / `predict` load a model, and as a checkpoint is resumed (with its
    // optimizer state as an extra tensor).
    if let Ok(loaded) = from_bytes(path, data, 2, Precision::Fp32, &[]) {
        assert_eq!(loaded.net.params.len(), loaded.net.grads.len());
    }
    let _ = from_bytes(path, data, 3, Precision::Fp32, &["optimizer/velocity"]);
}

fuzz_target!(|data: &[u8]| {
    load(data);
    if data.first() == Some(&b'{') {
        if let Ok(spec) = std::str::from_utf8(data) {
            let metadata = HashMap::from([("minivgg_spec".to_string(), spec.to_string())]);
            let no_tensors: Vec<(&str, safetensors::tensor::TensorView<'_>)> = Vec::new();
            let file = safetensors::tensor::serialize(no_tensors, Some(metadata))
                .expect("an empty safetensors file serializes");
            load(&file);
        }
    }
});
