//! A trained network as an ONNX model (opset 13), for runtimes elsewhere: onnxruntime,
//! OpenCV's dnn, tract, …
//!
//! The graph computes what [`Network::forward`] computes in evaluation: batch normalization
//! with its moving statistics (epsilon 1e-3), dropout left out. Its input `input` is the batch
//! as minivgg and the tutorial's Keras take it, float32 NHWC `[batch, 32, 32, 3]`, pixels/255;
//! its output `probabilities` is float32 `[batch, classes]`; `batch` is a dynamic dimension.
//!
//! ONNX's convolutions and pools work on NCHW, so the graph transposes the input once, runs the
//! convolution stack in NCHW (kernels stored OIHW) and transposes back to NHWC before Flatten,
//! which then flattens in Keras' order and the dense kernels apply as they are. Nodes and
//! initializers carry the Keras names (`conv2d_1`, `conv2d_1/kernel`, …). The messages are
//! prost's types for ONNX's own schema, `proto/onnx.proto` (see `build.rs`).

use crate::engine::layers::batchnorm::EPSILON;
use crate::engine::Network;
use crate::fsutil::atomic_write_bytes;
use crate::model::spec::{LayerSpec, PlacedLayer};
use crate::model::Shape;
use anyhow::{anyhow, Result};
use prost::Message;
use std::path::Path;

/// The types `build.rs` generates from `proto/onnx.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::attribute_proto::AttributeType;
use proto::tensor_proto::DataType;
use proto::tensor_shape_proto::{dimension, Dimension};
use proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The operator set the graph is written against.
pub const OPSET: i64 = 13;
/// The IR version of the vendored schema.
const IR_VERSION: i64 = proto::Version::IrVersion as i64;
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "probabilities";
/// The name of the dynamic batch dimension of the input and the output.
pub const BATCH: &str = "batch";

/// The layout of the tensor the next node reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Nhwc,
    Nchw,
    Flat,
}

/// The graph under construction: its nodes and initializers so far, and the tensor the next
/// layer reads.
struct Builder<'a> {
    net: &'a Network,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    current: String,
    layout: Layout,
}

/// The ONNX model of `net`, in evaluation semantics (see the module's note).
pub fn model(net: &Network) -> Result<ModelProto> {
    let mut graph = Builder {
        net,
        nodes: Vec::new(),
        initializers: Vec::new(),
        current: INPUT.to_string(),
        layout: match net.spec.input {
            Shape::Image { .. } => Layout::Nhwc,
            Shape::Flat(_) => Layout::Flat,
        },
    };
    let placed = net.placed();
    for (i, layer) in placed.iter().enumerate() {
        let output = if i + 1 == placed.len() {
            OUTPUT.to_string()
        } else {
            layer.name.clone()
        };
        match layer.spec {
            LayerSpec::Conv2d { kernel, .. } => graph.conv2d(layer, kernel, output)?,
            LayerSpec::Relu => graph.node("Relu", &layer.name, &[], output, vec![]),
            LayerSpec::BatchNorm => graph.batch_norm(layer, output)?,
            LayerSpec::MaxPool => graph.max_pool(layer, output),
            // Dropout is the identity in evaluation.
            LayerSpec::Dropout { .. } => {}
            LayerSpec::Flatten => graph.flatten(layer, output),
            LayerSpec::Dense { .. } => graph.dense(layer, output)?,
            LayerSpec::Softmax => {
                let axis = int("axis", -1);
                graph.node("Softmax", &layer.name, &[], output, vec![axis])
            }
        }
    }
    let input_dims = match net.spec.input {
        Shape::Image { h, w, c } => vec![h, w, c],
        Shape::Flat(n) => vec![n],
    };
    let graph = GraphProto {
        name: net.spec.name.clone(),
        node: graph.nodes,
        initializer: graph.initializers,
        input: vec![value_info(INPUT, &input_dims)],
        output: vec![value_info(OUTPUT, &[net.spec.classes])],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "minivgg".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        // What the output's columns are, for whoever runs the file: a JSON list, label order.
        metadata_props: vec![StringStringEntryProto {
            key: CLASS_NAMES_KEY.into(),
            value: serde_json::to_string(&net.spec.class_names())?,
        }],
        ..Default::default()
    })
}

/// The `metadata_props` key of the class names, a JSON list in the order of the output.
pub const CLASS_NAMES_KEY: &str = "class_names";

/// The ONNX model of `net`, serialized.
pub fn to_bytes(net: &Network) -> Result<Vec<u8>> {
    Ok(model(net)?.encode_to_vec())
}

/// Writes the ONNX model of `net` to `path`, atomically.
pub fn save(net: &Network, path: &Path) -> Result<()> {
    atomic_write_bytes(path, &to_bytes(net)?)
}

impl Builder<'_> {
    /// Appends a node reading the current tensor and then `inputs`, writing `output`, which
    /// becomes the current tensor.
    fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: String,
        attribute: Vec<AttributeProto>,
    ) {
        let mut input = vec![self.current.clone()];
        input.extend(inputs.iter().map(|s| s.to_string()));
        self.nodes.push(NodeProto {
            name: name.into(),
            op_type: op_type.into(),
            input,
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        self.current = output;
    }

    /// Transposes the current tensor to `layout` if it is in the other image layout.
    fn transpose_to(&mut self, layout: Layout, name: &str) {
        let perm = match (self.layout, layout) {
            (Layout::Nhwc, Layout::Nchw) => [0, 3, 1, 2],
            (Layout::Nchw, Layout::Nhwc) => [0, 2, 3, 1],
            _ => return,
        };
        let suffix = if layout == Layout::Nchw {
            "nchw"
        } else {
            "nhwc"
        };
        let node = format!("{name}/to_{suffix}");
        self.node(
            "Transpose",
            &node,
            &[],
            node.clone(),
            vec![ints("perm", &perm)],
        );
        self.layout = layout;
    }

    /// The values of the network's tensor `layer/param`.
    fn values(&self, layer: &PlacedLayer, param: &str) -> Result<&[f32]> {
        let name = format!("{}/{param}", layer.name);
        let t = self
            .net
            .tensors()
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| anyhow!("the network has no tensor {name}"))?;
        Ok(self.net.values(t))
    }

    /// Adds `layer/param` as an initializer of shape `dims`, its values `values` (by default
    /// the network's own); returns its name.
    fn initializer(
        &mut self,
        layer: &PlacedLayer,
        param: &str,
        dims: &[usize],
        values: Option<Vec<f32>>,
    ) -> Result<String> {
        let name = format!("{}/{param}", layer.name);
        let values = match values {
            Some(v) => v,
            None => self.values(layer, param)?.to_vec(),
        };
        debug_assert_eq!(values.len(), dims.iter().product::<usize>());
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        Ok(name)
    }

    /// Conv, its kernel transposed from Keras' HWIO to ONNX's OIHW, "same" padding.
    fn conv2d(&mut self, layer: &PlacedLayer, k: usize, output: String) -> Result<()> {
        self.transpose_to(Layout::Nchw, &layer.name);
        let (cin, cout) = (layer.input.channels(), layer.output.channels());
        let hwio = self.values(layer, "kernel")?;
        let mut oihw = vec![0.0; hwio.len()];
        for (idx, &v) in hwio.iter().enumerate() {
            let (o, i, x, y) = (
                idx % cout,
                idx / cout % cin,
                idx / cout / cin % k,
                idx / cout / cin / k,
            );
            oihw[((o * cin + i) * k + y) * k + x] = v;
        }
        let kernel = self.initializer(layer, "kernel", &[cout, cin, k, k], Some(oihw))?;
        let bias = self.initializer(layer, "bias", &[cout], None)?;
        let (k, pad) = (k as i64, (k / 2) as i64);
        let attributes = vec![
            ints("kernel_shape", &[k, k]),
            ints("pads", &[pad, pad, pad, pad]),
            ints("strides", &[1, 1]),
        ];
        self.node("Conv", &layer.name, &[&kernel, &bias], output, attributes);
        Ok(())
    }

    /// BatchNormalization with the moving statistics: per channel on NCHW images, per feature
    /// on `[batch, features]`.
    fn batch_norm(&mut self, layer: &PlacedLayer, output: String) -> Result<()> {
        self.transpose_to(Layout::Nchw, &layer.name);
        let c = [layer.output.channels()];
        let mut inputs = Vec::new();
        for param in ["gamma", "beta", "moving_mean", "moving_variance"] {
            inputs.push(self.initializer(layer, param, &c, None)?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let epsilon = float("epsilon", EPSILON as f32);
        self.node(
            "BatchNormalization",
            &layer.name,
            &inputs,
            output,
            vec![epsilon],
        );
        Ok(())
    }

    /// MaxPool, 2×2 windows, stride 2, no padding (floor, as Keras' "valid").
    fn max_pool(&mut self, layer: &PlacedLayer, output: String) {
        self.transpose_to(Layout::Nchw, &layer.name);
        let attributes = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
        self.node("MaxPool", &layer.name, &[], output, attributes);
    }

    /// Flatten in Keras' NHWC order.
    fn flatten(&mut self, layer: &PlacedLayer, output: String) {
        self.transpose_to(Layout::Nhwc, &layer.name);
        self.node("Flatten", &layer.name, &[], output, vec![int("axis", 1)]);
        self.layout = Layout::Flat;
    }

    /// Gemm with Keras' `[in, units]` kernel as it is: input · kernel + bias.
    fn dense(&mut self, layer: &PlacedLayer, output: String) -> Result<()> {
        let (inputs, units) = (layer.input.len(), layer.output.len());
        let kernel = self.initializer(layer, "kernel", &[inputs, units], None)?;
        let bias = self.initializer(layer, "bias", &[units], None)?;
        self.node("Gemm", &layer.name, &[&kernel, &bias], output, vec![]);
        Ok(())
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}

/// A float32 tensor `[batch, dims…]`, batch dynamic.
fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let dim = |value| Dimension {
        value: Some(value),
        ..Default::default()
    };
    let mut shape = vec![dim(dimension::Value::DimParam(BATCH.into()))];
    shape.extend(
        dims.iter()
            .map(|&d| dim(dimension::Value::DimValue(d as i64))),
    );
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim: shape }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;

    #[test]
    fn nodes_read_like_the_model() {
        let net = Network::new(&zoo::shallownet(), 1, 1).unwrap();
        let model = model(&net).unwrap();
        let graph = model.graph.unwrap();
        let ops: Vec<(&str, &str)> = graph
            .node
            .iter()
            .map(|n| (n.name.as_str(), n.op_type.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                ("conv2d_1/to_nchw", "Transpose"),
                ("conv2d_1", "Conv"),
                ("activation_1", "Relu"),
                ("flatten_1/to_nhwc", "Transpose"),
                ("flatten_1", "Flatten"),
                ("dense_1", "Gemm"),
                ("activation_2", "Softmax"),
            ]
        );
        assert_eq!(graph.node.last().unwrap().output, [OUTPUT]);
        let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv2d_1/kernel",
                "conv2d_1/bias",
                "dense_1/kernel",
                "dense_1/bias"
            ]
        );
        assert_eq!(graph.initializer[0].dims, [32, 3, 3, 3]);
    }

    #[test]
    fn kernels_are_transposed_to_oihw() {
        let net = Network::new(&zoo::shallownet(), 1, 1).unwrap();
        let graph = model(&net).unwrap().graph.unwrap();
        let oihw: Vec<f32> = graph.initializer[0]
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let hwio = &net.params[..oihw.len()];
        // HWIO [3, 3, 3, 32] against OIHW [32, 3, 3, 3].
        for (y, x, i, o) in [(0, 0, 0, 0), (1, 2, 0, 5), (2, 1, 2, 31)] {
            assert_eq!(
                hwio[((y * 3 + x) * 3 + i) * 32 + o],
                oihw[((o * 3 + i) * 3 + y) * 3 + x]
            );
        }
    }
}
