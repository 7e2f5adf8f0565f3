//! The tutorial's networks, written the way its Table 1 reads.

use super::spec::{LayerSpec, LayerSpec::*, ModelSpec, Shape};
use anyhow::{bail, Result};

pub const MODEL_NAMES: [&str; 3] = ["minivggnet", "shallownet", "lenet"];

/// The built-in model `name` stands for, in any case (`MiniVGGNet`, the tutorial's class
/// name, is `minivggnet`).
pub fn model_name(name: &str) -> Option<&'static str> {
    MODEL_NAMES
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(name))
}

/// What the functions below build for: CIFAR-10's 32×32 RGB images of 10 classes. [`build`]
/// builds for any other data, as the tutorial's `build(width, height, depth, classes)` does.
const CIFAR_INPUT: Shape = Shape::Image { h: 32, w: 32, c: 3 };

fn conv(filters: usize, kernel: usize) -> LayerSpec {
    Conv2d { filters, kernel }
}

/// MiniVGGNet; `batch_norm: false` is the tutorial's ablation with the five BN layers removed.
pub fn minivggnet(batch_norm: bool) -> ModelSpec {
    let layers = [
        // first CONV => RELU => CONV => RELU => POOL layer set
        vec![conv(32, 3), Relu, BatchNorm, conv(32, 3), Relu, BatchNorm],
        vec![MaxPool, Dropout { rate: 0.25 }],
        // second CONV => RELU => CONV => RELU => POOL layer set
        vec![conv(64, 3), Relu, BatchNorm, conv(64, 3), Relu, BatchNorm],
        vec![MaxPool, Dropout { rate: 0.25 }],
        // first (and only) set of FC => RELU layers
        vec![Flatten, Dense { units: 512 }, Relu, BatchNorm],
        vec![Dropout { rate: 0.5 }],
        // softmax classifier
        vec![Dense { units: 10 }, Softmax],
    ]
    .concat();
    let model = ModelSpec {
        name: "minivggnet".into(),
        input: CIFAR_INPUT,
        classes: 10,
        layers,
        class_names: Vec::new(),
    };
    if batch_norm {
        model
    } else {
        model.without_batch_norm()
    }
}

/// ShallowNet: CONV => RELU => FC.
pub fn shallownet() -> ModelSpec {
    let layers = vec![conv(32, 3), Relu, Flatten, Dense { units: 10 }, Softmax];
    ModelSpec {
        name: "shallownet".into(),
        input: CIFAR_INPUT,
        classes: 10,
        layers,
        class_names: Vec::new(),
    }
}

/// LeNet: (CONV => RELU => POOL) ×2 => FC => RELU => FC.
pub fn lenet() -> ModelSpec {
    let layers = vec![
        conv(20, 5),
        Relu,
        MaxPool,
        conv(50, 5),
        Relu,
        MaxPool,
        Flatten,
        Dense { units: 500 },
        Relu,
        Dense { units: 10 },
        Softmax,
    ];
    ModelSpec {
        name: "lenet".into(),
        input: CIFAR_INPUT,
        classes: 10,
        layers,
        class_names: Vec::new(),
    }
}

/// Looks a model up by its command-line name, in any case. `batch_norm` only applies to
/// MiniVGGNet.
pub fn by_name(name: &str, batch_norm: bool) -> Result<ModelSpec> {
    match model_name(name).unwrap_or(name) {
        "minivggnet" => Ok(minivggnet(batch_norm)),
        "shallownet" | "lenet" if !batch_norm => {
            bail!("--no-bn applies to minivggnet only; {name} has no batch normalization")
        }
        "shallownet" => Ok(shallownet()),
        "lenet" => Ok(lenet()),
        _ => bail!(
            "unknown model {name:?}; expected one of {}",
            MODEL_NAMES.join(", ")
        ),
    }
}

/// The network `name` built for `input`-shaped images of `classes` classes, as the tutorial's
/// `MiniVGGNet.build(width, height, depth, classes)`: the same layers, the classifier's units
/// the class count, the dense layers sized by what the input's shape leaves after pooling.
pub fn build(name: &str, batch_norm: bool, input: Shape, classes: usize) -> Result<ModelSpec> {
    let spec = by_name(name, batch_norm)?;
    Ok(built_for(spec, input, classes))
}

/// `spec` with its input and classifier set for `input` and `classes`.
pub fn built_for(mut spec: ModelSpec, input: Shape, classes: usize) -> ModelSpec {
    if let Some(Dense { units }) = spec
        .layers
        .iter_mut()
        .rev()
        .find(|l| matches!(l, Dense { .. }))
    {
        *units = classes;
    }
    spec.input = input;
    spec.classes = classes;
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minivggnet_has_the_tutorials_parameter_counts() {
        assert_eq!(
            minivggnet(true).parameter_counts().unwrap(),
            (2_169_770, 1_408)
        );
        assert_eq!(
            minivggnet(false).parameter_counts().unwrap(),
            (2_168_362, 0)
        );
    }

    #[test]
    fn siblings_have_keras_parameter_counts() {
        // ShallowNet: 896 + 32768·10 + 10; LeNet: 1520 + 25050 + 3200·500 + 500 + 5010.
        assert_eq!(shallownet().parameter_counts().unwrap(), (328_586, 0));
        assert_eq!(lenet().parameter_counts().unwrap(), (1_632_080, 0));
    }

    #[test]
    fn summary_totals_match_keras() {
        let s = minivggnet(true).summary().unwrap();
        assert!(s.contains("Total params: 2,171,178\n"), "{s}");
        assert!(s.contains("Trainable params: 2,169,770\n"), "{s}");
        assert!(s.contains("Non-trainable params: 1,408\n"), "{s}");
        assert!(
            s.contains("conv2d_1 (Conv2D)                          (None, 32, 32, 32)        896"),
            "{s}"
        );
        assert!(
            s.contains("dense_2 (Dense)                            (None, 10)                5130"),
            "{s}"
        );
    }

    /// The first column fits the longest layer name, a deeper network's
    /// `batch_normalization_10 (BatchNormalization)`, and every row's shape starts where its
    /// heading does.
    #[test]
    fn summary_columns_fit_their_longest_name() {
        let mut deep = minivggnet(true);
        let block = deep.layers[..3].to_vec(); // CONV → RELU → BN, the shape kept
        for _ in 0..6 {
            deep.layers.splice(3..3, block.clone());
        }
        let s = deep.summary().unwrap();
        let heading = s.lines().find(|l| l.starts_with("Layer (type)")).unwrap();
        let column = heading.find("Output Shape").unwrap();
        assert_eq!(
            column,
            "batch_normalization_10 (BatchNormalization) ".len(),
            "{s}"
        );
        let rows: Vec<&str> = s.lines().filter(|l| l.contains(" (None, ")).collect();
        assert_eq!(rows.len(), deep.layers.len(), "{s}");
        for row in rows {
            assert_eq!(row.find("(None, "), Some(column), "{row}");
        }
        let rule = s.lines().nth(1).unwrap();
        assert_eq!(rule.len(), column + 26 + 10, "{s}");
    }

    #[test]
    fn networks_built_for_other_data_have_keras_parameter_counts() {
        let mnist = Shape::Image { h: 28, w: 28, c: 1 };
        // LeNet on MNIST: 520 + 25,050 + 2450·500 + 500 + 5,010 (the series' 1,256,080).
        let lenet = build("lenet", true, mnist, 10).unwrap();
        assert_eq!(lenet.parameter_counts().unwrap(), (1_256_080, 0));
        // MiniVGGNet on CIFAR-100: only the classifier grows, 512·100 + 100.
        let cifar100 = build("minivggnet", true, CIFAR_INPUT, 100).unwrap();
        assert_eq!(
            cifar100.parameter_counts().unwrap(),
            (2_169_770 - 5_130 + 51_300, 1_408)
        );
        // ShallowNet on 48×40 grey pictures of 3 classes: 320 + 48·40·32·3 + 3.
        let odd = Shape::Image { h: 40, w: 48, c: 1 };
        let shallow = build("shallownet", true, odd, 3).unwrap();
        assert_eq!(shallow.parameter_counts().unwrap(), (320 + 184_320 + 3, 0));
    }

    #[test]
    fn model_names_are_taken_in_any_case() {
        let tutorial = by_name("MiniVGGNet", true).unwrap();
        assert_eq!(tutorial, minivggnet(true));
        assert_eq!(by_name("LeNet", true).unwrap(), lenet());
        assert_eq!(model_name("SHALLOWNET"), Some("shallownet"));
        assert_eq!(model_name("vgg16"), None);
    }

    #[test]
    fn unknown_model_names_are_rejected_by_name() {
        let err = by_name("resnet", true).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown model \"resnet\"; expected one of minivggnet, shallownet, lenet"
        );
    }
}
