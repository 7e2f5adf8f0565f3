//! Networks written by hand in a JSON file (`--model my_net.json`), the same layers as the
//! built-in ones:
//!
//! ```json
//! {
//!   "name": "my_net",
//!   "input": [32, 32, 3],
//!   "classes": 10,
//!   "layers": [
//!     {"type": "conv2d", "filters": 32, "kernel": 3},
//!     {"type": "relu"},
//!     {"type": "batch_norm"},
//!     {"type": "max_pool"},
//!     {"type": "dropout", "rate": 0.25},
//!     {"type": "flatten"},
//!     {"type": "dense", "units": 10},
//!     {"type": "softmax"}
//!   ]
//! }
//! ```
//!
//! `name` is optional (default: the file's stem). Layers are counted from 1 in errors, and
//! every error names the layer's number and type. A file that could be read two ways is
//! refused: a key given twice in an object (serde_json alone keeps the last), a byte order
//! mark. JSON rather than TOML: a Keras user knows it from `model.to_json()`, a list of layers
//! reads as a list, and serde_json is already here.

use super::spec::{LayerSpec, ModelSpec, Shape, LAYER_KINDS};
use crate::fsutil::read_regular_to_string;
use anyhow::{anyhow, bail, Context, Result};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;
use std::path::Path;

/// The layer types a file may use, as `"type"` names them, with their fields.
const MODEL_FIELDS: [&str; 4] = ["name", "input", "classes", "layers"];

/// Whether `--model` names a network file rather than a built-in model or a saved one.
pub fn is_network_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Reads and checks the network file at `path`; errors name the file.
pub fn read(path: &Path) -> Result<ModelSpec> {
    let text = read_regular_to_string(path)
        .with_context(|| format!("cannot read network file {}", path.display()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&text, &stem).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parses a network file's text; `default_name` names the model if the file does not.
pub fn parse(text: &str, default_name: &str) -> Result<ModelSpec> {
    let value = parse_json(text)?;
    let Value::Object(model) = value else {
        bail!("expected an object with {}", MODEL_FIELDS.join(", "));
    };
    check_fields(&model, &MODEL_FIELDS)?;
    let name = match model.get("name") {
        None => default_name.to_string(),
        // The name goes into the default output's file name: it must stay one name.
        Some(Value::String(s)) if s.contains(['/', '\\']) || s.starts_with('.') => bail!(
            "\"name\" is part of file names: it must not hold / or \\ or start with ., got {s:?}"
        ),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => bail!("\"name\" must be a non-empty string, got {other}"),
    };
    let input = match required(&model, "input")? {
        Value::Array(sides) if sides.len() == 3 => {
            let side = |i: usize| positive(&sides[i], "every size of \"input\"");
            Shape::Image {
                h: side(0)?,
                w: side(1)?,
                c: side(2)?,
            }
        }
        other => bail!("\"input\" must be [height, width, channels], got {other}"),
    };
    let classes = positive(required(&model, "classes")?, "\"classes\"")?;
    let Value::Array(layers) = required(&model, "layers")? else {
        bail!("\"layers\" must be a list of layers");
    };
    let layers = layers
        .iter()
        .enumerate()
        .map(|(i, layer)| parse_layer(layer).map_err(|e| anyhow!("layer {}{e}", i + 1)))
        .collect::<Result<Vec<_>>>()?;
    let spec = ModelSpec {
        name,
        input,
        classes,
        layers,
        class_names: Vec::new(),
    };
    spec.check_sizes()?;
    Ok(spec)
}

/// One layer; an error starts with what follows "layer N" in the message: " (type): …".
fn parse_layer(layer: &Value) -> Result<LayerSpec> {
    let Value::Object(fields) = layer else {
        bail!(": expected an object with a \"type\", got {layer}");
    };
    let kind = match fields.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => bail!(": \"type\" must be a string, got {other}"),
        None => bail!(": missing field \"type\""),
    };
    let Some(layer_kind) = LAYER_KINDS.iter().find(|k| k.type_name == kind) else {
        let known: Vec<&str> = LAYER_KINDS.iter().map(|k| k.type_name).collect();
        bail!(
            ": unknown type {kind:?}; expected one of {}",
            known.join(", ")
        );
    };
    let in_layer = |e: anyhow::Error| anyhow!(" ({kind}): {e}");
    let allowed: Vec<&str> = std::iter::once("type")
        .chain(layer_kind.fields.iter().copied())
        .collect();
    check_fields(fields, &allowed).map_err(in_layer)?;
    let count = |field: &str| {
        required(fields, field)
            .and_then(|v| positive(v, &format!("{field:?}")))
            .map_err(in_layer)
    };
    Ok(match kind {
        "conv2d" => LayerSpec::Conv2d {
            filters: count("filters")?,
            kernel: count("kernel")?,
        },
        "dense" => LayerSpec::Dense {
            units: count("units")?,
        },
        "dropout" => {
            let value = required(fields, "rate").map_err(in_layer)?;
            // Checked as the f32 it is stored in: 0.99999999 rounds to 1.
            match value.as_f64().map(|r| r as f32) {
                Some(rate) if (0.0..1.0).contains(&rate) => LayerSpec::Dropout { rate },
                _ => return Err(in_layer(anyhow!("\"rate\" must be in [0, 1), got {value}"))),
            }
        }
        "relu" => LayerSpec::Relu,
        "batch_norm" => LayerSpec::BatchNorm,
        "max_pool" => LayerSpec::MaxPool,
        "flatten" => LayerSpec::Flatten,
        _ => LayerSpec::Softmax,
    })
}

/// `text` as JSON, but refusing a key given twice in one object, which serde_json would
/// read as its last value while a reader may well take the first.
fn parse_json(text: &str) -> Result<Value> {
    // serde_json's parser refuses it too, but as "expected value at line 1 column 1", and the
    // mark is invisible in most editors.
    if text.starts_with('\u{feff}') {
        bail!("starts with a byte order mark (U+FEFF); save it as UTF-8 without one");
    }
    let twice = RefCell::new(None);
    let mut json = serde_json::Deserializer::from_str(text);
    let value = Strict {
        at: At::Top,
        twice: &twice,
    }
    .deserialize(&mut json)
    .and_then(|value| json.end().map(|()| value))
    .map_err(|e| anyhow!("not valid JSON: {e}"))?;
    match twice.into_inner() {
        Some(message) => Err(anyhow!(message)),
        None => Ok(value),
    }
}

/// Where a value is in the file, as its errors name it.
enum At {
    Top,
    Layers,
    /// The layer of this index in `"layers"`, counted from 0.
    Layer(usize),
    /// Anywhere else, in words (`"name"`, `layer 3 "rate" item 2`).
    Inside(String),
}

impl At {
    fn words(&self) -> String {
        match self {
            At::Top => String::new(),
            At::Layers => "\"layers\"".into(),
            At::Layer(i) => format!("layer {}", i + 1),
            At::Inside(words) => words.clone(),
        }
    }

    fn within(&self, step: String) -> At {
        At::Inside(match self {
            At::Top => step,
            _ => format!("{} {step}", self.words()),
        })
    }

    fn key(&self, key: &str) -> At {
        match self {
            At::Top if key == "layers" => At::Layers,
            _ => self.within(format!("{key:?}")),
        }
    }

    fn item(&self, index: usize) -> At {
        match self {
            At::Layers => At::Layer(index),
            _ => self.within(format!("item {}", index + 1)),
        }
    }
}

/// Builds the `Value` serde_json would, noting in `twice` the first object found to hold a
/// key twice (the first to close, as inner objects close before outer ones).
struct Strict<'a> {
    at: At,
    twice: &'a RefCell<Option<String>>,
}

impl Strict<'_> {
    fn to(&self, at: At) -> Self {
        Strict {
            at,
            twice: self.twice,
        }
    }

    fn note_twice(&self, key: &str, fields: &Map<String, Value>) {
        let mut twice = self.twice.borrow_mut();
        if twice.is_some() {
            return;
        }
        let what = format!("field {key:?} appears twice");
        *twice = Some(match &self.at {
            At::Top => what,
            // Named by its type as the other layer errors are, unless the type is what is
            // given twice.
            At::Layer(i) => match fields.get("type").and_then(Value::as_str) {
                Some(kind) if key != "type" && LAYER_KINDS.iter().any(|k| k.type_name == kind) => {
                    format!("layer {} ({kind}): {what}", i + 1)
                }
                _ => format!("layer {}: {what}", i + 1),
            },
            at => format!("{}: {what}", at.words()),
        });
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, json: D) -> Result<Value, D::Error> {
        json.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(b.into())
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(n.into())
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(n.into())
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(n.into())
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(s.into())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.to(self.at.item(items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        let mut twice = None;
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.to(self.at.key(&key)))?;
            if fields.insert(key.clone(), value).is_some() {
                twice.get_or_insert(key);
            }
        }
        if let Some(key) = twice {
            self.note_twice(&key, &fields);
        }
        Ok(Value::Object(fields))
    }
}

fn check_fields(fields: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => bail!(
            "unknown field {unknown:?}; expected {}",
            allowed
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => Ok(()),
    }
}

fn required<'a>(fields: &'a Map<String, Value>, field: &str) -> Result<&'a Value> {
    fields
        .get(field)
        .ok_or_else(|| anyhow!("missing field {field:?}"))
}

fn positive(value: &Value, what: &str) -> Result<usize> {
    value
        .as_u64()
        .filter(|&n| n > 0)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| anyhow!("{what} must be a positive integer, got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;

    /// A file's text for `layers`, the CIFAR input and 10 classes.
    fn file(layers: &str) -> String {
        format!(r#"{{"name": "t", "input": [32, 32, 3], "classes": 10, "layers": [{layers}]}}"#)
    }

    fn error(text: &str) -> String {
        match parse(text, "t") {
            Ok(spec) => panic!("{text} parsed as {spec:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    const TAIL: &str =
        r#"{"type": "flatten"}, {"type": "dense", "units": 10}, {"type": "softmax"}"#;

    #[test]
    fn the_example_vgg_file_parses_into_three_blocks() {
        let text = include_str!("../../examples/vgg_three_blocks.json");
        let spec = parse(text, "x").unwrap();
        assert_eq!(spec.name, "vgg_three_blocks");
        let convs = spec
            .layers
            .iter()
            .filter(|l| matches!(l, LayerSpec::Conv2d { .. }))
            .count();
        assert_eq!(convs, 6);
        assert!(spec.summary().is_ok());
    }

    #[test]
    fn a_file_of_minivggnet_is_minivggnet() {
        let layers: Vec<String> = zoo::minivggnet(true)
            .layers
            .iter()
            .map(|l| match l {
                LayerSpec::Conv2d { filters, kernel } => {
                    format!(r#"{{"type": "conv2d", "filters": {filters}, "kernel": {kernel}}}"#)
                }
                LayerSpec::Dense { units } => {
                    format!(r#"{{"type": "dense", "units": {units}}}"#)
                }
                LayerSpec::Dropout { rate } => {
                    format!(r#"{{"type": "dropout", "rate": {rate}}}"#)
                }
                other => format!(r#"{{"type": "{}"}}"#, other.type_name()),
            })
            .collect();
        let mut spec = parse(&file(&layers.join(", ")), "t").unwrap();
        spec.name = "minivggnet".into();
        assert_eq!(spec, zoo::minivggnet(true));
    }

    #[test]
    fn the_name_defaults_to_the_files_stem() {
        let text = file(TAIL).replace(r#""name": "t", "#, "");
        assert_eq!(parse(&text, "my_net").unwrap().name, "my_net");
    }

    /// Seen writing the network-file fuzz target: a file that fits CIFAR-10, every
    /// size within the limits and little memory per sample, but whose dense layers of 65,535
    /// units need a terabyte of weights, which `train` would then try to allocate.
    #[test]
    fn a_file_needing_a_terabyte_of_weights_is_refused() {
        let pools = [r#"{"type": "max_pool"}"#; 5].join(", ");
        let wide = [r#"{"type": "dense", "units": 65535}"#; 60].join(", ");
        let text = file(&format!(
            r#"{pools}, {{"type": "flatten"}}, {wide}, {{"type": "dense", "units": 10}}, {{"type": "softmax"}}"#
        ));
        assert_eq!(
            error(&text),
            "253400121340 parameters, more than the 268435456 allowed"
        );
    }

    /// Each malformed file and its exact error.
    #[test]
    fn malformed_files_are_refused_naming_the_layer_and_the_mistake() {
        let conv =
            |f: &str, k: &str| format!(r#"{{"type": "conv2d", "filters": {f}, "kernel": {k}}}"#);
        let cases: Vec<(String, &str)> = vec![
            (
                "{\"input\": [32, 32, 3],".into(),
                "not valid JSON: EOF while parsing a value at line 1 column 22",
            ),
            (
                "[1, 2]".into(),
                "expected an object with name, input, classes, layers",
            ),
            (
                file(TAIL).replace("\"name\": \"t\"", r#""name": "../up""#),
                r#""name" is part of file names: it must not hold / or \ or start with ., got "../up""#,
            ),
            (
                file(TAIL).replace("\"classes\"", "\"clases\""),
                "unknown field \"clases\"; expected \"name\", \"input\", \"classes\", \"layers\"",
            ),
            (
                file(TAIL).replace("[32, 32, 3]", "[32, 32]"),
                "\"input\" must be [height, width, channels], got [32,32]",
            ),
            (
                file(TAIL).replace("\"classes\": 10", "\"classes\": 0"),
                "\"classes\" must be a positive integer, got 0",
            ),
            (
                file(&format!(r#"{{"type": "conv"}}, {TAIL}"#)),
                "layer 1: unknown type \"conv\"; expected one of conv2d, relu, batch_norm, max_pool, dropout, flatten, dense, softmax",
            ),
            (
                file(&format!(r#"{{"type": "conv2d", "filter": 32, "kernel": 3}}, {TAIL}"#)),
                "layer 1 (conv2d): unknown field \"filter\"; expected \"type\", \"filters\", \"kernel\"",
            ),
            (
                file(&format!(r#"{{"type": "relu"}}, {{"type": "conv2d", "filters": 32}}, {TAIL}"#)),
                "layer 2 (conv2d): missing field \"kernel\"",
            ),
            (
                file(&format!("{}, {TAIL}", conv("\"32\"", "3"))),
                "layer 1 (conv2d): \"filters\" must be a positive integer, got \"32\"",
            ),
            (
                file(&format!("{}, {TAIL}", conv("32", "4"))),
                "layer 1 (conv2d): needs an odd kernel size (\"same\" padding), got 4",
            ),
            (
                file(&format!(
                    r#"{}, {{"type": "max_pool"}}, {{"type": "max_pool"}}, {{"type": "max_pool"}}, {}, {TAIL}"#,
                    conv("8", "3"),
                    conv("8", "5")
                )),
                "layer 5 (conv2d): its 5×5 kernel is larger than its 4×4 input",
            ),
            (
                file(&format!(
                    r#"{}, {{"type": "dense", "units": 10}}, {{"type": "softmax"}}"#,
                    conv("8", "3")
                )),
                "layer 2 (dense): needs a flattened input, got (None, 32, 32, 8); put a flatten layer before it",
            ),
            (
                file(r#"{"type": "flatten"}, {"type": "dense", "units": 10}"#),
                "layer 2 (dense): the last layer must be softmax",
            ),
            (
                file(r#"{"type": "flatten"}, {"type": "softmax"}, {"type": "dense", "units": 10}, {"type": "softmax"}"#),
                "layer 2 (softmax): softmax may only be the last layer",
            ),
            (
                file(r#"{"type": "flatten"}, {"type": "dense", "units": 12}, {"type": "softmax"}"#),
                "layer 3 (softmax): the output is (None, 12), expected 10 classes",
            ),
            (
                file(&format!(r#"{{"type": "dropout", "rate": 1.5}}, {TAIL}"#)),
                "layer 1 (dropout): \"rate\" must be in [0, 1), got 1.5",
            ),
            (
                file(&format!(r#"{{"type": "dropout", "rate": 0.99999999}}, {TAIL}"#)),
                "layer 1 (dropout): \"rate\" must be in [0, 1), got 0.99999999",
            ),
            (
                file(&format!(r#"{{"type": "max_pool"}}, {{"type": "flatten"}}, {{"type": "max_pool"}}, {TAIL}"#)),
                "layer 3 (max_pool): needs an image input, got a vector",
            ),
            (
                file(&format!("{}, {TAIL}", conv("70000", "3"))),
                "layer 1 (conv2d): 70000 filters, more than 65535",
            ),
            (file(""), "the model has no layers"),
            // A key given twice: serde_json alone would keep the last, and the first four
            // would then parse.
            (
                file(TAIL).replace("\"classes\": 10", "\"classes\": 100, \"classes\": 10"),
                "field \"classes\" appears twice",
            ),
            (
                file(&format!(
                    r#"{{"type": "relu"}}, {{"type": "conv2d", "filters": 64, "kernel": 3, "filters": 32}}, {TAIL}"#
                )),
                "layer 2 (conv2d): field \"filters\" appears twice",
            ),
            (
                file(&format!(
                    r#"{{"type": "conv2d", "filters": 8, "kernel": 3, "filt\u0065rs": 8}}, {TAIL}"#
                )),
                "layer 1 (conv2d): field \"filters\" appears twice",
            ),
            (
                file(&format!(r#"{{"type": "softmax", "type": "relu"}}, {TAIL}"#)),
                "layer 1: field \"type\" appears twice",
            ),
            (
                file(TAIL).replace("\"name\": \"t\"", r#""name": {"a": 1, "a": 2}"#),
                "\"name\": field \"a\" appears twice",
            ),
            (
                format!("{} {{}}", file(TAIL)),
                "not valid JSON: trailing characters at line 1 column 138",
            ),
            (
                format!("\u{feff}{}", file(TAIL)),
                "starts with a byte order mark (U+FEFF); save it as UTF-8 without one",
            ),
            (
                file(&format!("{}, {TAIL}", conv("32.0", "3"))),
                "layer 1 (conv2d): \"filters\" must be a positive integer, got 32.0",
            ),
            (
                file(&format!("{}, {TAIL}", conv("32", "3e0"))),
                "layer 1 (conv2d): \"kernel\" must be a positive integer, got 3.0",
            ),
            (
                file(TAIL).replace("\"classes\": 10", "\"classes\": 18446744073709551616"),
                "\"classes\" must be a positive integer, got 1.8446744073709552e+19",
            ),
        ];
        for (text, expected) in &cases {
            assert_eq!(&error(text), expected, "{text}");
        }
        assert!(cases.len() >= 10);
    }
}
