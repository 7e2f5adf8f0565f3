//! Where the data comes from: `--data`, `$MINIVGG_DATA`, or a per-user cache that is filled,
//! once, by a download whose MD5 is checked before anything is unpacked.

use super::catalogue::NamedSet;
use super::cifar10::{self, ALL_FILES, BATCHES_DIR, BATCH_BYTES, META_FILE};
use super::cifar100;
use crate::fsutil::{atomic_write_bytes, temp_file_beside};
use anyhow::{anyhow, bail, Context, Result};
use md5::{Digest, Md5};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const OFFICIAL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const OFFICIAL_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
pub const DATA_ENV: &str = "MINIVGG_DATA";

/// torchvision's MNIST mirror, and the MD5s of its files (`torchvision/datasets/mnist.py`).
pub const MNIST_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
pub const MNIST_FILES: [Remote; 4] = [
    Remote::new(
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    Remote::new(
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    Remote::new(
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    Remote::new(
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
];
/// Fashion-MNIST's own server, as torchvision uses it, and its files' MD5s.
pub const FASHION_MNIST_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
pub const FASHION_MNIST_FILES: [Remote; 4] = [
    Remote::new(
        "train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    Remote::new(
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
    ),
    Remote::new(
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    Remote::new(
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
];
/// CIFAR-100's binary version, from its authors' page.
pub const CIFAR100_URL: &str = "https://www.cs.toronto.edu/~kriz/";
pub const CIFAR100_FILES: [Remote; 1] = [Remote::new(
    "cifar-100-binary.tar.gz",
    "03b5dce01913d631647c71ecec9e9cb8",
)];

/// One file to download: its name on the server and in the cache, and its published MD5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    pub file: &'static str,
    pub md5: &'static str,
}

impl Remote {
    const fn new(file: &'static str, md5: &'static str) -> Remote {
        Remote { file, md5 }
    }
}

/// Where a data set other than CIFAR-10 is downloaded from: a base URL and its files.
pub fn remote(set: NamedSet) -> (&'static str, &'static [Remote]) {
    match set {
        NamedSet::Cifar10 => (OFFICIAL_URL, &[]),
        NamedSet::Cifar100 => (CIFAR100_URL, &CIFAR100_FILES),
        NamedSet::Mnist => (MNIST_URL, &MNIST_FILES),
        NamedSet::FashionMnist => (FASHION_MNIST_URL, &FASHION_MNIST_FILES),
    }
}

/// The official archive is 170,052,171 bytes; a server sending far more is not sending it.
const MAX_DOWNLOAD_BYTES: u64 = 512 << 20;

/// Where the data comes from: `flag` (`--data`) if given, else `$MINIVGG_DATA`, else the
/// per-user cache directory (`<cache>/minivgg/`), downloading into it if it holds no complete
/// `cifar-10-batches-bin/`. Returns a path that [`cifar10::load`] accepts.
pub fn resolve_data_path(flag: Option<&Path>) -> Result<PathBuf> {
    let cache = dirs::cache_dir().map(|dir| dir.join("minivgg"));
    resolve(flag, std::env::var_os(DATA_ENV), cache, |dir| {
        download_verified(OFFICIAL_URL, OFFICIAL_MD5, dir)
    })
}

/// The path a data set named by `--data NAME` is read from. CIFAR-10: as
/// [`resolve_data_path`]`(None)`. The others: the cache directory
/// `<cache>/minivgg/<flag name>/`, whose missing files are downloaded once, each kept only
/// after its published MD5 is checked. MNIST and Fashion-MNIST: that directory, holding the
/// four `.gz` files as downloaded (or the plain files, put there by hand), for
/// [`super::idx::load`]. CIFAR-100: the verified `cifar-100-binary.tar.gz` in it, kept packed, for
/// [`cifar100::load`] (or the directory, if the binary version was unpacked there by hand).
/// A failed download says where to put the files by hand.
pub fn resolve_named(set: NamedSet) -> Result<PathBuf> {
    if set == NamedSet::Cifar10 {
        return resolve_data_path(None);
    }
    let cache = dirs::cache_dir().map(|dir| dir.join("minivgg").join(set.flag_name()));
    resolve_named_in(set, cache, download_file)
}

/// [`resolve_named`] for a set other than CIFAR-10, with its cache directory and downloader
/// (`download(url, md5, dir, file)` keeps a verified `dir/file`) passed in.
fn resolve_named_in(
    set: NamedSet,
    cache: Option<PathBuf>,
    mut download: impl FnMut(&str, &str, &Path, &str) -> Result<()>,
) -> Result<PathBuf> {
    let title = set.title();
    let (base, files) = remote(set);
    let hand = if set == NamedSet::Cifar100 {
        "PATH"
    } else {
        "DIR"
    };
    let cache = cache.with_context(|| {
        format!(
            "this system has no per-user cache directory to download {title} into; \
             pass --data {hand}"
        )
    })?;
    let is_cifar100 = set == NamedSet::Cifar100;
    let archive = cache.join(CIFAR100_FILES[0].file);
    if is_cifar100 && !archive.is_file() && cifar100::is_cifar100(&cache) {
        return Ok(cache);
    }
    // A file is there if it was kept after its check; the IDX files may be there unpacked.
    let present = |remote: &Remote| {
        cache.join(remote.file).is_file()
            || remote
                .file
                .strip_suffix(".gz")
                .is_some_and(|plain| !is_cifar100 && cache.join(plain).is_file())
    };
    let missing: Vec<&Remote> = files.iter().filter(|r| !present(r)).collect();
    if !missing.is_empty() {
        eprintln!(
            "{title} is not in {}; downloading it from {base}",
            cache.display()
        );
    }
    for remote in missing {
        let url = format!("{base}{}", remote.file);
        download(&url, remote.md5, &cache, remote.file).map_err(|e| {
            // <cache>/minivgg/<set>/, then <cache>/minivgg/.
            remove_empty_dirs([cache.as_path()].into_iter().chain(cache.parent()));
            let names: Vec<&str> = files.iter().map(|r| r.file).collect();
            anyhow!(
                "cannot download {title} ({e:#}); put {} in {}/ or pass --data {hand}",
                names.join(", "),
                cache.display()
            )
        })?;
    }
    Ok(if is_cifar100 { archive } else { cache })
}

/// Downloads `url` and keeps it as `dir/file` once its MD5 is `expected_md5`; nothing is kept
/// otherwise.
pub fn download_file(url: &str, expected_md5: &str, dir: &Path, file: &str) -> Result<()> {
    let download = fetch_verified(url, expected_md5, dir, file)?;
    let path = dir.join(file);
    download
        .as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    download
        .persist(&path)
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

/// [`resolve_data_path`] with its environment passed in, so each branch can be tested.
fn resolve(
    flag: Option<&Path>,
    env: Option<OsString>,
    cache: Option<PathBuf>,
    download: impl FnOnce(&Path) -> Result<PathBuf>,
) -> Result<PathBuf> {
    if let Some(path) = flag {
        return given(path, "--data");
    }
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        return given(Path::new(&value), DATA_ENV);
    }
    let cache = cache.context(format!(
        "this system has no per-user cache directory to download CIFAR-10 into; \
         pass --data or set {DATA_ENV}"
    ))?;
    if has_all_files(&cache.join(BATCHES_DIR)) {
        return Ok(cache);
    }
    eprintln!(
        "CIFAR-10 is not in {}; downloading it from {OFFICIAL_URL}",
        cache.display()
    );
    download(&cache).map_err(|e| {
        remove_empty_dirs([cache.join(BATCHES_DIR).as_path(), &cache]);
        anyhow!(
            "cannot download CIFAR-10 ({e:#}); put the {BATCHES_DIR}/ folder of \
             cifar-10-binary.tar.gz in {}/, or pass --data PATH or set {DATA_ENV}=PATH (the \
             archive or the folder)",
            cache.display()
        )
    })
}

/// Removes each of `dirs` in turn while they are empty: the cache folders a failed download
/// created to write into (innermost first), so that it leaves nothing behind; a folder with
/// anything in it stays.
fn remove_empty_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) {
    for dir in dirs {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return,
            _ => {}
        }
    }
}

fn given(path: &Path, source: &str) -> Result<PathBuf> {
    if !path.exists() {
        bail!(
            "data path {} (from {source}) does not exist",
            path.display()
        );
    }
    Ok(path.to_path_buf())
}

/// Every file present with a plausible size; their contents were checked when they were
/// written, and `cifar10::load` checks them again.
fn has_all_files(dir: &Path) -> bool {
    ALL_FILES
        .iter()
        .all(|name| match std::fs::metadata(dir.join(name)) {
            Ok(meta) => meta.is_file() && (*name == META_FILE || meta.len() == BATCH_BYTES as u64),
            Err(_) => false,
        })
}

/// Downloads `url` into a temporary file in `cache_dir` while computing its MD5. If that is not
/// `expected_md5`, the file is deleted and nothing is kept. Otherwise only the expected members
/// are unpacked, each checked and written atomically, into `cache_dir/cifar-10-batches-bin/`,
/// and the archive is deleted. Returns `cache_dir`.
pub fn download_verified(url: &str, expected_md5: &str, cache_dir: &Path) -> Result<PathBuf> {
    let archive = fetch_verified(url, expected_md5, cache_dir, "cifar-10-binary.tar.gz")?;
    extract(archive.path(), &cache_dir.join(BATCHES_DIR))
        .with_context(|| format!("cannot unpack the CIFAR-10 archive downloaded from {url}"))?;
    archive.close().with_context(|| {
        format!(
            "cannot delete the downloaded archive in {}",
            cache_dir.display()
        )
    })?;
    Ok(cache_dir.to_path_buf())
}

/// Downloads `url` into a temporary file in `dir` (named after `file`) while computing its MD5,
/// and returns it if that is `expected_md5`. A temporary file deletes itself on every early
/// return (and when dropped), so a failed or wrong download leaves nothing behind.
fn fetch_verified(
    url: &str,
    expected_md5: &str,
    dir: &Path,
    file: &str,
) -> Result<tempfile::NamedTempFile> {
    let mut download = temp_file_beside(&dir.join(file))
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let got = fetch(url, download.as_file_mut())?;
    if !got.eq_ignore_ascii_case(expected_md5.trim()) {
        bail!("checksum mismatch for {url}: got {got}, expected {expected_md5}");
    }
    Ok(download)
}

/// Streams `url` into `out`, printing progress to stderr; returns the body's MD5 in hex.
fn fetch(url: &str, out: &mut File) -> Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    // Ask for the bytes as stored: a body decompressed in transit would not match the MD5.
    let response = agent
        .get(url)
        .header("Accept-Encoding", "identity")
        .call()
        .with_context(|| format!("cannot download {url}"))?;
    let total = response.body().content_length();
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .reader();
    let mut md5 = Md5::new();
    let mut buf = vec![0; 1 << 20];
    let mut done = 0u64;
    let mut progress = Progress::new(total);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("download of {url} failed after {done} bytes"))
            }
        };
        md5.update(&buf[..n]);
        out.write_all(&buf[..n])
            .context("cannot write the downloaded archive")?;
        done += n as u64;
        progress.report(done);
    }
    eprintln!("downloaded {:.1} MB from {url}", mb(done));
    Ok(format!("{:x}", md5.finalize()))
}

/// Prints a line every 10% (or every 16 MB when the size is unknown), readable in logs too.
struct Progress {
    total: Option<u64>,
    next: u64,
}

impl Progress {
    const UNKNOWN_STEP: u64 = 16 << 20;

    fn new(total: Option<u64>) -> Progress {
        Progress { total, next: 0 }
    }

    fn report(&mut self, done: u64) {
        if done < self.next {
            return;
        }
        match self.total {
            Some(total) if total > 0 => {
                eprintln!(
                    "downloading: {}% ({:.1} of {:.1} MB)",
                    done * 100 / total,
                    mb(done),
                    mb(total)
                );
                self.next = done + total / 10;
            }
            _ => {
                eprintln!("downloading: {:.1} MB", mb(done));
                self.next = done + Self::UNKNOWN_STEP;
            }
        }
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Writes only the expected members, each validated first, under names of our own: no path
/// from the archive is ever used, so no member can land outside `out_dir`.
fn extract(archive: &Path, out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create directory {}", out_dir.display()))?;
    cifar10::for_each_member(
        archive,
        &cifar10::LAYOUT,
        &ALL_FILES,
        |member| -> Result<()> {
            if member.name == META_FILE {
                cifar10::parse_meta(&member.label, &member.bytes)?;
            } else {
                cifar10::parse_batch(&member.label, &member.bytes)?;
            }
            atomic_write_bytes(&out_dir.join(member.name), &member.bytes)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx;

    fn no_download(_: &Path) -> Result<PathBuf> {
        panic!("must not download");
    }

    #[test]
    fn flag_wins_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let env = Some(OsString::from("/nonexistent/env"));
        let got = resolve(Some(dir.path()), env.clone(), None, no_download).unwrap();
        assert_eq!(got, dir.path());
        let missing = dir.path().join("nope");
        let err = resolve(Some(&missing), env, None, no_download)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "data path {} (from --data) does not exist",
                missing.display()
            )
        );
    }

    #[test]
    fn env_used_when_no_flag_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let got = resolve(None, Some(dir.path().into()), None, no_download).unwrap();
        assert_eq!(got, dir.path());
        let missing = dir.path().join("nope");
        let err = resolve(None, Some(missing.clone().into()), None, no_download).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "data path {} (from MINIVGG_DATA) does not exist",
                missing.display()
            )
        );
    }

    #[test]
    fn complete_cache_is_used_without_download() {
        let cache = tempfile::tempdir().unwrap();
        let batches = cache.path().join(BATCHES_DIR);
        std::fs::create_dir(&batches).unwrap();
        for name in ALL_FILES {
            // Sparse files of the right size: the check looks at names and sizes only.
            let len = if name == META_FILE {
                61
            } else {
                BATCH_BYTES as u64
            };
            File::create(batches.join(name))
                .unwrap()
                .set_len(len)
                .unwrap();
        }
        // An empty MINIVGG_DATA counts as unset.
        let got = resolve(
            None,
            Some(OsString::new()),
            Some(cache.path().into()),
            no_download,
        );
        assert_eq!(got.unwrap(), cache.path());
    }

    #[test]
    fn incomplete_cache_downloads_into_it() {
        let cache = tempfile::tempdir().unwrap();
        let batches = cache.path().join(BATCHES_DIR);
        std::fs::create_dir(&batches).unwrap();
        for name in ALL_FILES {
            // Every batch one byte short, as if a copy had been cut off.
            File::create(batches.join(name))
                .unwrap()
                .set_len(BATCH_BYTES as u64 - 1)
                .unwrap();
        }
        let mut asked = None;
        let got = resolve(None, None, Some(cache.path().into()), |dir| {
            asked = Some(dir.to_path_buf());
            Ok(dir.join("downloaded"))
        });
        assert_eq!(got.unwrap(), cache.path().join("downloaded"));
        assert_eq!(asked.as_deref(), Some(cache.path()));
    }

    #[test]
    fn named_sets_download_only_what_the_cache_lacks() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("mnist");
        std::fs::create_dir(&dir).unwrap();
        // One file already there unpacked, one packed: only the other two are fetched.
        std::fs::write(dir.join("train-images-idx3-ubyte"), b"x").unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), b"x").unwrap();
        let mut asked = Vec::new();
        let got = resolve_named_in(NamedSet::Mnist, Some(dir.clone()), |url, md5, to, file| {
            asked.push((url.to_string(), md5.to_string(), to.to_path_buf()));
            std::fs::write(to.join(file), b"x")?;
            Ok(())
        });
        assert_eq!(got.unwrap(), dir);
        let want = |i: usize| {
            let r = MNIST_FILES[i];
            (
                format!("{MNIST_URL}{}", r.file),
                r.md5.to_string(),
                dir.clone(),
            )
        };
        assert_eq!(asked, vec![want(1), want(2)]);
        // Complete now: nothing more is fetched.
        let no_download =
            |_: &str, _: &str, _: &Path, _: &str| -> Result<()> { panic!("must not download") };
        assert_eq!(
            resolve_named_in(NamedSet::Mnist, Some(dir.clone()), no_download).unwrap(),
            dir
        );
        assert_eq!(
            idx::FILES.map(|f| format!("{f}.gz")),
            MNIST_FILES.map(|r| r.file.to_string())
        );
        assert_eq!(
            FASHION_MNIST_FILES.map(|r| r.file),
            MNIST_FILES.map(|r| r.file)
        );
    }

    #[test]
    fn cifar100_keeps_its_verified_archive() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("cifar100");
        let mut asked = Vec::new();
        let got = resolve_named_in(
            NamedSet::Cifar100,
            Some(dir.clone()),
            |url, md5, to, file| {
                asked.push((url.to_string(), md5.to_string()));
                std::fs::create_dir_all(to)?;
                std::fs::write(to.join(file), b"x")?;
                Ok(())
            },
        );
        let archive = dir.join("cifar-100-binary.tar.gz");
        assert_eq!(got.unwrap(), archive);
        assert_eq!(
            asked,
            vec![(
                "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz".to_string(),
                "03b5dce01913d631647c71ecec9e9cb8".to_string()
            )]
        );
        assert!(cifar100::is_cifar100(&archive));
    }

    #[test]
    fn a_failed_cifar10_download_says_where_to_put_the_files_and_leaves_no_folder() {
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("minivgg");
        let offline = |dir: &Path| -> Result<PathBuf> {
            // As the real download does: the folder is made for the file, then the network fails.
            std::fs::create_dir_all(dir).unwrap();
            Err(anyhow!("failed to lookup address")).context("cannot download https://host/x")
        };
        let err = resolve(None, None, Some(cache.clone()), offline)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "cannot download CIFAR-10 (cannot download https://host/x: failed to lookup \
                 address); put the cifar-10-batches-bin/ folder of cifar-10-binary.tar.gz in \
                 {}/, or pass --data PATH or set MINIVGG_DATA=PATH (the archive or the folder)",
                cache.display()
            )
        );
        assert!(
            !cache.exists(),
            "a failed download left {}",
            cache.display()
        );
    }

    #[test]
    fn a_failed_named_download_says_where_to_put_the_files() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("minivgg").join("fashion-mnist");
        let offline = |url: &str, _: &str, dir: &Path, _: &str| -> Result<()> {
            std::fs::create_dir_all(dir).unwrap();
            Err(anyhow!("no route to host")).with_context(|| format!("cannot download {url}"))
        };
        let err = resolve_named_in(NamedSet::FashionMnist, Some(dir.clone()), offline)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "cannot download Fashion-MNIST (cannot download \
                 {FASHION_MNIST_URL}train-images-idx3-ubyte.gz: no route to host); put \
                 train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
                 t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz in {}/ or pass --data DIR",
                dir.display()
            )
        );
        // The folders made for the download are gone with it; the cache root stays.
        assert!(!cache.path().join("minivgg").exists());
        assert!(cache.path().exists());
        let err = resolve_named_in(NamedSet::Cifar100, Some(dir.clone()), offline)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(&format!(
                "); put cifar-100-binary.tar.gz in {}/ or pass --data PATH",
                dir.display()
            )),
            "{err}"
        );
        let err = resolve_named_in(NamedSet::Mnist, None, offline)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "this system has no per-user cache directory to download MNIST into; \
             pass --data DIR"
        );
    }

    #[test]
    fn no_cache_dir_is_a_clear_error() {
        let err = resolve(None, None, None, no_download)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no per-user cache directory"), "{err}");
        assert!(err.contains("pass --data or set MINIVGG_DATA"), "{err}");
    }
}
