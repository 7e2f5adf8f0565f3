//! Trained models as safetensors: one tensor per Keras weight (`conv2d_1/kernel` in HWIO,
//! `batch_normalization_1/moving_mean`, …) and the [`ModelSpec`] as JSON in the metadata, so
//! one file rebuilds the model.

use super::spec::ParamKind;
use super::ModelSpec;
use crate::engine::Network;
use crate::fsutil::atomic_write_bytes;
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

const SPEC_KEY: &str = "minivgg_spec";

pub fn save(net: &Network, path: &Path) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = net
        .tensors()
        .iter()
        .map(|t| {
            let store = match t.kind {
                ParamKind::Trainable => &net.params,
                ParamKind::Moving => &net.moving,
            };
            let data = store[t.offset..t.offset + t.len()]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (t.name.clone(), data, t.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let metadata = HashMap::from([(SPEC_KEY.to_string(), serde_json::to_string(&net.spec)?)]);
    let file = safetensors::tensor::serialize(views, Some(metadata))?;
    atomic_write_bytes(path, &file)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read weights file {}", path.display()))
}

fn spec_from_bytes(path: &Path, bytes: &[u8]) -> Result<ModelSpec> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    let json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SPEC_KEY))
        .ok_or_else(|| {
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
    spec_from_bytes(path, &read(path)?)
}

/// Rebuilds the saved network for batches of up to `capacity` samples.
pub fn load(path: &Path, capacity: usize) -> Result<Network> {
    let bytes = read(path)?;
    let spec = spec_from_bytes(path, &bytes)?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("{}: not a safetensors file ({e})", path.display()))?;
    let mut net = Network::new(&spec, capacity, 0)?;
    for t in net.tensors().to_vec() {
        let view = file
            .tensor(&t.name)
            .map_err(|_| anyhow!("{}: tensor {} is missing", path.display(), t.name))?;
        if view.dtype() != Dtype::F32 || view.shape() != t.shape.as_slice() {
            bail!(
                "{}: tensor {} is {:?} {:?}, the architecture needs F32 {:?}",
                path.display(),
                t.name,
                view.dtype(),
                view.shape(),
                t.shape
            );
        }
        let store = match t.kind {
            ParamKind::Trainable => &mut net.params,
            ParamKind::Moving => &mut net.moving,
        };
        for (v, b) in store[t.offset..t.offset + t.len()]
            .iter_mut()
            .zip(view.data().chunks_exact(4))
        {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    let expected = net.tensors().len();
    if file.len() != expected {
        bail!(
            "{}: holds {} tensors, the architecture has {expected}",
            path.display(),
            file.len()
        );
    }
    Ok(net)
}
