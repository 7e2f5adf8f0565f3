use crate::data::cifar10::CLASS_NAMES as CIFAR10_CLASS_NAMES;
use crate::data::ImageShape;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One layer of a sequential model, as the tutorial's Keras code names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Square kernel, stride 1, "same" padding, with bias.
    Conv2d {
        filters: usize,
        kernel: usize,
    },
    Relu,
    /// Per channel after a convolution, per feature after a dense layer.
    BatchNorm,
    /// 2×2 window, stride 2.
    MaxPool,
    Dropout {
        rate: f32,
    },
    Flatten,
    Dense {
        units: usize,
    },
    /// The last layer; training fuses it with categorical cross-entropy.
    Softmax,
}

/// The shape of one sample: an image (height, width, channels: NHWC without the N) or a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    Image { h: usize, w: usize, c: usize },
    Flat(usize),
}

impl Shape {
    pub fn len(self) -> usize {
        match self {
            Shape::Image { h, w, c } => h * w * c,
            Shape::Flat(n) => n,
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The size of the last axis: channels of an image, features of a vector.
    pub fn channels(self) -> usize {
        match self {
            Shape::Image { c, .. } => c,
            Shape::Flat(n) => n,
        }
    }
}

impl From<ImageShape> for Shape {
    fn from(image: ImageShape) -> Shape {
        Shape::Image {
            h: image.height,
            w: image.width,
            c: image.channels,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Image { h, w, c } => write!(f, "(None, {h}, {w}, {c})"),
            Shape::Flat(n) => write!(f, "(None, {n})"),
        }
    }
}

/// Whether a parameter tensor is changed by the optimizer (kernels, biases, BN gamma and beta)
/// or by the forward pass (BN moving statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Trainable,
    Moving,
}

/// One named parameter tensor of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Keras' weight name within the layer: kernel, bias, gamma, beta, moving_mean, moving_variance.
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub input: Shape,
    pub classes: usize,
    pub layers: Vec<LayerSpec>,
    /// The names of the classes it was trained on, in label order (empty until it is built
    /// for a data set; models saved before they were stored were all CIFAR-10's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_names: Vec<String>,
}

/// A layer placed in a model: its Keras name and the shapes around it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedLayer {
    pub name: String,
    pub spec: LayerSpec,
    pub input: Shape,
    pub output: Shape,
    pub params: Vec<ParamSpec>,
}

impl PlacedLayer {
    /// Places `spec` after a layer whose output is `input`, checking that it fits.
    pub fn new(name: String, spec: LayerSpec, input: Shape) -> Result<PlacedLayer> {
        let output = spec.output_shape(input)?;
        let params = spec.params(input, output);
        Ok(PlacedLayer {
            name,
            spec,
            input,
            output,
            params,
        })
    }
}

/// What a kind of layer is called where it is named: one row of [`LAYER_KINDS`] per
/// [`LayerSpec`] variant.
#[derive(Debug)]
pub struct LayerKind {
    /// Its `"type"` in a network file and in saved architectures (serde's tag).
    pub type_name: &'static str,
    /// Its other fields in a network file.
    pub fields: &'static [&'static str],
    /// Keras' class name, and the prefix of Keras' automatic layer names.
    pub keras_class: &'static str,
    pub keras_prefix: &'static str,
}

/// Every kind of layer, in [`LayerSpec`]'s order.
pub const LAYER_KINDS: [LayerKind; 8] = [
    LayerKind::new("conv2d", &["filters", "kernel"], "Conv2D", "conv2d"),
    LayerKind::new("relu", &[], "Activation", "activation"),
    LayerKind::new(
        "batch_norm",
        &[],
        "BatchNormalization",
        "batch_normalization",
    ),
    LayerKind::new("max_pool", &[], "MaxPooling2D", "max_pooling2d"),
    LayerKind::new("dropout", &["rate"], "Dropout", "dropout"),
    LayerKind::new("flatten", &[], "Flatten", "flatten"),
    LayerKind::new("dense", &["units"], "Dense", "dense"),
    LayerKind::new("softmax", &[], "Activation", "activation"),
];

impl LayerKind {
    const fn new(
        type_name: &'static str,
        fields: &'static [&'static str],
        keras_class: &'static str,
        keras_prefix: &'static str,
    ) -> LayerKind {
        LayerKind {
            type_name,
            fields,
            keras_class,
            keras_prefix,
        }
    }
}

impl LayerSpec {
    /// Its row of [`LAYER_KINDS`].
    pub fn kind(&self) -> &'static LayerKind {
        &LAYER_KINDS[match self {
            LayerSpec::Conv2d { .. } => 0,
            LayerSpec::Relu => 1,
            LayerSpec::BatchNorm => 2,
            LayerSpec::MaxPool => 3,
            LayerSpec::Dropout { .. } => 4,
            LayerSpec::Flatten => 5,
            LayerSpec::Dense { .. } => 6,
            LayerSpec::Softmax => 7,
        }]
    }

    /// The layer's `"type"` in a network file and in saved architectures.
    pub fn type_name(&self) -> &'static str {
        self.kind().type_name
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(match (self, input) {
            (&LayerSpec::Conv2d { filters, kernel }, Shape::Image { h, w, .. }) => {
                if filters == 0 {
                    bail!("needs at least 1 filter");
                }
                if kernel.is_multiple_of(2) {
                    bail!("needs an odd kernel size (\"same\" padding), got {kernel}");
                }
                if kernel > h || kernel > w {
                    bail!("its {kernel}×{kernel} kernel is larger than its {h}×{w} input");
                }
                Shape::Image { h, w, c: filters }
            }
            (LayerSpec::MaxPool, Shape::Image { h, w, c }) => {
                if h < 2 || w < 2 {
                    bail!("needs an input of at least 2×2, got {h}×{w}");
                }
                Shape::Image {
                    h: h / 2,
                    w: w / 2,
                    c,
                }
            }
            (LayerSpec::Conv2d { .. } | LayerSpec::MaxPool, Shape::Flat(_)) => {
                bail!("needs an image input, got a vector")
            }
            (LayerSpec::Flatten, s) => Shape::Flat(s.len()),
            (LayerSpec::Dense { units }, Shape::Flat(_)) => {
                if *units == 0 {
                    bail!("needs at least 1 unit");
                }
                Shape::Flat(*units)
            }
            (LayerSpec::Dense { .. }, image) => {
                bail!("needs a flattened input, got {image}; put a flatten layer before it")
            }
            (LayerSpec::Dropout { rate }, s) => {
                if !(0.0..1.0).contains(rate) {
                    bail!("needs a rate in [0, 1), got {rate}");
                }
                s
            }
            (LayerSpec::Relu | LayerSpec::BatchNorm | LayerSpec::Softmax, s) => s,
        })
    }

    fn params(&self, input: Shape, output: Shape) -> Vec<ParamSpec> {
        let p = |name, shape, kind| ParamSpec { name, shape, kind };
        match *self {
            LayerSpec::Conv2d { filters, kernel } => vec![
                p(
                    "kernel",
                    vec![kernel, kernel, input.channels(), filters],
                    ParamKind::Trainable,
                ),
                p("bias", vec![filters], ParamKind::Trainable),
            ],
            LayerSpec::Dense { units } => vec![
                p("kernel", vec![input.len(), units], ParamKind::Trainable),
                p("bias", vec![units], ParamKind::Trainable),
            ],
            LayerSpec::BatchNorm => {
                let c = output.channels();
                vec![
                    p("gamma", vec![c], ParamKind::Trainable),
                    p("beta", vec![c], ParamKind::Trainable),
                    p("moving_mean", vec![c], ParamKind::Moving),
                    p("moving_variance", vec![c], ParamKind::Moving),
                ]
            }
            _ => Vec::new(),
        }
    }
}

/// The most any one size of a stored architecture may be (a side or the channels of the input,
/// classes, filters, kernel, units): small enough that no shape or parameter count that
/// [`ModelSpec::place`] works out from them can overflow.
pub const MAX_ARCH_SIZE: usize = u16::MAX as usize;
/// The most parameters (trainable and moving, each an f32, each kept again for its gradient
/// and the optimizer) an architecture from outside may have: 2^28, 1 GiB of weights, about
/// twice VGG16 and 128 times MiniVGGNet.
pub const MAX_PARAMETERS: usize = 1 << 28;
impl ModelSpec {
    /// Checks an architecture that came from outside (a saved model, a network file) before
    /// anything is allocated for it: each of its sizes (at most [`MAX_ARCH_SIZE`]), its layers
    /// ([`ModelSpec::place`], whose layers it returns) and its parameter count (at most
    /// [`MAX_PARAMETERS`]). The engine adds what its buffers need per sample
    /// (`engine::footprint::check_architecture`).
    pub fn check_sizes(&self) -> Result<Vec<PlacedLayer>> {
        check_arch_sizes(self)?;
        let placed = self.place()?;
        let params = parameter_count(&placed);
        if params > MAX_PARAMETERS as u128 {
            bail!("{params} parameters, more than the {MAX_PARAMETERS} allowed");
        }
        Ok(placed)
    }

    /// Checks the layer list and works out every layer's name, shapes and parameters. Errors
    /// name the layer by its number (from 1) and type.
    pub fn place(&self) -> Result<Vec<PlacedLayer>> {
        if self.input.is_empty() || self.classes == 0 {
            bail!("the model has an empty input shape or no classes");
        }
        let Some(last) = self.layers.last() else {
            bail!("the model has no layers");
        };
        let at = |i: usize, layer: &LayerSpec| format!("layer {} ({})", i + 1, layer.type_name());
        let end = self.layers.len() - 1;
        if *last != LayerSpec::Softmax {
            bail!("{}: the last layer must be softmax", at(end, last));
        }
        let mut counters = std::collections::HashMap::new();
        let mut shape = self.input;
        let mut placed = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            if *layer == LayerSpec::Softmax && i != end {
                bail!("{}: softmax may only be the last layer", at(i, layer));
            }
            let prefix = layer.kind().keras_prefix;
            let count = counters.entry(prefix).or_insert(0);
            *count += 1;
            let layer = PlacedLayer::new(format!("{prefix}_{count}"), layer.clone(), shape)
                .map_err(|e| anyhow::anyhow!("{}: {e}", at(i, layer)))?;
            shape = layer.output;
            placed.push(layer);
        }
        if shape != Shape::Flat(self.classes) {
            bail!(
                "{}: the output is {shape}, expected {} classes",
                at(end, last),
                self.classes
            );
        }
        Ok(placed)
    }

    /// Keras' `model.summary()` table, at least its 65 columns, each column as wide as its
    /// longest entry and a space (Keras cuts longer names off, such as MiniVGGNet's
    /// `batch_normalization_1 (BatchNormalization)`).
    pub fn summary(&self) -> Result<String> {
        let placed = self.place()?;
        let rows: Vec<(String, String, usize)> = placed
            .iter()
            .map(|layer| {
                let label = format!("{} ({})", layer.name, layer.spec.kind().keras_class);
                let count = layer.params.iter().map(ParamSpec::len).sum();
                (label, layer.output.to_string(), count)
            })
            .collect();
        let widest = |column: fn(&(String, String, usize)) -> usize, least| {
            rows.iter()
                .map(column)
                .map(|w| w + 1)
                .fold(least, usize::max)
        };
        let label_width = widest(|row| row.0.chars().count(), 29);
        let shape_width = widest(|row| row.1.chars().count(), 26);
        let width = label_width + shape_width + 10;
        let rule = "_".repeat(width);
        let double = "=".repeat(width);
        let mut out = format!("Model: \"{}\"\n{rule}\n", self.name);
        out += &format!(
            "{:<label_width$}{:<shape_width$}{:<10}\n{double}\n",
            "Layer (type)", "Output Shape", "Param #"
        );
        let (mut trainable, mut moving) = (0usize, 0usize);
        for (i, (layer, (label, shape, count))) in placed.iter().zip(&rows).enumerate() {
            for p in &layer.params {
                match p.kind {
                    ParamKind::Trainable => trainable += p.len(),
                    ParamKind::Moving => moving += p.len(),
                }
            }
            out += &format!("{label:<label_width$}{shape:<shape_width$}{count:<10}\n");
            out += if i + 1 == placed.len() {
                &double
            } else {
                &rule
            };
            out += "\n";
        }
        out += &format!("Total params: {}\n", thousands(trainable + moving));
        out += &format!("Trainable params: {}\n", thousands(trainable));
        out += &format!("Non-trainable params: {}\n{rule}\n", thousands(moving));
        Ok(out)
    }

    /// The same network with its batch-normalization layers removed, named NAME_no_bn: the
    /// tutorial's ablation.
    pub fn without_batch_norm(&self) -> ModelSpec {
        ModelSpec {
            name: format!("{}_no_bn", self.name),
            layers: self
                .layers
                .iter()
                .filter(|l| **l != LayerSpec::BatchNorm)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// The shape of the images it takes; an error for a network that takes vectors.
    pub fn image_shape(&self) -> Result<ImageShape> {
        match self.input {
            Shape::Image { h, w, c } => Ok(ImageShape {
                height: h,
                width: w,
                channels: c,
            }),
            Shape::Flat(_) => bail!("{} takes vectors, not images", self.name),
        }
    }

    /// The names of its classes: those it was trained on, else CIFAR-10's for a 10-class model
    /// (every model saved before the names were stored), else `class 0`, `class 1`, ….
    pub fn class_names(&self) -> Vec<String> {
        if self.class_names.len() == self.classes {
            return self.class_names.clone();
        }
        if self.classes == CIFAR10_CLASS_NAMES.len() {
            return CIFAR10_CLASS_NAMES.map(String::from).to_vec();
        }
        (0..self.classes).map(|i| format!("class {i}")).collect()
    }

    /// (trainable, non-trainable) parameter counts.
    pub fn parameter_counts(&self) -> Result<(usize, usize)> {
        let mut counts = (0, 0);
        for p in self.place()?.iter().flat_map(|l| l.params.iter()) {
            match p.kind {
                ParamKind::Trainable => counts.0 += p.len(),
                ParamKind::Moving => counts.1 += p.len(),
            }
        }
        Ok(counts)
    }
}

/// 2171178 → "2,171,178", as Keras prints counts.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The parameters (trainable and moving) of `placed` layers. In u128: a tensor's sizes (each
/// at most 2^16, an input's length at most 2^48) multiply to at most 2^64, and place() gives
/// fewer than 2^32 tensors.
pub fn parameter_count(placed: &[PlacedLayer]) -> u128 {
    placed
        .iter()
        .flat_map(|l| &l.params)
        .map(|p| p.shape.iter().map(|&d| d as u128).product::<u128>())
        .sum()
}

/// Rejects any size above [`MAX_ARCH_SIZE`], so that placing the architecture cannot overflow.
fn check_arch_sizes(spec: &ModelSpec) -> Result<()> {
    let too_big = |n: usize| n > MAX_ARCH_SIZE;
    let mut sizes = vec![("classes", spec.classes)];
    match spec.input {
        Shape::Image { h, w, c } => sizes.extend([
            ("input height", h),
            ("input width", w),
            ("input channels", c),
        ]),
        Shape::Flat(n) => sizes.push(("input size", n)),
    }
    if let Some((what, n)) = sizes.into_iter().find(|&(_, n)| too_big(n)) {
        bail!("{what} {n}, more than {MAX_ARCH_SIZE}");
    }
    for (i, layer) in spec.layers.iter().enumerate() {
        let sizes = match *layer {
            LayerSpec::Conv2d { filters, kernel } => vec![("filters", filters), ("kernel", kernel)],
            LayerSpec::Dense { units } => vec![("units", units)],
            _ => continue,
        };
        if let Some((what, n)) = sizes.into_iter().find(|&(_, n)| too_big(n)) {
            let kind = layer.type_name();
            bail!(
                "layer {} ({kind}): {n} {what}, more than {MAX_ARCH_SIZE}",
                i + 1
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{LayerSpec, LAYER_KINDS};

    /// One of each variant.
    fn every_kind() -> Vec<LayerSpec> {
        vec![
            LayerSpec::Conv2d {
                filters: 4,
                kernel: 3,
            },
            LayerSpec::Relu,
            LayerSpec::BatchNorm,
            LayerSpec::MaxPool,
            LayerSpec::Dropout { rate: 0.5 },
            LayerSpec::Flatten,
            LayerSpec::Dense { units: 7 },
            LayerSpec::Softmax,
        ]
    }

    /// The table names each variant as its saved form does: serde's tag is the type name and
    /// its other keys are the fields, in order, one row per variant.
    #[test]
    fn each_layer_kind_names_its_variant_as_saved_architectures_do() {
        let layers = every_kind();
        assert_eq!(layers.len(), LAYER_KINDS.len());
        for (layer, row) in layers.iter().zip(&LAYER_KINDS) {
            assert!(std::ptr::eq(layer.kind(), row), "{layer:?}: row {row:?}");
            let saved = serde_json::to_value(layer).unwrap();
            let saved = saved.as_object().unwrap();
            assert_eq!(saved["type"], row.type_name, "{layer:?}");
            let fields: Vec<&str> = saved
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "type")
                .collect();
            let mut expected = row.fields.to_vec();
            expected.sort_unstable();
            assert_eq!(fields, expected, "{layer:?}");
        }
    }
}
