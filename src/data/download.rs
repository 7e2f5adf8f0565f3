//! Where the data comes from: `--data`, `$MINIVGG_DATA`, or a per-user cache that is filled,
//! once, by a download whose MD5 is checked before anything is unpacked.

use super::cifar10::{self, ALL_FILES, BATCHES_DIR, BATCH_BYTES, META_FILE};
use crate::fsutil::atomic_write_bytes;
use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const OFFICIAL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const OFFICIAL_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
pub const DATA_ENV: &str = "MINIVGG_DATA";

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
    download(&cache)
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
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create cache directory {}", cache_dir.display()))?;
    // A temporary file deletes itself on every early return, so a failed download leaves
    // nothing behind.
    let mut archive = tempfile::Builder::new()
        .prefix(".cifar-10-download-")
        .suffix(".tar.gz")
        .tempfile_in(cache_dir)
        .with_context(|| format!("cannot create a file in {}", cache_dir.display()))?;
    let got = fetch(url, archive.as_file_mut())?;
    if !got.eq_ignore_ascii_case(expected_md5.trim()) {
        bail!("checksum mismatch for {url}: got {got}, expected {expected_md5}");
    }
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
    cifar10::for_each_member(archive, &ALL_FILES, |member| -> Result<()> {
        if member.name == META_FILE {
            cifar10::parse_meta(&member.label, &member.bytes)?;
        } else {
            cifar10::parse_batch(&member.label, &member.bytes)?;
        }
        atomic_write_bytes(&out_dir.join(member.name), &member.bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn no_cache_dir_is_a_clear_error() {
        let err = resolve(None, None, None, no_download)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no per-user cache directory"), "{err}");
        assert!(err.contains("pass --data or set MINIVGG_DATA"), "{err}");
    }
}
