//! Trained models as safetensors: one tensor per Keras weight (`conv2d_1/kernel` in HWIO,
//! `batch_normalization_1/moving_mean`, …) and the [`ModelSpec`] as JSON in the metadata, so
//! one file rebuilds the model. Checkpoints are the same file with extra tensors and metadata.
//!
//! Every file written here carries an xxh3-64 checksum of each tensor's bytes (metadata
//! [`CHECKSUMS_KEY`]: a JSON map from tensor name to 16 hex digits). Loading verifies them, in
//! the file's order (by data offset), and refuses a damaged tensor by name, and any tensor
//! that holds a NaN or an infinity. A file without checksums (another tool's, an older
//! minivgg's) still loads: [`Loaded::verified`] says it could not be checked.

use crate::engine::footprint::{check_architecture, MAX_BATCH_FLOATS};
use crate::engine::{Network, Precision};
use crate::fsutil::{atomic_write_bytes, read_regular};
use crate::model::spec::parameter_count;
use crate::model::ModelSpec;
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const SPEC_KEY: &str = "minivgg_spec";
/// The metadata key of the tensors' checksums: a JSON map from tensor name to [`checksum`].
pub const CHECKSUMS_KEY: &str = "minivgg_checksums";

/// The checksum of a tensor's bytes, as stored under [`CHECKSUMS_KEY`]: xxh3-64 in 16
/// lowercase hex digits. It is there to catch accidental damage (a bad disk, a broken copy),
/// not forgery: whoever edits the file can rewrite it.
pub fn checksum(data: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data))
}

/// The line printed when a file without checksums is loaded.
pub fn unverified_warning(path: &Path) -> String {
    format!(
        "[WARN] {} has no checksums (written by an older minivgg or another tool): its tensors could not be verified",
        path.display()
    )
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The network's tensors, then `extras` (name, values as a vector), with `metadata` beside
/// the architecture and the checksums of all the tensors.
pub fn to_bytes(
    net: &Network,
    extras: &[(&str, &[f32])],
    mut metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = net
        .tensors()
        .iter()
        .map(|t| (t.name.clone(), le_bytes(net.values(t)), t.shape.clone()))
        .collect();
    tensors.extend(
        extras
            .iter()
            .map(|(name, values)| (name.to_string(), le_bytes(values), vec![values.len()])),
    );
    let views = tensors
        .iter()
        .map(|(name, data, shape)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    metadata.insert(SPEC_KEY.to_string(), serde_json::to_string(&net.spec)?);
    let checksums: BTreeMap<&str, String> = tensors
        .iter()
        .map(|(name, data, _)| (name.as_str(), checksum(data)))
        .collect();
    metadata.insert(
        CHECKSUMS_KEY.to_string(),
        serde_json::to_string(&checksums)?,
    );
    sorted_header(safetensors::tensor::serialize(views, Some(metadata))?)
}

/// One tensor's entry in a safetensors header, in the format's field order.
#[derive(serde::Serialize, serde::Deserialize)]
struct HeaderEntry {
    dtype: serde_json::Value,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// The header of a safetensors file with its keys in order.
#[derive(serde::Serialize, serde::Deserialize)]
struct SortedHeader {
    #[serde(rename = "__metadata__")]
    metadata: BTreeMap<String, String>,
    #[serde(flatten)]
    tensors: BTreeMap<String, HeaderEntry>,
}

/// `file` with its header written again, keys sorted. safetensors writes the metadata in a
/// `HashMap`'s order, which changes from process to process, so the same model would not give
/// the same bytes twice; the data offsets are relative to the data, which stays as it is.
fn sorted_header(file: Vec<u8>) -> Result<Vec<u8>> {
    let header_len = u64::from_le_bytes(file[..8].try_into()?) as usize;
    let header: SortedHeader = serde_json::from_slice(&file[8..8 + header_len])?;
    let mut json = serde_json::to_vec(&header)?;
    // The format pads the header with spaces so that the data starts 8-byte aligned.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut sorted = Vec::with_capacity(8 + json.len() + file.len() - 8 - header_len);
    sorted.extend_from_slice(&(json.len() as u64).to_le_bytes());
    sorted.extend_from_slice(&json);
    sorted.extend_from_slice(&file[8 + header_len..]);
    Ok(sorted)
}

pub fn save(net: &Network, path: &Path) -> Result<()> {
    atomic_write_bytes(path, &to_bytes(net, &[], HashMap::new())?)
}

/// The bytes of a weights file (a model or a checkpoint).
pub fn read(path: &Path) -> Result<Vec<u8>> {
    read_regular(path).with_context(|| format!("cannot read weights file {}", path.display()))
}

/// The string metadata of a safetensors file.
pub fn read_metadata(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

/// The architecture stored in `metadata` of a file of `file_len` bytes, checked before anything
/// is allocated for it; also returns what it needs per sample
/// ([`floats_per_sample`](crate::engine::footprint::floats_per_sample)).
fn spec_of(
    path: &Path,
    metadata: &HashMap<String, String>,
    file_len: usize,
) -> Result<(ModelSpec, u128)> {
    let json = metadata.get(SPEC_KEY).ok_or_else(|| {
        anyhow!(
            "{}: safetensors file without a minivgg architecture ({SPEC_KEY})",
            path.display()
        )
    })?;
    let spec: ModelSpec = serde_json::from_str(json)
        .map_err(|e| anyhow!("{}: unreadable minivgg architecture: {e}", path.display()))?;
    let (placed, per_sample) = check_architecture(&spec)
        .map_err(|e| anyhow!("{}: invalid architecture: {e}", path.display()))?;
    // Every parameter is stored in the file as an F32: a count the file cannot hold is a
    // damaged or forged architecture, rejected before the network allocates it.
    let params = parameter_count(&placed);
    if params * 4 > file_len as u128 {
        bail!(
            "{}: invalid architecture: {params} parameters, more than the file's {file_len} bytes hold",
            path.display()
        );
    }
    Ok((spec, per_sample))
}

/// The architecture stored in the bytes of a weights file read from `path`.
pub fn spec_in(path: &Path, bytes: &[u8]) -> Result<ModelSpec> {
    Ok(spec_of(path, &read_metadata(path, bytes)?, bytes.len())?.0)
}

/// What [`from_bytes`] rebuilds: the network, the metadata, and the extra tensors asked for.
pub struct Loaded {
    pub net: Network,
    pub metadata: HashMap<String, String>,
    pub extras: HashMap<String, Vec<f32>>,
    /// Whether the file had checksums, all verified; false for a file without them.
    pub verified: bool,
}

fn f32s(data: &[u8]) -> impl Iterator<Item = f32> + '_ {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Checks every tensor of `file` in the file's order (by data offset, `order`): its bytes
/// against its checksum in `metadata`, if there are checksums, and its values, if F32, for
/// NaN and infinities. Returns whether there were checksums.
fn verify_tensors(
    path: &Path,
    file: &SafeTensors<'_>,
    order: &[String],
    metadata: &HashMap<String, String>,
) -> Result<bool> {
    let checksums: Option<BTreeMap<String, String>> = metadata
        .get(CHECKSUMS_KEY)
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| anyhow!("{}: unreadable {CHECKSUMS_KEY}: {e}", path.display()))
        })
        .transpose()?;
    if let Some(sums) = &checksums {
        if let Some(name) = sums.keys().find(|name| !order.contains(name)) {
            bail!(
                "{}: {CHECKSUMS_KEY} names tensor {name}, which the file does not hold",
                path.display()
            );
        }
    }
    for name in order {
        let view = file
            .tensor(name)
            .map_err(|_| anyhow!("{}: tensor {name} is missing", path.display()))?;
        if let Some(sums) = &checksums {
            let recorded = sums.get(name).ok_or_else(|| {
                anyhow!(
                    "{}: tensor {name} has no checksum in {CHECKSUMS_KEY}",
                    path.display()
                )
            })?;
            let actual = checksum(view.data());
            if actual != *recorded {
                bail!(
                    "{}: tensor {name} is damaged: checksum {actual}, the file records {recorded}",
                    path.display()
                );
            }
        }
        if view.dtype() == Dtype::F32 {
            if let Some((i, v)) = f32s(view.data()).enumerate().find(|(_, v)| !v.is_finite()) {
                bail!(
                    "{}: tensor {name} holds {v} at index {i}: non-finite weights are refused",
                    path.display()
                );
            }
        }
    }
    Ok(checksums.is_some())
}

/// Rebuilds the network saved in `bytes` (read from `path`, named in errors) for batches of up
/// to `capacity`, its products in `precision`, with the extra vectors `extras` that must be
/// there too. Every tensor is verified first (see the module's documentation).
pub fn from_bytes(
    path: &Path,
    bytes: &[u8],
    capacity: usize,
    precision: Precision,
    extras: &[&str],
) -> Result<Loaded> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let (spec, per_sample) = spec_of(path, &metadata, bytes.len())?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    let floats = per_sample * capacity as u128;
    if floats > MAX_BATCH_FLOATS {
        bail!(
            "{}: batches of {capacity} would need {:.1} GiB for {}, more than the {} GiB allowed",
            path.display(),
            floats as f64 * 4.0 / (1u64 << 30) as f64,
            spec.name,
            (MAX_BATCH_FLOATS * 4) >> 30
        );
    }
    let verified = verify_tensors(path, &file, &header.offset_keys(), &metadata)?;
    let mut net = Network::with_precision(&spec, capacity, 0, precision)?;
    let tensor = |name: &str| -> Result<TensorView<'_>> {
        let view = file
            .tensor(name)
            .map_err(|_| anyhow!("{}: tensor {name} is missing", path.display()))?;
        if view.dtype() != Dtype::F32 {
            bail!(
                "{}: tensor {name} is {:?}, expected F32",
                path.display(),
                view.dtype()
            );
        }
        Ok(view)
    };
    for t in net.tensors().to_vec() {
        let view = tensor(&t.name)?;
        if view.shape() != t.shape.as_slice() {
            bail!(
                "{}: tensor {} has shape {:?}, the architecture needs {:?}",
                path.display(),
                t.name,
                view.shape(),
                t.shape
            );
        }
        for (v, x) in net.values_mut(&t).iter_mut().zip(f32s(view.data())) {
            *v = x;
        }
    }
    let extras = extras
        .iter()
        .map(|name| Ok((name.to_string(), f32s(tensor(name)?.data()).collect())))
        .collect::<Result<HashMap<_, _>>>()?;
    let expected = net.tensors().len() + extras.len();
    if file.len() != expected {
        bail!(
            "{}: holds {} tensors, expected {expected}",
            path.display(),
            file.len()
        );
    }
    Ok(Loaded {
        net,
        metadata,
        extras,
        verified,
    })
}

/// Rebuilds the saved network for batches of up to `capacity` samples, its products in
/// `precision`; a file without checksums is loaded with [`unverified_warning`] on stderr.
pub fn load(path: &Path, capacity: usize, precision: Precision) -> Result<Network> {
    let loaded = from_bytes(path, &read(path)?, capacity, precision, &[])?;
    if !loaded.verified {
        eprintln!("{}", unverified_warning(path));
    }
    Ok(loaded.net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{zoo, LayerSpec};

    fn file_with_spec(json: &str) -> Vec<u8> {
        let metadata = HashMap::from([(SPEC_KEY.to_string(), json.to_string())]);
        let none: Vec<(&str, TensorView<'_>)> = Vec::new();
        safetensors::tensor::serialize(none, Some(metadata)).unwrap()
    }

    fn load_err(json: &str, capacity: usize) -> String {
        let bytes = file_with_spec(json);
        match from_bytes(
            Path::new("m.safetensors"),
            &bytes,
            capacity,
            Precision::Fp32,
            &[],
        ) {
            Ok(_) => panic!("{json} loaded"),
            Err(e) => e.to_string(),
        }
    }

    /// An architecture without parameters: `pools` max pools, then flatten and softmax.
    fn pooled(h: usize, w: usize, c: usize, pools: usize, classes: usize) -> String {
        let layers = vec![r#"{"type":"max_pool"}"#; pools].join(",");
        format!(
            r#"{{"name":"x","input":{{"Image":{{"h":{h},"w":{w},"c":{c}}}}},"classes":{classes},"layers":[{layers},{{"type":"flatten"}},{{"type":"softmax"}}]}}"#
        )
    }

    #[test]
    fn sizes_that_would_overflow_are_errors() {
        let err = load_err(&pooled(4_000_000_000_000_000_000, 4, 3, 1, 6), 1);
        assert!(
            err.contains("input height 4000000000000000000, more than 65535"),
            "{err}"
        );
    }

    #[test]
    fn buffers_beyond_the_limits_are_errors() {
        // No parameters, so the file's size does not bound it: 65535² floats for the input.
        let err = load_err(&pooled(65535, 65535, 1, 8, 255 * 255), 1);
        assert!(err.contains("floats per sample"), "{err}");
        // About 4 million floats per sample pass, but not for batches of 16384.
        let err = load_err(&pooled(1024, 1024, 2, 3, 128 * 128 * 2), 16384);
        assert!(err.contains("batches of 16384 would need"), "{err}");
        // With batches of 2 it loads (it has no tensors to miss).
        let bytes = file_with_spec(&pooled(1024, 1024, 2, 3, 128 * 128 * 2));
        assert!(from_bytes(Path::new("m"), &bytes, 2, Precision::Fp32, &[]).is_ok());
    }

    #[test]
    fn parameters_the_file_cannot_hold_are_errors() {
        let mut spec = zoo::shallownet();
        spec.layers[0] = LayerSpec::Conv2d {
            filters: 2000,
            kernel: 9,
        };
        let err = load_err(&serde_json::to_string(&spec).unwrap(), 1);
        assert!(err.contains("parameters, more than the file's"), "{err}");
    }

    #[test]
    fn saved_models_still_load() {
        for spec in [zoo::minivggnet(true), zoo::shallownet()] {
            let net = Network::new(&spec, 2, 1).unwrap();
            let bytes = to_bytes(&net, &[], HashMap::new()).unwrap();
            let loaded = from_bytes(Path::new("m"), &bytes, 64, Precision::Fp32, &[]).unwrap();
            assert_eq!(loaded.net.params, net.params);
        }
    }

    #[test]
    fn the_same_model_gives_the_same_bytes() {
        let net = Network::new(&zoo::shallownet(), 2, 1).unwrap();
        // Each HashMap iterates in its own random order; eight keys make a matching order by
        // chance unlikely (1 in 40,320).
        let metadata = || {
            (0..8)
                .map(|i| (format!("key{i}"), format!("{i}")))
                .collect()
        };
        let bytes = to_bytes(&net, &[("extra", &[1.0, 2.0])], metadata()).unwrap();
        assert!(bytes == to_bytes(&net, &[("extra", &[1.0, 2.0])], metadata()).unwrap());
        let loaded = from_bytes(Path::new("m"), &bytes, 2, Precision::Fp32, &["extra"]).unwrap();
        assert_eq!(loaded.net.params, net.params);
        assert_eq!(loaded.metadata["key7"], "7");
        assert!(loaded.verified);
    }
}
