//! `minivgg data`: loads a data set as `train` would (building the image cache for a folder)
//! and says what it holds: its splits, image shape, classes and images per class.

use super::args::DataArgs;
use crate::run::load_data;
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct DataCommandArgs {
    #[command(flatten)]
    pub data: DataArgs,
}

pub(super) fn show(args: DataCommandArgs) -> Result<()> {
    let data = load_data(&args.data.request()?, None)?;
    let (train, test) = (
        data.train.class_counts(data.classes()),
        data.test.class_counts(data.classes()),
    );
    let width = data
        .class_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max("class".len());
    println!(
        "{:<width$}  {:>10}  {:>10}",
        "class", "training", "validation"
    );
    for (name, (train, test)) in data.class_names.iter().zip(train.iter().zip(&test)) {
        println!("{name:<width$}  {train:>10}  {test:>10}");
    }
    println!(
        "{:<width$}  {:>10}  {:>10}",
        "all",
        data.train.len(),
        data.test.len()
    );
    Ok(())
}
