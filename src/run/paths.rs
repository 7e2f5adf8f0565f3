//! Nothing a command reads is lost to what it writes: before any work, the files a command
//! reads and those it will write are resolved to the files they are (through symlinks, hard
//! links and `..`), and a command that would overwrite one of its inputs, or write two of its
//! outputs to one file, is refused naming both.

use super::error::usage;
use crate::fsutil::FileIdentity;
use anyhow::Result;
use std::path::{Component, Path, PathBuf};

/// The files a command reads and writes, each with the flag (or the words) that names it.
#[derive(Default)]
pub(crate) struct Files {
    reads: Vec<(String, PathBuf)>,
    writes: Vec<(String, PathBuf)>,
}

impl Files {
    pub(crate) fn reads(&mut self, role: impl Into<String>, path: &Path) -> &mut Self {
        self.reads.push((role.into(), path.to_path_buf()));
        self
    }

    pub(crate) fn writes(&mut self, role: impl Into<String>, path: &Path) -> &mut Self {
        self.writes.push((role.into(), path.to_path_buf()));
        self
    }

    /// Refuses (exit 2) an output that is an input, or two outputs that are one file.
    pub(crate) fn check_distinct(&self) -> Result<()> {
        let reads: Vec<_> = self.reads.iter().map(|(_, p)| identity(p)).collect();
        let writes: Vec<_> = self.writes.iter().map(|(_, p)| identity(p)).collect();
        for (i, (role, path)) in self.writes.iter().enumerate() {
            if let Some(r) = reads.iter().position(|r| *r == writes[i]) {
                return Err(usage(format!(
                    "{role} would overwrite {} ({}), which this command reads: name another file",
                    self.reads[r].0,
                    path.display()
                )));
            }
            if let Some(j) = writes[..i].iter().position(|w| *w == writes[i]) {
                return Err(usage(format!(
                    "{} and {role} are the same file ({}): one would be lost; name another",
                    self.writes[j].0,
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

/// What a path stands for: the file itself where it exists (so hard links and symlinks to it
/// are one), else the full path it would be created at. A path through a directory yet to be
/// created (`new/../m.safetensors`) is looked up where it leads.
fn identity(path: &Path) -> FileIdentity {
    let resolved = resolved(path);
    let existing = std::fs::metadata(path)
        .map(|meta| (path, meta))
        .or_else(|_| std::fs::metadata(&resolved).map(|meta| (resolved.as_path(), meta)));
    match existing.and_then(|(path, meta)| FileIdentity::of(path, &meta)) {
        Ok(identity) => identity,
        Err(_) => FileIdentity::Path(resolved),
    }
}

/// `path` made absolute with its longest existing ancestor canonical and the rest (what does
/// not exist yet) normalized: `out/../plot.png` and `./plot.png` are one path.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut out = loop {
        if let Ok(canonical) = existing.canonicalize() {
            break canonical;
        }
        let Some(last) = existing.components().next_back() else {
            break existing;
        };
        rest.push(last.as_os_str().to_os_string());
        if !existing.pop() {
            break existing;
        }
    };
    for part in rest.iter().rev() {
        match Path::new(part).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::CurDir) | None => {}
            _ => out.push(part),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_name_one_file_are_one() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.safetensors");
        std::fs::write(&model, b"model").unwrap();
        let link = dir.path().join("hard.safetensors");
        std::fs::hard_link(&model, &link).unwrap();
        assert_eq!(identity(&model), identity(&link));
        #[cfg(unix)]
        {
            let symlink = dir.path().join("sym.safetensors");
            std::os::unix::fs::symlink(&model, &symlink).unwrap();
            assert_eq!(identity(&model), identity(&symlink));
        }
        assert_eq!(
            identity(&model),
            identity(&dir.path().join("new/../m.safetensors"))
        );
        // Files yet to be written are compared by where they would be.
        let new = dir.path().join("new.png");
        let roundabout = dir.path().join("out/../new.png");
        assert_eq!(identity(&new), identity(&roundabout));
        assert_ne!(identity(&new), identity(&dir.path().join("other.png")));
    }

    #[test]
    fn an_output_that_is_an_input_or_another_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.safetensors");
        std::fs::write(&model, b"model").unwrap();
        let err = Files::default()
            .reads("--weights", &model)
            .writes("--output", &model)
            .check_distinct()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--output would overwrite --weights ({}), which this command reads: name another file",
                model.display()
            )
        );
        let plot = dir.path().join("x");
        let err = Files::default()
            .writes("--save", &plot)
            .writes("--output", &plot)
            .check_distinct()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--save and --output are the same file ({}): one would be lost; name another",
                plot.display()
            )
        );
        assert!(Files::default()
            .reads("--weights", &model)
            .writes("--output", &plot)
            .check_distinct()
            .is_ok());
    }
}
