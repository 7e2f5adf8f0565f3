//! A data set larger than the memory a run may use trains from the memory-mapped image cache:
//! the memory plan counts the mapped images as the pages of a file, not as memory, so a run
//! capped (by `MINIVGG_MEMORY_LIMIT`) below the size of its images still trains.

use crate::common::{minivgg_command, text, write_class_folders};
use std::path::Path;
use std::process::Output;

const CLASSES: usize = 3;
const PER_CLASS: u32 = 2_000;
const SIDE: u32 = 64;

/// `minivgg COMMAND` of ShallowNet on `folder` in batches of 8, with its cache under `cache`
/// and at most `limit` bytes, then `more` arguments.
fn capped(command: &str, folder: &Path, cache: &Path, limit: u64, more: &[&str]) -> Output {
    minivgg_command(cache)
        .args([command, "--data", folder.to_str().unwrap()])
        .args(["--image-size", &SIDE.to_string(), "--val-split", "0.2"])
        .args(["--model", "shallownet", "--batch-size", "8"])
        .args(more)
        .env("MINIVGG_MEMORY_LIMIT", limit.to_string())
        .output()
        .unwrap()
}

fn train_capped(folder: &Path, cache: &Path, limit: u64, out: &Path) -> Output {
    let plot = out.join("plot.png");
    capped(
        "train",
        folder,
        cache,
        limit,
        &["--epochs", "1", "--output", plot.to_str().unwrap()],
    )
}

#[test]
fn a_folder_larger_than_the_memory_limit_trains_from_the_mapped_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, cache, out) = (
        dir.path().join("big"),
        dir.path().join("cache"),
        dir.path().join("out"),
    );
    let classes: Vec<String> = (0..CLASSES).map(|class| format!("class{class}")).collect();
    write_class_folders(&folder, &classes, PER_CLASS, |class, i| {
        image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
            let v = (x * 3 + y * 5 + i) as u8;
            image::Rgb([v.wrapping_add(80 * class as u8), v, 255 - v])
        })
    });
    let pixels = CLASSES as u64 * PER_CLASS as u64 * (SIDE * SIDE * 3) as u64;
    let limit = 48 << 20;
    assert!(
        pixels > limit + (20 << 20),
        "the images ({pixels} B) must not fit the limit"
    );

    let run = train_capped(&folder, &cache, limit, &out);
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    assert!(
        stdout.contains("big: 4800 training and 1200 validation images, 64×64 RGB, 3 classes, memory-mapped from the cache"),
        "{stdout}"
    );
    assert!(stdout.contains("Epoch 1/1 - "), "{stdout}");
    assert!(out.join("plot.png").exists());

    // The plan counts the labels alone as data: the whole run needs less than the limit.
    let summary = capped("summary", &folder, &cache, limit, &[]);
    let stdout = text(&summary.stdout);
    assert!(
        summary.status.success(),
        "{stdout}{}",
        text(&summary.stderr)
    );
    let plan = stdout
        .lines()
        .find(|l| l.starts_with("Training on big needs "))
        .unwrap();
    assert!(plan.ends_with("; data 0 MiB)"), "{plan}");
    let needs: f64 = plan["Training on big needs ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(plan.contains(" MiB of memory") && needs < 48.0, "{plan}");

    // The limit is in force: far less memory refuses the same run, naming what it has.
    let refused = train_capped(&folder, &cache, 4 << 20, &dir.path().join("out2"));
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("MINIVGG_MEMORY_LIMIT has 4 MiB available"),
        "{stderr}"
    );
}
