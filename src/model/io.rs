//! Trained models as safetensors: one tensor per Keras weight (`conv2d_1/kernel` in HWIO,
//! `batch_normalization_1/moving_mean`, …) and the [`ModelSpec`] as JSON in the metadata, so
//! one file rebuilds the model. Checkpoints are the same file with extra tensors and metadata.

use super::spec::ParamKind;
use super::ModelSpec;
use crate::engine::Network;
use crate::fsutil::atomic_write_bytes;
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

const SPEC_KEY: &str = "minivgg_spec";

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The network's tensors, then `extras` (name, values as a vector), with `metadata` beside
/// the architecture.
pub fn to_bytes(
    net: &Network,
    extras: &[(&str, &[f32])],
    mut metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = net
        .tensors()
        .iter()
        .map(|t| {
            let store = match t.kind {
                ParamKind::Trainable => &net.params,
                ParamKind::Moving => &net.moving,
            };
            (
                t.name.clone(),
                le_bytes(&store[t.offset..t.offset + t.len()]),
                t.shape.clone(),
            )
        })
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
    Ok(safetensors::tensor::serialize(views, Some(metadata))?)
}

pub fn save(net: &Network, path: &Path) -> Result<()> {
    atomic_write_bytes(path, &to_bytes(net, &[], HashMap::new())?)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read weights file {}", path.display()))
}

/// The string metadata of a safetensors file.
pub fn read_metadata(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

fn spec_of(path: &Path, metadata: &HashMap<String, String>) -> Result<ModelSpec> {
    let json = metadata.get(SPEC_KEY).ok_or_else(|| {
        anyhow!(
            "{}: safetensors file without a minivgg architecture ({SPEC_KEY})",
            path.display()
        )
    })?;
    let spec: ModelSpec = serde_json::from_str(json)
        .map_err(|e| anyhow!("{}: unreadable minivgg architecture: {e}", path.display()))?;
    spec.place()
        .map_err(|e| anyhow!("{}: invalid architecture: {e}", path.display()))?;
    Ok(spec)
}

/// The architecture stored in a weights file.
pub fn read_spec(path: &Path) -> Result<ModelSpec> {
    let bytes = read(path)?;
    spec_of(path, &read_metadata(path, &bytes)?)
}

/// What [`from_bytes`] rebuilds: the network, the metadata, and the extra tensors asked for.
pub struct Loaded {
    pub net: Network,
    pub metadata: HashMap<String, String>,
    pub extras: HashMap<String, Vec<f32>>,
}

fn f32s(data: &[u8]) -> impl Iterator<Item = f32> + '_ {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Rebuilds the network saved in `bytes` (read from `path`, named in errors) for batches of up
/// to `capacity`, with the extra vectors `extras` that must be there too.
pub fn from_bytes(path: &Path, bytes: &[u8], capacity: usize, extras: &[&str]) -> Result<Loaded> {
    let metadata = read_metadata(path, bytes)?;
    let spec = spec_of(path, &metadata)?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    let mut net = Network::new(&spec, capacity, 0)?;
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
        let store = match t.kind {
            ParamKind::Trainable => &mut net.params,
            ParamKind::Moving => &mut net.moving,
        };
        for (v, x) in store[t.offset..t.offset + t.len()]
            .iter_mut()
            .zip(f32s(view.data()))
        {
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
    })
}

/// Rebuilds the saved network for batches of up to `capacity` samples.
pub fn load(path: &Path, capacity: usize) -> Result<Network> {
    Ok(from_bytes(path, &read(path)?, capacity, &[])?.net)
}
