//! The tutorial's networks, written the way its Table 1 reads.

use super::spec::{LayerSpec, LayerSpec::*, ModelSpec, Shape};
use anyhow::{bail, Result};

pub const MODEL_NAMES: [&str; 3] = ["minivggnet", "shallownet", "lenet"];

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
    }
}

/// Looks a model up by its command-line name. `batch_norm` only applies to MiniVGGNet.
pub fn by_name(name: &str, batch_norm: bool) -> Result<ModelSpec> {
    match name {
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
            s.contains("conv2d_1 (Conv2D)            (None, 32, 32, 32)        896"),
            "{s}"
        );
        assert!(
            s.contains("dense_2 (Dense)              (None, 10)                5130"),
            "{s}"
        );
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
