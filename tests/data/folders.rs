//! Image folders (`minivgg::data::folder`) and their decoded-image cache, on folders the tests
//! write with the `image` crate. Each test has its own cache root (`FolderOptions::cache_dir`),
//! since the environment ($XDG_CACHE_HOME) is shared by the tests' threads.

use crate::common::save_picture;
use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use minivgg::data::cache;
use minivgg::data::folder::{self, FolderError, FolderOptions};
use minivgg::data::source::ImageSize;
use minivgg::data::Dataset;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A picture whose pixels differ from one to the next, so a wrong order shows.
fn noisy_png(path: &Path, seed: u32) {
    let picture = RgbImage::from_fn(32, 32, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) as u8;
        Rgb([v, v.wrapping_mul(3), seed as u8])
    });
    save_picture(path, picture);
}

struct Folder {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cache: PathBuf,
}

/// A temporary folder `animals` and a cache root beside it.
fn folder() -> Folder {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("animals");
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    Folder {
        _tmp: tmp,
        dir,
        cache,
    }
}

impl Folder {
    fn options(&self) -> FolderOptions {
        FolderOptions {
            cache_dir: Some(self.cache.clone()),
            ..FolderOptions::default()
        }
    }

    fn split(&self, fraction: f64) -> FolderOptions {
        FolderOptions {
            val_split: Some(fraction),
            ..self.options()
        }
    }

    fn load(&self, options: &FolderOptions) -> Result<Dataset, FolderError> {
        folder::load(&self.dir, options)
    }

    fn error(&self, options: &FolderOptions) -> String {
        self.load(options).unwrap_err().to_string()
    }

    /// The cache files written so far.
    fn cache_files(&self) -> Vec<PathBuf> {
        let dir = self.cache.join("minivgg").join("images");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// How long the first load (decoding) and the second (from the cache) of `options` take;
    /// both must give the same data.
    fn time_two_loads(&self, options: &FolderOptions) -> String {
        let start = std::time::Instant::now();
        let first = self.load(options).unwrap();
        let decoded = start.elapsed();
        let start = std::time::Instant::now();
        let second = self.load(options).unwrap();
        let cached = start.elapsed();
        assert_eq!(first, second);
        format!("first load {decoded:?}, cached load {cached:?}")
    }

    /// `class` with `n` noisy pictures.
    fn class(&self, class: &str, n: u32) {
        for i in 0..n {
            noisy_png(&self.dir.join(class).join(format!("{i:03}.png")), i);
        }
    }
}

/// A copy held in memory: a mapped data set would see the damage done to its file in place.
fn owned(data: &Dataset) -> Dataset {
    let all = |split: &minivgg::data::Split| split.select(&(0..split.len()).collect::<Vec<_>>());
    Dataset {
        train: all(&data.train),
        test: all(&data.test),
        ..data.clone()
    }
}

fn names(data: &Dataset) -> Vec<&str> {
    data.class_names.iter().map(String::as_str).collect()
}

#[test]
fn class_folders_are_sorted_and_val_split_holds_out_each_class_reproducibly() {
    let f = folder();
    f.class("dog", 8);
    f.class("Cat", 4);
    f.class("bird", 5);
    f.class("ant", 3);
    // Not pictures, or hidden: skipped.
    std::fs::write(f.dir.join("dog/notes.txt"), "not a picture").unwrap();
    std::fs::write(f.dir.join("dog/.hidden.png"), "hidden").unwrap();
    noisy_png(&f.dir.join(".thumbnails/x.png"), 1);
    // Found recursively, in any format and any case of extension.
    noisy_png(&f.dir.join("ant/more/deeper.PNG"), 9);
    RgbImage::from_pixel(40, 30, Rgb([9, 99, 199]))
        .save(f.dir.join("ant/photo.jpg"))
        .unwrap();
    let data = f.load(&f.split(0.25)).unwrap();
    assert_eq!(names(&data), ["Cat", "ant", "bird", "dog"]);
    assert_eq!(data.name, "animals");
    assert_eq!(data.shape().to_string(), "32×32 RGB");
    // round(0.25 n), at least 1 and leaving 1: Cat 4 → 1, ant 5 → 1, bird 5 → 1, dog 8 → 2.
    assert_eq!(data.test.class_counts(4), [1, 1, 1, 2]);
    assert_eq!(data.train.class_counts(4), [3, 4, 4, 6]);
    // Class by class, in file order.
    assert!(data.train.labels().windows(2).all(|w| w[0] <= w[1]));
    assert!(data.test.labels().windows(2).all(|w| w[0] <= w[1]));
    // The same split on another cache root (decoded again) and with the cache.
    let other = FolderOptions {
        cache_dir: Some(f.cache.join("other")),
        ..f.split(0.25)
    };
    assert_eq!(f.load(&other).unwrap(), data);
    assert_eq!(f.load(&f.split(0.25)).unwrap(), data);
    // Another fraction holds out more (round(2.5) is 3: halves round away from zero).
    let half = f.load(&f.split(0.5)).unwrap();
    assert_eq!(half.test.class_counts(4), [2, 3, 3, 4]);
    // A small fraction still holds out one of each, a large one keeps one for training.
    assert_eq!(f.load(&f.split(0.01)).unwrap().test.len(), 4);
    assert_eq!(f.load(&f.split(0.99)).unwrap().train.len(), 4);
}

#[test]
fn a_train_and_test_layout_is_its_own_split() {
    let f = folder();
    for (split, n) in [("train", 3), ("test", 2)] {
        for class in ["b", "a"] {
            for i in 0..n {
                noisy_png(&f.dir.join(split).join(class).join(format!("{i}.png")), i);
            }
        }
    }
    let data = f.load(&f.options()).unwrap();
    assert_eq!(names(&data), ["a", "b"]);
    assert_eq!((data.train.len(), data.test.len()), (6, 4));
    assert_eq!(data.train.labels(), [0, 0, 0, 1, 1, 1]);
    assert_eq!(data.test.labels(), [0, 0, 1, 1]);
    assert_eq!(
        f.error(&f.split(0.2)),
        format!(
            "{} has its own test split (test/): --val-split does not apply",
            f.dir.display()
        )
    );

    // val/ serves as well.
    let g = folder();
    for split in ["train", "val"] {
        for class in ["x", "y"] {
            noisy_png(&g.dir.join(split).join(class).join("0.png"), 0);
        }
    }
    let data = g.load(&g.options()).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (2, 2));
}

#[test]
fn pictures_are_made_grey_or_rgb_at_the_size_asked() {
    let f = folder();
    let rgb = RgbImage::from_pixel(20, 12, Rgb([200, 100, 50]));
    save_picture(&f.dir.join("a/rgb.png"), rgb);
    let rgba = RgbaImage::from_pixel(10, 10, Rgba([10, 20, 30, 128]));
    save_picture(&f.dir.join("a/rgba.png"), rgba);
    let grey16: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_pixel(7, 9, Luma([65535]));
    save_picture(&f.dir.join("b/grey16.png"), grey16);
    save_picture(
        &f.dir.join("b/grey8.png"),
        GrayImage::from_pixel(5, 5, Luma([77])),
    );

    let data = f.load(&f.split(0.5)).unwrap();
    let all: Vec<&[u8]> = (0..2)
        .flat_map(|i| [data.train.image(i), data.test.image(i)])
        .collect();
    let has = |px: [u8; 3]| all.iter().any(|img| img.chunks(3).all(|p| p == px));
    assert!(has([200, 100, 50]) && has([10, 20, 30]) && has([255, 255, 255]) && has([77; 3]));

    let options = FolderOptions {
        size: ImageSize {
            width: 48,
            height: 40,
        },
        grayscale: true,
        ..f.split(0.5)
    };
    let grey = f.load(&options).unwrap();
    assert_eq!(grey.shape().to_string(), "48×40 grey");
    assert_eq!(grey.train.image(0).len(), 48 * 40);
    let all: Vec<&[u8]> = (0..2)
        .flat_map(|i| [grey.train.image(i), grey.test.image(i)])
        .collect();
    assert!(all.iter().any(|img| img.iter().all(|&v| v == 255)));
    assert!(all.iter().any(|img| img.iter().all(|&v| v == 77)));
}

#[test]
fn bad_folders_and_options_are_refused_with_what_is_wrong() {
    let f = folder();
    let dir = f.dir.display().to_string();
    let missing = f.dir.join("nope");
    assert_eq!(
        folder::load(&missing, &f.split(0.2))
            .unwrap_err()
            .to_string(),
        format!("{}: no such directory", missing.display())
    );
    std::fs::write(f.dir.join("file.txt"), "x").unwrap();
    assert_eq!(
        folder::load(&f.dir.join("file.txt"), &f.split(0.2))
            .unwrap_err()
            .to_string(),
        format!("{}/file.txt is not a directory", dir)
    );
    let no_images = format!(
        "{dir}: no images found: expected a folder per class (DIR/<class>/<images>), or \
         DIR/train/<class>/ and DIR/test/<class>/"
    );
    assert_eq!(f.error(&f.split(0.2)), no_images);

    f.class("cat", 3);
    assert_eq!(
        f.error(&f.split(0.2)),
        format!(
            "{dir}: only one class folder (cat); a classifier needs at least 2 classes \
             (Keras' categorical labels)"
        )
    );
    std::fs::create_dir_all(f.dir.join("dog/empty")).unwrap();
    std::fs::write(f.dir.join("dog/readme.md"), "x").unwrap();
    assert_eq!(
        f.error(&f.split(0.2)),
        format!("{dir}: the class folder dog holds no images")
    );
    noisy_png(&f.dir.join("dog/0.png"), 0);
    assert_eq!(
        f.error(&f.split(0.2)),
        format!(
            "{dir}: class dog has 1 image(s), too few to hold out some for validation and \
             keep some for training (it needs at least 2)"
        )
    );
    noisy_png(&f.dir.join("dog/1.png"), 1);
    assert_eq!(
        f.error(&f.options()),
        format!(
            "{dir} has no test split: pass --val-split F to hold out a fraction F of each \
             class for validation, or make train/ and test/ folders"
        )
    );
    for (value, shown) in [(0.0, "0"), (1.0, "1"), (f64::NAN, "NaN"), (-0.5, "-0.5")] {
        assert_eq!(
            f.error(&f.split(value)),
            format!("--val-split must be between 0 and 1 (both excluded), got {shown}")
        );
    }
    assert_eq!(f.load(&f.split(0.2)).unwrap().train.len(), 3);

    // A file with an image's name that is not one: named; skipped when asked.
    std::fs::write(f.dir.join("dog/bad.png"), "not a png at all").unwrap();
    let bad = format!("{dir}/dog/bad.png: not an image that can be read (");
    assert!(
        f.error(&f.split(0.2)).starts_with(&bad),
        "{}",
        f.error(&f.split(0.2))
    );
    let skipping = FolderOptions {
        skip_bad_images: true,
        ..f.split(0.2)
    };
    let data = f.load(&skipping).unwrap();
    assert_eq!(data.train.len() + data.test.len(), 5);
    // A picture over the decoding limits, named.
    GrayImage::new(16385, 1)
        .save(f.dir.join("cat/wide.png"))
        .unwrap();
    assert_eq!(
        f.error(&f.split(0.2)),
        format!(
            "{dir}/cat/wide.png: a picture larger than minivgg decodes (at most 16384 pixels a \
             side and 128 MiB decoded)"
        )
    );
    // Every picture of a class unreadable.
    let h = folder();
    h.class("a", 2);
    std::fs::create_dir_all(h.dir.join("b")).unwrap();
    std::fs::write(h.dir.join("b/0.png"), "x").unwrap();
    std::fs::write(h.dir.join("b/1.jpg"), "y").unwrap();
    let skipping = FolderOptions {
        skip_bad_images: true,
        ..h.split(0.5)
    };
    let err = h.load(&skipping).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: none of the images of class b could be read",
            h.dir.display()
        )
    );
    // And again, now that its (empty) decoding is cached.
    assert_eq!(h.load(&skipping).unwrap_err().to_string(), err);
}

#[test]
fn split_folders_must_have_the_same_classes() {
    let f = folder();
    for (split, classes) in [("train", ["a", "b", "c"]), ("test", ["a", "c", "d"])] {
        for class in classes {
            noisy_png(&f.dir.join(split).join(class).join("0.png"), 0);
        }
    }
    assert_eq!(
        f.error(&f.options()),
        format!(
            "{}: train/ and test/ have different classes: only in train/: b; only in test/: d",
            f.dir.display()
        )
    );
}

#[test]
fn more_than_256_classes_are_refused() {
    let f = folder();
    for i in 0..257 {
        std::fs::create_dir_all(f.dir.join(format!("c{i:03}"))).unwrap();
    }
    assert_eq!(
        f.error(&f.split(0.5)),
        format!(
            "{}: 257 class folders, more than the 256 classes minivgg takes",
            f.dir.display()
        )
    );
}

#[test]
fn the_cache_serves_the_second_load_mapped_and_any_change_misses_it() {
    let f = folder();
    f.class("a", 5);
    f.class("b", 6);
    let options = f.split(0.3);
    let first = f.load(&options).unwrap();
    assert!(first.train.is_mapped() && first.test.is_mapped());
    let files = f.cache_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let stamp = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    let second = f.load(&options).unwrap();
    assert_eq!(second, first);
    assert!(second.train.is_mapped() && second.test.is_mapped());
    assert_eq!(f.cache_files(), files);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        stamp,
        "a hit does not rewrite the file"
    );

    // The file has the mode any new file gets (the umask's), not a private 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let probe = f.cache.join("probe");
        std::fs::write(&probe, "x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files[0]), mode(&probe));
    }

    // Other options, another file.
    let grey = FolderOptions {
        grayscale: true,
        ..options.clone()
    };
    assert_eq!(f.load(&grey).unwrap().shape().channels, 1);
    assert_eq!(f.cache_files().len(), 2);
    // A file rewritten (another size), added, or removed: another key.
    noisy_png(&f.dir.join("a/000.png"), 40);
    let changed = f.load(&options).unwrap();
    assert_ne!(changed, first);
    assert_eq!(f.cache_files().len(), 3);
    noisy_png(&f.dir.join("b/new.png"), 3);
    assert_eq!(
        f.load(&options).unwrap().train.len() + 1,
        first.train.len() + 2
    );
    std::fs::remove_file(f.dir.join("b/new.png")).unwrap();
    // Back to an earlier state: that file's key again.
    assert_eq!(f.load(&options).unwrap(), changed);
    assert_eq!(f.cache_files().len(), 4);
}

type Damage = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn a_damaged_cache_is_rebuilt_never_trusted() {
    let f = folder();
    f.class("a", 4);
    f.class("b", 4);
    let options = f.split(0.25);
    let good = owned(&f.load(&options).unwrap());
    let path = f.cache_files().pop().unwrap();
    let original = std::fs::read(&path).unwrap();
    let damages: Vec<(&str, Damage)> = vec![
        ("a pixel", Box::new(|b| b[cache::PAGE + 5] ^= 0x10)),
        ("a label", Box::new(|b| *b.last_mut().unwrap() ^= 1)),
        ("a class name", Box::new(|b| b[68] ^= 0x20)),
        ("the magic", Box::new(|b| b[0] = b'X')),
        ("the version", Box::new(|b| b[8] = 99)),
        ("truncated", Box::new(|b| b.truncate(b.len() - 1))),
        ("truncated to the header", Box::new(|b| b.truncate(40))),
        ("one byte more", Box::new(|b| b.push(0))),
        ("empty", Box::new(|b| b.clear())),
    ];
    for (what, damage) in damages {
        let mut bytes = original.clone();
        damage(&mut bytes);
        // Written in place, as a damage would be: a new file at the path would not do.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let why = match cache::open(&path, good.shape(), &good.class_names) {
            Err(cache::Damaged(why)) => why,
            Ok(_) => panic!("{what}: the damaged file was taken"),
        };
        assert!(!why.is_empty());
        let rebuilt = f.load(&options).unwrap();
        assert_eq!(rebuilt, good, "{what}");
        assert!(rebuilt.train.is_mapped());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            original,
            "{what}: rebuilt ({why})"
        );
    }
    // The version is checked before anything else that could fail.
    let mut bytes = original.clone();
    bytes[8] = 99;
    std::fs::write(&path, &bytes).unwrap();
    let Err(cache::Damaged(why)) = cache::open(&path, good.shape(), &good.class_names) else {
        panic!("taken");
    };
    assert_eq!(why, "format version 99, this build reads 1");
}

/// The timings for the report:
/// `cargo test --release --test data -- folders::timing --ignored --nocapture`.
#[test]
#[ignore = "timings for the report, not a check: run by hand with --ignored --nocapture"]
fn timing_5000_pngs() {
    let f = folder();
    for c in 0..10 {
        for i in 0..500 {
            noisy_png(&f.dir.join(format!("class{c}/{i:04}.png")), c * 1000 + i);
        }
    }
    println!("5000 32x32 PNGs: {}", f.time_two_loads(&f.split(0.25)));

    // Photographs as they come: 2000 JPEGs of 320×240, made 64×64.
    let g = folder();
    for c in 0..4 {
        for i in 0..500 {
            let photo = RgbImage::from_fn(320, 240, |x, y| {
                Rgb([(x + i) as u8, (y * c) as u8, (x ^ y) as u8])
            });
            save_picture(&g.dir.join(format!("class{c}/{i:04}.jpg")), photo);
        }
    }
    let options = FolderOptions {
        size: ImageSize {
            width: 64,
            height: 64,
        },
        ..g.split(0.25)
    };
    println!(
        "2000 320x240 JPEGs at 64x64: {}",
        g.time_two_loads(&options)
    );
}
