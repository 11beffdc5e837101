//! Files that appear whole or not at all: each output is written to a
//! temporary file in its own folder, flushed to disk, and renamed over the
//! final name. A crash, a full disk or a write error then leaves the previous
//! file (or none), never half of one that looks like a result.

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The temporary files being written now, for [`remove_unfinished`].
static IN_FLIGHT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn in_flight(f: impl FnOnce(&mut HashSet<PathBuf>)) {
    // A poisoned lock still holds a usable set.
    let mut g = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashSet::new));
}

/// Removes every temporary file still being written: for a process about
/// to exit at once (a second Ctrl-C), whose destructors will not run. The
/// files already in place are whole; no half file is left beside them.
pub fn remove_unfinished() {
    in_flight(|set| {
        for tmp in set.drain() {
            let _ = std::fs::remove_file(tmp);
        }
    });
}

/// A file being written under a temporary name beside `target`; renamed into
/// place by [`Pending::commit`], removed when dropped uncommitted.
#[derive(Debug)]
pub struct Pending {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Pending {
    /// Reserves a fresh temporary name in `target`'s folder. The name keeps
    /// `target`'s file name as its end, so writers that pick the format from
    /// the extension still do; it starts with a dot so listings and globs
    /// for results skip it.
    pub fn new(target: &Path) -> Result<Pending> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = target
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{} is not a file path", target.display())))?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut tmp_name =
                std::ffi::OsString::from(format!(".tmp-{}-{n}.", std::process::id()));
            tmp_name.push(name);
            let tmp = dir.join(tmp_name);
            // create_new: never reuse (and so clobber) a file that exists.
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(_) => {
                    in_flight(|set| {
                        set.insert(tmp.clone());
                    });
                    return Ok(Pending {
                        tmp,
                        target: target.to_path_buf(),
                        committed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(Error::Io {
                        path: target.to_path_buf(),
                        source,
                    })
                }
            }
        }
    }

    /// Where to write; the file exists (empty) until committed.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes the temporary file to disk and renames it over the target.
    pub fn commit(mut self) -> Result<()> {
        let io = |source| Error::Io {
            path: self.target.clone(),
            source,
        };
        File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&self.tmp, &self.target).map_err(io)?;
        self.committed = true;
        in_flight(|set| {
            set.remove(&self.tmp);
        });
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
            in_flight(|set| {
                set.remove(&self.tmp);
            });
        }
    }
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    write_with(path, |w| w.write_all(bytes.as_ref()))
}

/// Writes `path` atomically through `fill`, which writes the contents; if it
/// fails, `path` is left as it was and the temporary file is removed.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let pending = Pending::new(path)?;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(pending.path())
        .map_err(io)?;
    let mut w = BufWriter::new(file);
    fill(&mut w).map_err(io)?;
    w.flush().map_err(io)?;
    pending.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("report.json");
        write(&f, "first").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "first");
        write(&f, "second, longer").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "second, longer");
        assert_eq!(listing(dir.path()), vec!["report.json"]);
    }

    #[test]
    fn a_write_failing_halfway_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("path.csv");
        write(&f, "beta\n1\n").unwrap();
        let err = write_with(&f, |w| {
            w.write_all(b"beta\n1\n0.5\n")?;
            Err(std::io::Error::other("disk full (injected)"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full (injected)"), "{err}");
        assert!(err.to_string().contains("path.csv"), "{err}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "beta\n1\n");
        assert_eq!(listing(dir.path()), vec!["path.csv"]);
    }

    #[test]
    fn a_write_failing_before_any_file_existed_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("model.safetensors");
        write_with(&f, |w| {
            w.write_all(&[0u8; 4096])?;
            Err(std::io::Error::other("injected"))
        })
        .unwrap_err();
        assert!(listing(dir.path()).is_empty());
    }

    #[test]
    fn temporary_names_keep_the_extension_and_a_dropped_pending_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pending::new(&dir.path().join("plot.png")).unwrap();
        let name = p.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".tmp-") && name.ends_with(".plot.png"),
            "{name}"
        );
        assert!(p.path().exists());
        drop(p);
        assert!(listing(dir.path()).is_empty());
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("no-such-folder").join("report.json");
        let err = write(&f, "x").unwrap_err().to_string();
        assert!(err.contains("no-such-folder"), "{err}");
    }

    #[test]
    fn temporaries_are_tracked_until_committed_or_dropped() {
        // (remove_unfinished itself is not called here: it would remove the
        // temporaries of other tests running in this process.)
        let tracked = |p: &Path| {
            let mut found = false;
            in_flight(|set| found = set.contains(p));
            found
        };
        let dir = tempfile::tempdir().unwrap();
        let a = Pending::new(&dir.path().join("a.json")).unwrap();
        let b = Pending::new(&dir.path().join("b.json")).unwrap();
        let (ta, tb) = (a.path().to_path_buf(), b.path().to_path_buf());
        assert!(tracked(&ta) && tracked(&tb));
        b.commit().unwrap();
        assert!(tracked(&ta) && !tracked(&tb));
        drop(a);
        assert!(!tracked(&ta));
        assert_eq!(listing(dir.path()), ["b.json"]);
    }
}
