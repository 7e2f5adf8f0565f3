//! The CIFAR-10 reader on arbitrary bytes: a batch file, the meta file and a whole `.tar.gz`
//! archive. Whatever the input, the reader must return a `DataError`, never panic or allocate
//! without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minivgg::data::cifar10::{
    load_archive_bytes, parse_batch, parse_meta, BATCH_BYTES, NUM_CLASSES, RECORDS_PER_FILE,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(names) = parse_meta("fuzz/batches.meta.txt", data) {
        assert_eq!(names.len(), NUM_CLASSES);
        assert!(names.iter().all(|n| !n.is_empty() && n.trim() == n));
    }
    check_batch(parse_batch("fuzz/data_batch_1.bin", data));
    // A batch file has a fixed size that no fuzz input reaches: an input starting with `B`
    // is repeated to that size, so that the record and label checks run on its bytes.
    if let Some((b'B', rest)) = data.split_first() {
        if !rest.is_empty() {
            let mut batch = Vec::with_capacity(BATCH_BYTES);
            while batch.len() < BATCH_BYTES {
                let n = rest.len().min(BATCH_BYTES - batch.len());
                batch.extend_from_slice(&rest[..n]);
            }
            check_batch(parse_batch("fuzz/data_batch_2.bin", &batch));
        }
    }
    // Anything but a gzip stream is rejected on its first bytes: skip the loader's allocations.
    if !data.starts_with(&[0x1f, 0x8b]) {
        return;
    }
    if let Ok(data) = load_archive_bytes("fuzz.tar.gz", data) {
        assert_eq!(data.class_names.len(), NUM_CLASSES);
        assert!(data.train.labels().iter().all(|&l| usize::from(l) < NUM_CLASSES));
        assert!(data.test.labels().iter().all(|&l| usize::from(l) < NUM_CLASSES));
    }
});

fn check_batch(result: Result<minivgg::data::Split, minivgg::data::cifar10::DataError>) {
    if let Ok(split) = result {
        assert_eq!(split.len(), RECORDS_PER_FILE);
        assert!(split.labels().iter().all(|&l| usize::from(l) < NUM_CLASSES));
    }
}
