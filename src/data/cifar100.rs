//! Reads CIFAR-100's "binary version" from its directory or straight from its `.tar.gz`,
//! through the same code as CIFAR-10 ([`cifar10`]): records of a coarse and a fine label byte
//! and a planar RGB image, converted to interleaved HWC.

use super::catalogue::Cifar100Labels;
use super::cifar10::{self, DataError, Layout, RecordFormat, Size, META_MAX_BYTES};
use super::dataset::{Dataset, ImageShape, Split};
use std::path::Path;

pub const BINARY_DIR: &str = "cifar-100-binary";
pub const TRAIN_FILE: &str = "train.bin";
pub const TEST_FILE: &str = "test.bin";
pub const FINE_NAMES_FILE: &str = "fine_label_names.txt";
pub const COARSE_NAMES_FILE: &str = "coarse_label_names.txt";
pub const ALL_FILES: [&str; 4] = [FINE_NAMES_FILE, COARSE_NAMES_FILE, TRAIN_FILE, TEST_FILE];
pub const TRAIN_IMAGES: usize = 50_000;
pub const TEST_IMAGES: usize = 10_000;
pub const FINE_CLASSES: usize = 100;
pub const COARSE_CLASSES: usize = 20;
/// A coarse label byte, a fine label byte, 3,072 bytes of image.
pub const RECORD_BYTES: usize = 2 + cifar10::IMAGE_BYTES;

/// The labels of a record, in file order.
const LABELS: &[(&str, usize)] = &[
    ("coarse label", COARSE_CLASSES),
    ("fine label", FINE_CLASSES),
];

fn format(count: usize, labels: Cifar100Labels) -> RecordFormat {
    RecordFormat {
        count,
        labels: LABELS,
        keep: match labels {
            Cifar100Labels::Coarse => 0,
            Cifar100Labels::Fine => 1,
        },
    }
}

const LAYOUT: Layout = Layout {
    dir: BINARY_DIR,
    files: &ALL_FILES,
    size: |name| match name {
        TRAIN_FILE => format(TRAIN_IMAGES, Cifar100Labels::Fine).size(),
        TEST_FILE => format(TEST_IMAGES, Cifar100Labels::Fine).size(),
        _ => Size::AtMost(META_MAX_BYTES),
    },
};

/// Whether `path` looks like CIFAR-100's binary version: a directory holding
/// `cifar-100-binary/`, or `train.bin`, `test.bin` and `fine_label_names.txt`; or a `.tar.gz` /
/// `.tgz` whose name starts with `cifar-100`.
pub fn is_cifar100(path: &Path) -> bool {
    if path.is_dir() {
        path.join(BINARY_DIR).is_dir()
            || [TRAIN_FILE, TEST_FILE, FINE_NAMES_FILE]
                .iter()
                .all(|f| path.join(f).is_file())
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        name.starts_with("cifar-100") && cifar10::is_archive_name(path)
    }
}

/// Loads both splits with the `labels` asked for (100 fine classes or 20 coarse ones) and
/// their names. `path` is a directory that contains `cifar-100-binary/`, that directory itself,
/// or the `.tar.gz`, which is streamed rather than extracted. Errors are those of
/// [`cifar10::load`], naming the file (or archive member) and the record.
pub fn load(path: &Path, labels: Cifar100Labels) -> Result<Dataset, DataError> {
    let (names_file, classes) = match labels {
        Cifar100Labels::Fine => (FINE_NAMES_FILE, FINE_CLASSES),
        Cifar100Labels::Coarse => (COARSE_NAMES_FILE, COARSE_CLASSES),
    };
    let mut train = Split::zeroed(ImageShape::CIFAR, TRAIN_IMAGES);
    let mut test = Split::zeroed(ImageShape::CIFAR, TEST_IMAGES);
    let mut class_names = Vec::new();
    let wanted = [names_file, TRAIN_FILE, TEST_FILE];
    cifar10::read_files(path, &LAYOUT, &wanted, |member| {
        let (split, count) = match member.name {
            TRAIN_FILE => (&mut train, TRAIN_IMAGES),
            TEST_FILE => (&mut test, TEST_IMAGES),
            _ => {
                class_names = cifar10::parse_names(&member.label, &member.bytes, classes)?;
                return Ok(());
            }
        };
        let format = format(count, labels);
        cifar10::parse_into(&member.label, &member.bytes, &format, split, 0)
    })?;
    Ok(Dataset {
        name: "CIFAR-100".into(),
        train,
        test,
        class_names,
    })
}

/// Parses `count` records (the real files hold 50,000 and 10,000) into a split with the
/// `labels` asked for; `name` is used in error messages.
pub fn parse_records(
    name: &str,
    bytes: &[u8],
    count: usize,
    labels: Cifar100Labels,
) -> Result<Split, DataError> {
    let mut split = Split::zeroed(ImageShape::CIFAR, count);
    cifar10::parse_into(name, bytes, &format(count, labels), &mut split, 0)?;
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::fs::File;
    use std::io::{Seek, SeekFrom, Write};

    const PLANE: usize = 32 * 32;

    /// Record `r`: coarse label r % 20, fine label r % 100, and pixel 5 of the red, green and
    /// blue planes set to r, 100, 200.
    fn record(r: usize) -> Vec<u8> {
        let mut rec = vec![0; RECORD_BYTES];
        rec[0] = (r % COARSE_CLASSES) as u8;
        rec[1] = (r % FINE_CLASSES) as u8;
        rec[2 + 5] = r as u8;
        rec[2 + PLANE + 5] = 100;
        rec[2 + 2 * PLANE + 5] = 200;
        rec
    }

    fn names(prefix: &str, n: usize) -> String {
        (0..n).map(|i| format!("{prefix}{i}\n")).collect()
    }

    /// A real-size file, sparse: the first `written` records set, the rest zeros (label 0).
    fn write_records(path: &Path, count: usize, written: usize) {
        let mut file = File::create(path).unwrap();
        file.set_len((count * RECORD_BYTES) as u64).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        for r in 0..written {
            file.write_all(&record(r)).unwrap();
        }
    }

    fn write_dir(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        write_records(&dir.join(TRAIN_FILE), TRAIN_IMAGES, 150);
        write_records(&dir.join(TEST_FILE), TEST_IMAGES, 3);
        std::fs::write(dir.join(FINE_NAMES_FILE), names("fine", 100)).unwrap();
        std::fs::write(dir.join(COARSE_NAMES_FILE), names("coarse", 20)).unwrap();
    }

    #[test]
    fn records_keep_the_labels_asked_for_and_become_hwc() {
        let bytes: Vec<u8> = (0..3).flat_map(record).collect();
        let fine = parse_records("t", &bytes, 3, Cifar100Labels::Fine).unwrap();
        assert_eq!(fine.labels(), &[0, 1, 2]);
        assert_eq!(fine.image(2)[15..18], [2, 100, 200]);
        let bytes: Vec<u8> = (120..122).flat_map(record).collect();
        let coarse = parse_records("t", &bytes, 2, Cifar100Labels::Coarse).unwrap();
        assert_eq!(coarse.labels(), &[0, 1]);
        let fine = parse_records("t", &bytes, 2, Cifar100Labels::Fine).unwrap();
        assert_eq!(fine.labels(), &[20, 21]);
    }

    #[test]
    fn bad_records_name_the_file_and_record() {
        let mut bytes: Vec<u8> = (0..3).flat_map(record).collect();
        let err = |bytes: &[u8]| {
            parse_records("x/train.bin", bytes, 3, Cifar100Labels::Coarse)
                .unwrap_err()
                .to_string()
        };
        bytes[2 * RECORD_BYTES + 1] = 100;
        assert_eq!(
            err(&bytes),
            "x/train.bin: record 2 has fine label 100, expected 0..99"
        );
        bytes[RECORD_BYTES] = 20;
        assert_eq!(
            err(&bytes),
            "x/train.bin: record 1 has coarse label 20, expected 0..19"
        );
        assert_eq!(
            err(&bytes[1..]),
            "x/train.bin: 9221 bytes, expected 9222 (3 records of 3074 bytes)"
        );
    }

    #[test]
    fn a_directory_and_its_archive_load_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(BINARY_DIR);
        write_dir(&dir);
        assert!(is_cifar100(tmp.path()) && is_cifar100(&dir));
        let data = load(tmp.path(), Cifar100Labels::Fine).unwrap();
        assert_eq!(data.name, "CIFAR-100");
        assert_eq!((data.train.len(), data.test.len()), (50_000, 10_000));
        assert_eq!(data.class_names.len(), 100);
        assert_eq!(data.class_names[99], "fine99");
        assert_eq!(data.train.labels()[..3], [0, 1, 2]);
        assert_eq!(data.train.labels()[149], 49);
        assert_eq!(data.train.image(149)[15..18], [149, 100, 200]);
        assert_eq!(data.test.labels()[..4], [0, 1, 2, 0]);
        let coarse = load(&dir, Cifar100Labels::Coarse).unwrap();
        assert_eq!(
            coarse.class_names,
            (0..20).map(|i| format!("coarse{i}")).collect::<Vec<_>>()
        );
        assert_eq!(coarse.train.labels()[149], 9);
        assert_eq!(coarse.train.images(), data.train.images());

        let archive = tmp.path().join("cifar-100-binary.tar.gz");
        let mut tar = tar::Builder::new(GzEncoder::new(
            File::create(&archive).unwrap(),
            Compression::fast(),
        ));
        // As the real archive: plain members, not GNU sparse ones for the sparse test files.
        tar.sparse(false);
        for name in ALL_FILES {
            tar.append_path_with_name(dir.join(name), format!("{BINARY_DIR}/{name}"))
                .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        assert!(is_cifar100(&archive));
        assert_eq!(load(&archive, Cifar100Labels::Fine).unwrap(), data);
    }

    #[test]
    fn missing_and_wrong_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(BINARY_DIR);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(FINE_NAMES_FILE), names("f", 99)).unwrap();
        assert_eq!(
            load(tmp.path(), Cifar100Labels::Fine)
                .unwrap_err()
                .to_string(),
            format!(
                "{}: 99 class names, expected 100 (one per line)",
                dir.join(FINE_NAMES_FILE).display()
            )
        );
        std::fs::write(dir.join(FINE_NAMES_FILE), names("f", 100)).unwrap();
        assert_eq!(
            load(tmp.path(), Cifar100Labels::Fine)
                .unwrap_err()
                .to_string(),
            format!("missing file {}", dir.join(TRAIN_FILE).display())
        );
        std::fs::write(dir.join(TRAIN_FILE), vec![0; 3074]).unwrap();
        assert_eq!(
            load(tmp.path(), Cifar100Labels::Fine)
                .unwrap_err()
                .to_string(),
            format!(
                "{}: 3074 bytes, expected 153700000 (50000 records of 3074 bytes)",
                dir.join(TRAIN_FILE).display()
            )
        );
        assert_eq!(
            load(tmp.path(), Cifar100Labels::Coarse)
                .unwrap_err()
                .to_string(),
            format!("missing file {}", dir.join(COARSE_NAMES_FILE).display())
        );
        assert!(!is_cifar100(tmp.path().join("elsewhere").as_path()));
        assert!(!is_cifar100(Path::new("cifar-10-binary.tar.gz")));
        assert!(is_cifar100(Path::new("CIFAR-100-binary.tgz")));
    }
}
