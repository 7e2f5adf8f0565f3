//! CIFAR-10 loading and the verified download, on small synthetic archives served from a
//! local HTTP server, plus one test on the real data set.

use crate::common::{
    self, command_line, gzip, listing, minivgg_offline, on_real_data, tar_gz, tar_gz_with,
    write_file,
};
use md5::{Digest, Md5};
use minivgg::data::cifar10::{
    self, ALL_FILES, BATCHES_DIR, BATCH_BYTES, CLASS_NAMES, IMAGE_BYTES, META_FILE,
    RECORDS_PER_FILE, RECORD_BYTES, TEST_FILE, TRAIN_FILES,
};
use minivgg::data::download::download_verified;
use minivgg::data::Dataset;
use minivgg::train::history::History;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread::{self, JoinHandle};

/// Synthetic label of record `r` in file `file` (0..4 training batches, 5 the test batch).
fn label(file: usize, r: usize) -> u8 {
    ((r * 7 + file) % 10) as u8
}

/// The pixel that the batches mark, and the offset of its R byte in an HWC image.
const MARK_Y: usize = 1;
const MARK_X: usize = 2;
const MARK_HWC: usize = (MARK_Y * 32 + MARK_X) * 3;

/// A full-size batch: labels from [`label`], all pixels 0 except in record 5, whose pixel
/// (1, 2) has R = 200 + file, G = 100, B = 50 in the file's planar layout.
fn batch(file: usize) -> Vec<u8> {
    let mut bytes = vec![0; BATCH_BYTES];
    for r in 0..RECORDS_PER_FILE {
        bytes[r * RECORD_BYTES] = label(file, r);
    }
    let planar = 5 * RECORD_BYTES + 1 + MARK_Y * 32 + MARK_X;
    bytes[planar] = 200 + file as u8;
    bytes[planar + 1024] = 100;
    bytes[planar + 2048] = 50;
    bytes
}

/// The meta file as the official archive writes it, trailing blank line included.
fn meta() -> Vec<u8> {
    format!("{}\n\n", CLASS_NAMES.join("\n")).into_bytes()
}

/// All seven files, keyed by their name inside `cifar-10-batches-bin/`.
fn files() -> Vec<(&'static str, Vec<u8>)> {
    let mut files = vec![(META_FILE, meta())];
    for (i, name) in TRAIN_FILES.iter().enumerate() {
        files.push((name, batch(i)));
    }
    files.push((TEST_FILE, batch(5)));
    files
}

/// `files` as archive members under `cifar-10-batches-bin/`.
fn batch_members<'a>(files: &'a [(&str, Vec<u8>)]) -> impl Iterator<Item = (String, &'a [u8])> {
    files
        .iter()
        .map(|(n, d)| (format!("{BATCHES_DIR}/{n}"), d.as_slice()))
}

/// `files()` under `cifar-10-batches-bin/`, with its directory entry first.
fn archive_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut members = vec![("cifar-10-batches-bin/".to_string(), &[][..])];
    members.extend(batch_members(files));
    tar_gz(&members)
}

fn good_archive() -> &'static [u8] {
    static ARCHIVE: OnceLock<Vec<u8>> = OnceLock::new();
    ARCHIVE.get_or_init(|| archive_of(&files()))
}

/// Writes `files` into `root/cifar-10-batches-bin/`.
fn write_dir(root: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = root.join(BATCHES_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in files {
        write_file(&dir.join(name), data);
    }
    dir
}

fn without(name: &str) -> Vec<(&'static str, Vec<u8>)> {
    files().into_iter().filter(|(n, _)| *n != name).collect()
}

/// `files()` with `name` replaced by `data`.
fn replacing(name: &str, data: Vec<u8>) -> Vec<(&'static str, Vec<u8>)> {
    let mut files = files();
    files.iter_mut().find(|(n, _)| *n == name).unwrap().1 = data;
    files
}

fn load_err(path: &Path) -> String {
    cifar10::load(path).unwrap_err().to_string()
}

fn check_synthetic(data: &Dataset) {
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    assert_eq!(data.train.images().len(), 50_000 * IMAGE_BYTES);
    assert_eq!(data.test.images().len(), 10_000 * IMAGE_BYTES);
    let want: Vec<u8> = (0..5)
        .flat_map(|f| (0..RECORDS_PER_FILE).map(move |r| label(f, r)))
        .collect();
    assert_eq!(data.train.labels(), want);
    let want: Vec<u8> = (0..RECORDS_PER_FILE).map(|r| label(5, r)).collect();
    assert_eq!(data.test.labels(), want);
    // Planar R, G, B in the file become one interleaved RGB pixel.
    for file in 0..5 {
        let image = data.train.image(file * RECORDS_PER_FILE + 5);
        assert_eq!(
            image[MARK_HWC..MARK_HWC + 3],
            [200 + file as u8, 100, 50],
            "file {file}"
        );
        assert_eq!(
            image.iter().map(|&b| u32::from(b)).sum::<u32>(),
            350 + file as u32
        );
    }
    assert_eq!(data.test.image(5)[MARK_HWC..MARK_HWC + 3], [205, 100, 50]);
    assert!(data.train.image(4).iter().all(|&b| b == 0));
    assert_eq!(data.class_names, CLASS_NAMES);
}

#[test]
fn archive_loads_labels_pixels_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = write_file(&tmp.path().join("c.tar.gz"), good_archive());
    check_synthetic(&cifar10::load(&archive).unwrap());
}

#[test]
fn directory_loads_from_parent_or_batches_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_dir(tmp.path(), &files());
    let from_parent = cifar10::load(tmp.path()).unwrap();
    check_synthetic(&from_parent);
    assert_eq!(cifar10::load(&dir).unwrap(), from_parent);
}

#[test]
fn load_test_needs_only_test_batch_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let only: Vec<_> = files()
        .into_iter()
        .filter(|(n, _)| [META_FILE, TEST_FILE].contains(n))
        .collect();
    write_dir(tmp.path(), &only);
    let archive = write_file(&tmp.path().join("c.tgz"), archive_of(&only));
    for path in [tmp.path(), archive.as_path()] {
        let (test, names) = cifar10::load_test(path).unwrap();
        assert_eq!(test.len(), 10_000);
        assert_eq!(test.labels()[..3], [label(5, 0), label(5, 1), label(5, 2)]);
        assert_eq!(test.image(5)[MARK_HWC..MARK_HWC + 3], [205, 100, 50]);
        assert_eq!(names, CLASS_NAMES);
    }
    // The full load still wants the training batches.
    assert_eq!(
        load_err(tmp.path()),
        format!(
            "missing file {}",
            tmp.path().join(BATCHES_DIR).join(TRAIN_FILES[0]).display()
        )
    );
}

#[test]
fn parse_batch_checks_size_and_labels() {
    let err = cifar10::parse_batch("x/data_batch_1.bin", &vec![0; BATCH_BYTES - 1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x/data_batch_1.bin: 30729999 bytes, expected 30730000 (10000 records of 3073 bytes)"
    );
    let mut bytes = batch(0);
    bytes[17 * RECORD_BYTES] = 12;
    let err = cifar10::parse_batch("x/data_batch_1.bin", &bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x/data_batch_1.bin: record 17 has label 12, expected 0..9"
    );
    let split = cifar10::parse_batch("x", &batch(3)).unwrap();
    assert_eq!(split.len(), 10_000);
    assert_eq!(split.image(5)[MARK_HWC..MARK_HWC + 3], [203, 100, 50]);
}

#[test]
fn parse_meta_wants_ten_names() {
    let names = cifar10::parse_meta(
        "m",
        format!("{}\r\n\r\n\n", CLASS_NAMES.join("\r\n")).as_bytes(),
    );
    assert_eq!(names.unwrap(), CLASS_NAMES);
    let err = cifar10::parse_meta("m", CLASS_NAMES[..9].join("\n").as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "m: 9 class names, expected 10 (one per line)"
    );
    let gap = format!(
        "{}\n\n{}",
        CLASS_NAMES[..3].join("\n"),
        CLASS_NAMES[3..].join("\n")
    );
    let err = cifar10::parse_meta("m", gap.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "m: 11 class names, expected 10 (one per line)"
    );
    let blank = format!(
        "{}\n \n{}",
        CLASS_NAMES[..3].join("\n"),
        CLASS_NAMES[4..].join("\n")
    );
    let err = cifar10::parse_meta("m", blank.as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "m: line 4 is empty, expected a class name");
    let err = cifar10::parse_meta("m", b"\xff").unwrap_err().to_string();
    assert!(err.starts_with("m: not UTF-8 text"), "{err}");
}

#[test]
fn directory_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(BATCHES_DIR);
    assert_eq!(
        load_err(tmp.path()),
        format!("missing file {}", dir.join(META_FILE).display())
    );

    write_dir(tmp.path(), &without(TRAIN_FILES[1]));
    let want = format!("missing file {}", dir.join("data_batch_2.bin").display());
    assert_eq!(load_err(tmp.path()), want);
    assert_eq!(load_err(&dir), want);

    // From here on one file at a time is broken, then mended.
    let mut short = batch(1);
    short.pop();
    write_file(&dir.join(TRAIN_FILES[1]), &short);
    assert_eq!(
        load_err(tmp.path()),
        format!(
            "{}: 30729999 bytes, expected 30730000 (10000 records of 3073 bytes)",
            dir.join("data_batch_2.bin").display()
        )
    );
    write_file(&dir.join(TRAIN_FILES[1]), batch(1));

    let mut bad = batch(5);
    bad[9999 * RECORD_BYTES] = 10;
    write_file(&dir.join(TEST_FILE), &bad);
    assert_eq!(
        load_err(tmp.path()),
        format!(
            "{}: record 9999 has label 10, expected 0..9",
            dir.join(TEST_FILE).display()
        )
    );
    write_file(&dir.join(TEST_FILE), batch(5));
    check_synthetic(&cifar10::load(tmp.path()).unwrap());

    write_file(&dir.join(META_FILE), b"cat\ndog\n");
    let want = format!(
        "{}: 2 class names, expected 10 (one per line)",
        dir.join(META_FILE).display()
    );
    assert_eq!(load_err(tmp.path()), want);
    assert_eq!(
        cifar10::load_test(tmp.path()).unwrap_err().to_string(),
        want
    );

    write_file(&dir.join(META_FILE), [b'a'; 70_000]);
    let want = format!(
        "{}: 70000 bytes, more than the 65536 this file may have",
        dir.join(META_FILE).display()
    );
    assert_eq!(load_err(tmp.path()), want);

    std::fs::remove_file(dir.join(META_FILE)).unwrap();
    std::fs::create_dir(dir.join(META_FILE)).unwrap();
    assert_eq!(
        load_err(tmp.path()),
        format!(
            "{}: cannot read: a directory, not a regular file",
            dir.join(META_FILE).display()
        )
    );
}

#[test]
fn archive_errors_name_the_member() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.tar.gz");
    let member = |name: &str| format!("{}: member {BATCHES_DIR}/{name}", path.display());

    write_file(&path, archive_of(&without(TEST_FILE)));
    let want = format!(
        "{}: no member cifar-10-batches-bin/test_batch.bin",
        path.display()
    );
    assert_eq!(load_err(&path), want);
    assert_eq!(cifar10::load_test(&path).unwrap_err().to_string(), want);

    let mut short = batch(2);
    short.truncate(3073 * 9999);
    write_file(&path, archive_of(&replacing(TRAIN_FILES[2], short)));
    assert_eq!(
        load_err(&path),
        format!(
            "{}: 30726927 bytes, expected 30730000 (10000 records of 3073 bytes)",
            member("data_batch_3.bin")
        )
    );

    let mut bad = batch(2);
    bad[17 * RECORD_BYTES] = 12;
    write_file(&path, archive_of(&replacing(TRAIN_FILES[2], bad)));
    assert_eq!(
        load_err(&path),
        format!(
            "{}: record 17 has label 12, expected 0..9",
            member("data_batch_3.bin")
        )
    );

    write_file(&path, archive_of(&replacing(META_FILE, b"\n\n".to_vec())));
    assert_eq!(
        load_err(&path),
        format!(
            "{}: 0 class names, expected 10 (one per line)",
            member(META_FILE)
        )
    );

    // Only the exact name counts: a look-alike elsewhere does not stand in for a member.
    let mut files = without(TEST_FILE);
    files.push(("sub/test_batch.bin", batch(5)));
    write_file(&path, archive_of(&files));
    assert_eq!(
        load_err(&path),
        format!(
            "{}: no member cifar-10-batches-bin/test_batch.bin",
            path.display()
        )
    );
}

#[test]
fn archive_headers_claiming_huge_sizes_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.tar.gz");
    let meta_name = format!("{BATCHES_DIR}/{META_FILE}");
    write_file(
        &path,
        tar_gz_with(&[(&meta_name, &[])], Some((&meta_name, 1_000_000))),
    );
    assert_eq!(
        load_err(&path),
        format!(
            "{}: member {meta_name}: 1000000 bytes, more than the 65536 this file may have",
            path.display()
        )
    );
    let batch_name = format!("{BATCHES_DIR}/{TEST_FILE}");
    write_file(
        &path,
        tar_gz_with(&[(&batch_name, &[])], Some((&batch_name, 5_000_000_000))),
    );
    assert_eq!(
        cifar10::load_test(&path).unwrap_err().to_string(),
        format!(
            "{}: member {batch_name}: 5000000000 bytes, expected 30730000 (10000 records of 3073 bytes)",
            path.display()
        )
    );
}

#[test]
fn damaged_archives_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.tar.gz");
    let damaged = format!("{}: damaged gzip or tar archive: ", path.display());
    let good = good_archive();

    write_file(&path, b"this is not gzip");
    let err = load_err(&path);
    assert!(err.starts_with(&damaged), "{err}");
    assert!(err.contains("gzip header"), "{err}");

    write_file(&path, &good[..good.len() / 2]);
    let err = load_err(&path);
    assert!(err.starts_with(&damaged), "{err}");

    // Intact gzip around a tar cut inside test_batch.bin.
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(good)
        .read_to_end(&mut tar)
        .unwrap();
    tar.truncate(tar.len() - BATCH_BYTES / 2);
    write_file(&path, gzip(&tar));
    let err = cifar10::load_test(&path).unwrap_err().to_string();
    assert!(err.starts_with(&damaged), "{err}");
    assert!(err.contains("test_batch.bin"), "{err}");

    // A wrong CRC in the gzip trailer is only seen if the stream is read to its end.
    let mut bad_crc = good.to_vec();
    let crc = bad_crc.len() - 8;
    bad_crc[crc] ^= 0xff;
    write_file(&path, &bad_crc);
    let err = load_err(&path);
    assert!(err.starts_with(&damaged), "{err}");
    assert!(
        err.ends_with("corrupt gzip stream does not have a matching checksum"),
        "{err}"
    );
}

#[test]
fn unusable_paths_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = write_file(&tmp.path().join("cifar.zip"), b"PK");
    assert_eq!(
        load_err(&zip),
        format!(
            "{} is neither a directory nor a .tar.gz / .tgz archive",
            zip.display()
        )
    );
    let missing = tmp.path().join("missing.tar.gz");
    assert_eq!(
        load_err(&missing),
        format!("{} does not exist", missing.display())
    );
}

/// Serves one HTTP/1.1 response with `body`; the thread returns the request head it got.
fn serve(status: &'static str, body: Vec<u8>) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/c.tar.gz",
        listener.local_addr().unwrap().port()
    );
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/x-gzip\r\nConnection: close\r\n\r\n",
            body.len()
        );
        // The client may hang up early on an error status; that is not this test's concern.
        let _ = stream
            .write_all(response.as_bytes())
            .and_then(|_| stream.write_all(&body));
        String::from_utf8_lossy(&head).into_owned()
    });
    (url, server)
}

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

fn sorted_files() -> Vec<String> {
    let mut names: Vec<String> = ALL_FILES.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

#[test]
fn download_verified_unpacks_checked_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut members = files();
    members.push(("readme.html", b"<html></html>".to_vec()));
    let archive = archive_of(&members);
    let (url, server) = serve("200 OK", archive.clone());
    let got = download_verified(&url, &md5_hex(&archive).to_uppercase(), &cache).unwrap();
    assert_eq!(got, cache);
    let request = server.join().unwrap().to_lowercase();
    assert!(
        request.starts_with("get /c.tar.gz http/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("\r\naccept-encoding: identity\r\n"),
        "{request}"
    );
    // Only the batches directory remains: the archive is gone, readme.html never written.
    assert_eq!(listing(&cache), [BATCHES_DIR]);
    assert_eq!(listing(&cache.join(BATCHES_DIR)), sorted_files());
    for (name, data) in files() {
        assert!(
            std::fs::read(cache.join(BATCHES_DIR).join(name)).unwrap() == data,
            "{name}"
        );
    }
    check_synthetic(&cifar10::load(&cache).unwrap());
}

#[test]
fn download_checksum_mismatch_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, server) = serve("200 OK", good_archive().to_vec());
    let wrong = "0123456789abcdef0123456789abcdef";
    let err = download_verified(&url, wrong, tmp.path()).unwrap_err();
    server.join().unwrap();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "checksum mismatch for {url}: got {}, expected {wrong}",
            md5_hex(good_archive())
        )
    );
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn download_http_error_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, server) = serve("404 Not Found", b"gone".to_vec());
    let err = format!(
        "{:#}",
        download_verified(&url, &md5_hex(b"gone"), tmp.path()).unwrap_err()
    );
    server.join().unwrap();
    assert!(err.starts_with(&format!("cannot download {url}")), "{err}");
    assert!(err.contains("404"), "{err}");
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn download_never_writes_outside_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("a").join("cache");
    let unique = format!(
        "minivgg-evil-{}-{}",
        std::process::id(),
        tmp.path().file_name().unwrap().to_string_lossy()
    );
    let absolute = std::env::temp_dir().join(&unique);
    let escapes = [
        format!("../{unique}"),
        format!("../../{unique}"),
        format!("{BATCHES_DIR}/../../{unique}"),
        absolute.display().to_string(),
    ];
    let payload = b"evil".to_vec();
    let mut members: Vec<(String, &[u8])> = escapes
        .into_iter()
        .map(|e| (e, payload.as_slice()))
        .collect();
    // A look-alike of a wanted name that climbs out must not be taken for it either.
    members.push((format!("{BATCHES_DIR}/../{TEST_FILE}"), &payload));
    let good = files();
    members.extend(batch_members(&good));
    let archive = tar_gz(&members);

    let (url, server) = serve("200 OK", archive.clone());
    download_verified(&url, &md5_hex(&archive), &cache).unwrap();
    server.join().unwrap();
    for path in [
        tmp.path().join(&unique),
        tmp.path().join("a").join(&unique),
        cache.join(&unique),
        absolute,
        cache.join(TEST_FILE),
    ] {
        assert!(!path.exists(), "{} was written", path.display());
    }
    assert_eq!(listing(tmp.path()), ["a"]);
    assert_eq!(listing(&tmp.path().join("a")), ["cache"]);
    assert_eq!(listing(&cache), [BATCHES_DIR]);
    assert_eq!(listing(&cache.join(BATCHES_DIR)), sorted_files());
    assert_eq!(
        std::fs::read(cache.join(BATCHES_DIR).join(TEST_FILE))
            .unwrap()
            .len(),
        BATCH_BYTES
    );
}

/// The real data set: `$MINIVGG_DATA` (CI sets it), else the shared copy next to the crate.
#[test]
fn real_cifar10() {
    let path = common::real_data_path();
    let start = std::time::Instant::now();
    let data = cifar10::load(&path).unwrap();
    eprintln!("loaded {} in {:.2?}", path.display(), start.elapsed());
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    assert_eq!(data.train.labels()[..10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    assert_eq!(data.test.labels()[..10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    let mut train_counts = [0; 10];
    data.train
        .labels()
        .iter()
        .for_each(|&l| train_counts[l as usize] += 1);
    assert_eq!(train_counts, [5000; 10]);
    let mut test_counts = [0; 10];
    data.test
        .labels()
        .iter()
        .for_each(|&l| test_counts[l as usize] += 1);
    assert_eq!(test_counts, [1000; 10]);
    assert_eq!(data.class_names, CLASS_NAMES);
    // Per-channel means published with the data: they come out right only if every pixel's
    // R, G and B land in the channel slots 0, 1, 2.
    let mut sums = [0u64; 3];
    for px in data.train.images().chunks_exact(3) {
        for (sum, &v) in sums.iter_mut().zip(px) {
            *sum += u64::from(v);
        }
    }
    let means = sums.map(|s| s as f64 / (50_000.0 * 1024.0 * 255.0));
    for (mean, want) in means.iter().zip([0.491400, 0.482158, 0.446531]) {
        assert!((mean - want).abs() < 1e-5, "channel means {means:?}");
    }
    let (test, names) = cifar10::load_test(&path).unwrap();
    assert!(test == data.test);
    assert_eq!(names, CLASS_NAMES);
}

/// A saved-model file whose tensors are LeNet's while its architecture says ShallowNet.
fn mismatched_model() -> Vec<u8> {
    use minivgg::engine::Network;
    use minivgg::model::zoo;
    use minivgg::store::model_file;
    use safetensors::tensor::SafeTensors;
    let lenet = Network::new(&zoo::lenet(), 1, 1).unwrap();
    let bytes = model_file::to_bytes(&lenet, &[], Default::default()).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let metadata = std::collections::HashMap::from([(
        "minivgg_spec".to_string(),
        serde_json::to_string(&zoo::shallownet()).unwrap(),
    )]);
    safetensors::tensor::serialize(file.tensors(), Some(metadata)).unwrap()
}

/// Every bad input gets one clear line naming the flag or file, exit code 2, no panic, and no
/// new or altered file.
#[test]
fn every_bad_input_exits_2_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let out = root.join("out");
    std::fs::create_dir(&out).unwrap();
    let plot = out.join("plot.png");
    let data = root.join("data");
    let batches = data.join(BATCHES_DIR);
    let archive = root.join("c.tar.gz");
    let weights = root.join("model.safetensors");
    let real_model = {
        let net = minivgg::engine::Network::new(&minivgg::model::zoo::shallownet(), 1, 1).unwrap();
        minivgg::store::model_file::to_bytes(&net, &[], Default::default()).unwrap()
    };
    let garbage_tar = gzip(&[0x5a; 10_000]);
    let mut wrong_records = vec![0u8; RECORDS_PER_FILE * (RECORD_BYTES - 1)];
    wrong_records[0] = 1;
    let mut label_10 = batch(3);
    label_10[42 * RECORD_BYTES] = 10;
    let mut oversized = batch(1);
    oversized.push(0);
    let mut truncated = batch(1);
    truncated.truncate(1000);

    enum Setup {
        None,
        Dir(Vec<(&'static str, Vec<u8>)>),
        Archive(Vec<u8>),
        Weights(Vec<u8>),
        File(PathBuf),
    }
    let train_on = |path: &Path| -> Vec<String> {
        command_line(
            "train --epochs 1",
            &[
                "--data",
                path.to_str().unwrap(),
                "--output",
                plot.to_str().unwrap(),
            ],
        )
    };
    let flags = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "train".to_string(),
            "--output".into(),
            plot.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let evaluate = vec![
        "evaluate".to_string(),
        "--weights".into(),
        weights.display().to_string(),
    ];
    let batch_2 = batches.join("data_batch_2.bin").display().to_string();
    let cases: Vec<(&str, Setup, Vec<String>, String)> = vec![
        (
            "missing batch file",
            Setup::Dir(without(TRAIN_FILES[2])),
            train_on(&data),
            format!("missing file {}", batches.join("data_batch_3.bin").display()),
        ),
        (
            "truncated batch file",
            Setup::Dir(replacing(TRAIN_FILES[1], truncated)),
            train_on(&data),
            format!("{batch_2}: 1000 bytes, expected 30730000"),
        ),
        (
            "oversized batch file",
            Setup::Dir(replacing(TRAIN_FILES[1], oversized)),
            train_on(&data),
            format!("{batch_2}: 30730001 bytes, expected 30730000"),
        ),
        (
            "records of the wrong size",
            Setup::Dir(replacing(TRAIN_FILES[1], wrong_records)),
            train_on(&data),
            format!("{batch_2}: 30720000 bytes, expected 30730000 (10000 records of 3073 bytes)"),
        ),
        (
            "label above 9",
            Setup::Dir(replacing(TRAIN_FILES[3], label_10)),
            train_on(&data),
            format!(
                "{}: record 42 has label 10, expected 0..9",
                batches.join("data_batch_4.bin").display()
            ),
        ),
        (
            "corrupt gzip",
            Setup::Archive(b"this is not gzip".to_vec()),
            train_on(&archive),
            format!("{}: damaged gzip or tar archive", archive.display()),
        ),
        (
            "corrupt tar",
            Setup::Archive(garbage_tar),
            train_on(&archive),
            format!("{}: damaged gzip or tar archive", archive.display()),
        ),
        (
            "member with ..",
            Setup::Archive(tar_gz(&[(
                "../cifar-10-batches-bin/batches.meta.txt",
                &meta(),
            )])),
            train_on(&archive),
            format!("{}: no member cifar-10-batches-bin/", archive.display()),
        ),
        (
            "member with an absolute path",
            Setup::Archive(tar_gz(&[("/cifar-10-batches-bin/batches.meta.txt", &meta())])),
            train_on(&archive),
            format!("{}: no member cifar-10-batches-bin/", archive.display()),
        ),
        (
            "data path that does not exist",
            Setup::None,
            train_on(&root.join("nowhere")),
            "data path".to_string() + &format!(" {} (from --data) does not exist", root.join("nowhere").display()),
        ),
        (
            "truncated weights",
            Setup::Weights(real_model[..real_model.len() / 2].to_vec()),
            evaluate.clone(),
            format!("{}: ", weights.display()),
        ),
        (
            "weights file that does not exist",
            Setup::None,
            vec![
                "evaluate".into(),
                "--weights".into(),
                root.join("missing.safetensors").display().to_string(),
            ],
            format!("cannot read weights file {}", root.join("missing.safetensors").display()),
        ),
        (
            "weights that are not safetensors",
            Setup::Weights(b"hello".to_vec()),
            evaluate.clone(),
            format!("{}: not a safetensors file", weights.display()),
        ),
        (
            "weights that do not fit the architecture",
            Setup::Weights(mismatched_model()),
            evaluate.clone(),
            format!(
                "{}: tensor conv2d_1/kernel has shape [5, 5, 3, 20], the architecture needs [3, 3, 3, 32]",
                weights.display()
            ),
        ),
        (
            "architecture that does not exist",
            Setup::None,
            flags(&["--model", "resnet"]),
            "--model: ".into(),
        ),
        ("batch size 0", Setup::None, flags(&["--batch-size", "0"]), "--batch-size must be at least 1".into()),
        ("epochs 0", Setup::None, flags(&["--epochs", "0"]), "--epochs must be at least 1".into()),
        ("epochs beyond the bound", Setup::None, flags(&["--epochs", "10001"]), "--epochs 10001: at most 10000".into()),
        ("batch size of a billion", Setup::None, flags(&["--batch-size", "1000000000"]), "--batch-size 1000000000: at most 65536".into()),
        // 67 GiB: more than the machines this runs on have.
        // Planned once the data is loaded: the network is built for the data's shape.
        ("batch size beyond the memory", Setup::None, flags(&["--batch-size", "50000", "--data", &common::real_data_path().display().to_string()]), "--batch-size 50000: the run needs 67.4 GiB of memory (batches of 50000: 67.1 GiB;".into()),
        ("limit beyond the bound", Setup::None, flags(&["--limit", "16777217"]), "--limit 16777217: at most 16777216".into()),
        ("threads beyond the cores", Setup::None, flags(&["--threads", "100000"]), "--threads 100000: at most ".into()),
        ("negative lr", Setup::None, flags(&["--lr", "-0.1"]), "--lr must be a positive number, got -0.1".into()),
        ("NaN lr", Setup::None, flags(&["--lr", "NaN"]), "--lr must be a positive number, got NaN".into()),
        ("momentum 1", Setup::None, flags(&["--momentum", "1"]), "--momentum must be in [0, 1), got 1".into()),
        ("negative momentum", Setup::None, flags(&["--momentum", "-0.5"]), "--momentum must be in [0, 1), got -0.5".into()),
        ("negative weight decay", Setup::None, flags(&["--weight-decay", "-0.001"]), "--weight-decay must be a non-negative number, got -0.001".into()),
        (
            "output directory that cannot be written",
            Setup::File(root.join("a-file")),
            vec![
                "train".into(),
                "--output".into(),
                root.join("a-file/plot.png").display().to_string(),
            ],
            format!("output {} is not writable", root.join("a-file/plot.png").display()),
        ),
    ];
    for (name, setup, args, fragment) in cases {
        match &setup {
            Setup::None => {}
            Setup::Dir(files) => {
                write_dir(&data, files);
            }
            Setup::Archive(bytes) => {
                write_file(&archive, bytes);
            }
            Setup::Weights(bytes) => {
                write_file(&weights, bytes);
            }
            Setup::File(path) => {
                write_file(path, b"a file, not a directory");
            }
        }
        let before = common::snapshot(root);
        let run = minivgg_offline(root, &args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let line = stderr.lines().last().unwrap_or_default();
        assert!(
            line.starts_with("error: ") && line.contains(&fragment),
            "{name}: expected {fragment:?} in {stderr:?}"
        );
        assert_eq!(common::snapshot(root), before, "{name}: files changed");
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(&archive);
        let _ = std::fs::remove_file(&weights);
    }
}

/// A disk that fills while the checkpoint is saved: simulated with a file-size limit (writes
/// past it fail with EFBIG, SIGXFSZ ignored). Exit 2, the file named, nothing half-written:
/// only the epoch's monitor files, whole, which are small enough to fit, and the lock file.
#[test]
fn a_full_disk_while_saving_leaves_no_partial_file() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let checkpoints = tmp.path().join("ckpt");
    std::fs::create_dir(&checkpoints).unwrap();
    let plot = tmp.path().join("plot.png");
    let before = common::snapshot(tmp.path());
    let mut command = on_real_data();
    command
        .args("train --model shallownet --epochs 1 --limit 64".split_whitespace())
        .arg("--output")
        .arg(&plot)
        .arg("--checkpoint-dir")
        .arg(&checkpoints);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256 * 1024,
                rlim_max: 256 * 1024,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let want = format!(
        "error: cannot write {}: File too large",
        checkpoints.join("checkpoint.safetensors").display()
    );
    assert!(
        stderr.trim_end().starts_with(&want),
        "expected {want:?}: {stderr}"
    );
    let mut monitor = ["plot.csv", "plot.json", "plot.png"]
        .map(|f| tmp.path().join(f))
        .to_vec();
    // The run's lock on its checkpoint directory (its process id) stays, unlocked.
    monitor.push(checkpoints.join("lock"));
    let left: Vec<PathBuf> = common::snapshot(tmp.path())
        .into_iter()
        .map(|(path, ..)| path)
        .filter(|path| !monitor.contains(path))
        .collect();
    let before: Vec<PathBuf> = before.into_iter().map(|(path, ..)| path).collect();
    assert_eq!(left, before, "no other file may be left behind");
    let csv = std::fs::read_to_string(&monitor[0]).unwrap();
    assert_eq!(History::from_csv(&csv).unwrap().epochs.len(), 1);
    let json = std::fs::read_to_string(&monitor[1]).unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&json).is_ok(),
        "{json}"
    );
    assert!(image::open(&monitor[2]).is_ok());
}
