//! The vocabulary of the data that `--data` and its flags name: the data sets by name, CIFAR-100's
//! label sets and the size pictures are made. A leaf: the readers and [`source`](super::source),
//! which picks among them, all use it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The data sets `--data` takes by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NamedSet {
    Cifar10,
    Cifar100,
    Mnist,
    FashionMnist,
}

impl NamedSet {
    pub const ALL: [NamedSet; 4] = [
        NamedSet::Cifar10,
        NamedSet::Cifar100,
        NamedSet::Mnist,
        NamedSet::FashionMnist,
    ];

    /// The name `--data` takes.
    pub fn flag_name(self) -> &'static str {
        match self {
            NamedSet::Cifar10 => "cifar10",
            NamedSet::Cifar100 => "cifar100",
            NamedSet::Mnist => "mnist",
            NamedSet::FashionMnist => "fashion-mnist",
        }
    }

    /// How titles and logs name it.
    pub fn title(self) -> &'static str {
        match self {
            NamedSet::Cifar10 => "CIFAR-10",
            NamedSet::Cifar100 => "CIFAR-100",
            NamedSet::Mnist => "MNIST",
            NamedSet::FashionMnist => "Fashion-MNIST",
        }
    }

    pub fn from_flag(name: &str) -> Option<NamedSet> {
        NamedSet::ALL
            .into_iter()
            .find(|set| set.flag_name() == name)
    }
}

/// CIFAR-100's two label sets: 100 fine classes or 20 coarse superclasses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Cifar100Labels {
    #[default]
    Fine,
    Coarse,
}

/// How pictures are made into a data set's images: the size every one is resized to, and
/// whether they are made grey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    pub width: usize,
    pub height: usize,
}

impl ImageSize {
    /// The series' `SimplePreprocessor(32, 32)`.
    pub const DEFAULT: ImageSize = ImageSize {
        width: 32,
        height: 32,
    };
    /// The largest side `--image-size` takes.
    pub const MAX_SIDE: usize = 1024;
}

impl fmt::Display for ImageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl std::str::FromStr for ImageSize {
    type Err = String;

    /// `N` (square) or `WxH`, each side 1..=1024.
    fn from_str(text: &str) -> Result<ImageSize, String> {
        let side = |s: &str| -> Result<usize, String> {
            match s.trim().parse::<usize>() {
                Ok(n) if (1..=ImageSize::MAX_SIDE).contains(&n) => Ok(n),
                _ => Err(format!(
                    "expected N or WxH with sides from 1 to {}, got {text:?}",
                    ImageSize::MAX_SIDE
                )),
            }
        };
        match text.split_once(['x', 'X', '×']) {
            Some((w, h)) => Ok(ImageSize {
                width: side(w)?,
                height: side(h)?,
            }),
            None => {
                let n = side(text)?;
                Ok(ImageSize {
                    width: n,
                    height: n,
                })
            }
        }
    }
}
