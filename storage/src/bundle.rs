//! A bundle: the files of a sealed split in one object, found by a footer index, so a
//! reader opens the split with one ranged read of its tail and then reads only the
//! file ranges a query touches.
//!
//! ```text
//! [file 0][file 1]…[file n-1][footer: JSON][footer length: u32 LE][magic "TRIADBN1"]
//! ```
//!
//! The footer lists every file (name, offset, length) and carries the writer's own
//! metadata (for a split: its time range, document count, WAL position), so a reader
//! knows what a split holds without opening anything else. Files are stored as they
//! are (tantivy's files are compressed already) and in name order, so the same directory
//! always makes the same bytes.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cache::ObjectReader;
use crate::error::{Result, StorageError};

/// The last eight bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"TRIADBN1";
/// Footer length and magic.
const TRAILER: u64 = 12;
/// How much of the tail a reader fetches first: the footer of a split with a few
/// dozen files fits, so opening a bundle is one request.
const TAIL_GUESS: u64 = 64 << 10;
/// Largest footer accepted (a hostile or corrupt length must not allocate gigabytes).
const MAX_FOOTER: u64 = 16 << 20;

/// One file inside a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name (no directories).
    pub name: String,
    /// Offset of its first byte in the bundle.
    pub offset: u64,
    /// Its length, bytes.
    pub len: u64,
}

/// The footer of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    /// Format version (1).
    pub version: u32,
    /// The files, in name order.
    pub files: Vec<FileEntry>,
    /// The writer's metadata about the whole bundle.
    pub meta: serde_json::Value,
}

/// The file a writer leaves in a sealed directory once its bundle is published, holding
/// the time of publication (ms since the epoch): local bookkeeping that survives a
/// restart whatever the metastore says then, and never part of a bundle.
pub const PUBLISHED_MARKER: &str = "triad-published";

/// When the sealed directory `dir` was published (ms), if it was.
pub fn published_at(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join(PUBLISHED_MARKER))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Records that `dir` was published at `at_ms` (synced, replaced atomically). Blocking.
pub fn mark_published(dir: &Path, at_ms: i64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{PUBLISHED_MARKER}.tmp"));
    std::fs::write(&tmp, at_ms.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(PUBLISHED_MARKER))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Writes the regular files of `dir` (except those `skip` names, and the
/// [`PUBLISHED_MARKER`]) and `meta` as a bundle at `out`, synced to disk. Returns the
/// bundle's length. Blocking.
pub fn write_dir(
    dir: &Path,
    out: &Path,
    meta: serde_json::Value,
    skip: impl Fn(&str) -> bool,
) -> Result<u64> {
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(dir).map_err(StorageError::io(format!("list {}", dir.display())))?
    {
        let entry = entry.map_err(StorageError::io(format!("list {}", dir.display())))?;
        let is_file = entry
            .file_type()
            .map_err(StorageError::io(format!("stat {}", entry.path().display())))?
            .is_file();
        if let (true, Some(name)) = (is_file, entry.file_name().to_str())
            && !skip(name)
            && !name.starts_with(PUBLISHED_MARKER)
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    let file = std::fs::File::create(out)
        .map_err(StorageError::io(format!("create {}", out.display())))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut files = Vec::with_capacity(names.len());
    let mut offset = 0u64;
    for name in names {
        let path = dir.join(&name);
        let mut f = std::fs::File::open(&path)
            .map_err(StorageError::io(format!("open {}", path.display())))?;
        let len = std::io::copy(&mut f, &mut w).map_err(StorageError::io(format!(
            "copy {} into {}",
            path.display(),
            out.display()
        )))?;
        files.push(FileEntry { name, offset, len });
        offset += len;
    }
    let footer = serde_json::to_vec(&Footer {
        version: 1,
        files,
        meta,
    })
    .map_err(|e| StorageError::Corrupt {
        key: out.display().to_string(),
        reason: format!("footer: {e}"),
    })?;
    let write = |w: &mut std::io::BufWriter<std::fs::File>| -> std::io::Result<()> {
        w.write_all(&footer)?;
        w.write_all(&(footer.len() as u32).to_le_bytes())?;
        w.write_all(MAGIC)?;
        w.flush()?;
        w.get_ref().sync_all()
    };
    write(&mut w).map_err(StorageError::io(format!("write {}", out.display())))?;
    Ok(offset + footer.len() as u64 + TRAILER)
}

/// An opened bundle: its footer, read with one ranged read of its tail.
#[derive(Debug, Clone)]
pub struct Bundle {
    reader: ObjectReader,
    footer: Footer,
    index: HashMap<String, Range<u64>>,
}

impl Bundle {
    /// Reads the footer of the bundle `reader` reads.
    pub async fn open(reader: ObjectReader) -> Result<Bundle> {
        let key = reader.key().to_string();
        let corrupt = |reason: String| StorageError::Corrupt {
            key: key.clone(),
            reason,
        };
        let len = reader.len();
        if len < TRAILER {
            return Err(corrupt(format!("{len} bytes is shorter than a trailer")));
        }
        let tail_start = len.saturating_sub(TAIL_GUESS);
        let tail = reader.read(tail_start..len).await?;
        let t = &tail[tail.len() - TRAILER as usize..];
        if &t[4..] != MAGIC {
            return Err(corrupt("no bundle magic at the end".into()));
        }
        let footer_len = u64::from(u32::from_le_bytes([t[0], t[1], t[2], t[3]]));
        if footer_len > MAX_FOOTER || footer_len + TRAILER > len {
            return Err(corrupt(format!("footer length {footer_len} does not fit")));
        }
        let footer_start = len - TRAILER - footer_len;
        let footer_bytes: Bytes = if footer_start >= tail_start {
            let a = (footer_start - tail_start) as usize;
            tail.slice(a..a + footer_len as usize)
        } else {
            reader.read(footer_start..len - TRAILER).await?
        };
        let footer: Footer =
            serde_json::from_slice(&footer_bytes).map_err(|e| corrupt(format!("footer: {e}")))?;
        if footer.version != 1 {
            return Err(corrupt(format!("unknown version {}", footer.version)));
        }
        let mut index = HashMap::with_capacity(footer.files.len());
        for f in &footer.files {
            let end = f.offset.checked_add(f.len).filter(|e| *e <= footer_start);
            let Some(end) = end else {
                return Err(corrupt(format!("file {} lies outside the data", f.name)));
            };
            index.insert(f.name.clone(), f.offset..end);
        }
        Ok(Bundle {
            reader,
            footer,
            index,
        })
    }

    /// The writer's metadata.
    pub fn meta(&self) -> &serde_json::Value {
        &self.footer.meta
    }

    /// The files, in name order.
    pub fn files(&self) -> &[FileEntry] {
        &self.footer.files
    }

    /// The byte range of file `name` in the bundle.
    pub fn file(&self, name: &str) -> Option<Range<u64>> {
        self.index.get(name).cloned()
    }

    /// Bytes `range` of file `name` (relative to the file).
    pub async fn read(&self, name: &str, range: Range<u64>) -> Result<Bytes> {
        let file = self.file(name).ok_or_else(|| StorageError::NotFound {
            key: format!("{}#{name}", self.reader.key()),
        })?;
        let (start, end) = (file.start + range.start, file.start + range.end);
        if range.start > range.end || end > file.end {
            return Err(StorageError::Corrupt {
                key: self.reader.key().to_string(),
                reason: format!(
                    "read {}..{} past the end of {name} ({} bytes)",
                    range.start,
                    range.end,
                    file.end - file.start
                ),
            });
        }
        self.reader.read(start..end).await
    }

    /// The reader of the whole object.
    pub fn reader(&self) -> &ObjectReader {
        &self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Storage, StorageMetrics};
    use proptest::prelude::*;

    fn files(dir: &Path, contents: &[Vec<u8>]) {
        for (i, c) in contents.iter().enumerate() {
            std::fs::write(dir.join(format!("f{i:02}.bin")), c).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Every file and every range of it reads back as written, whatever the sizes
        /// (empty files, files larger than the first tail read).
        #[test]
        fn bundled_files_read_back_whole_and_in_ranges(
            contents in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..12),
            big in 0usize..2,
            cuts in prop::collection::vec((any::<u16>(), any::<u16>()), 8),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let src = tempfile::tempdir().unwrap();
            let mut contents = contents;
            if big == 1 {
                contents.push((0..(TAIL_GUESS as usize + 5000)).map(|i| (i % 251) as u8).collect());
            }
            files(src.path(), &contents);
            std::fs::write(src.path().join("skip.lock"), b"x").unwrap();
            let objects = tempfile::tempdir().unwrap();
            let out = objects.path().join("tmp.bundle");
            let len = write_dir(src.path(), &out, serde_json::json!({"docs": 7}), |n| n.ends_with(".lock")).unwrap();
            prop_assert_eq!(len, std::fs::metadata(&out).unwrap().len());
            let storage = Storage::local(objects.path(), StorageMetrics::unregistered()).unwrap();
            rt.block_on(async {
                storage.upload_file("a/b.bundle", &out).await.unwrap();
                let reader = ObjectReader::open(storage.clone(), None, "a/b.bundle").await.unwrap();
                let bundle = Bundle::open(reader).await.unwrap();
                assert_eq!(bundle.meta()["docs"], 7);
                assert!(bundle.file("skip.lock").is_none());
                assert_eq!(bundle.files().len(), contents.len());
                for (i, c) in contents.iter().enumerate() {
                    let name = format!("f{i:02}.bin");
                    let whole = bundle.read(&name, 0..c.len() as u64).await.unwrap();
                    assert_eq!(&whole[..], &c[..]);
                    for (a, b) in &cuts {
                        let n = c.len() as u64 + 1;
                        let (a, b) = (u64::from(*a) % n, u64::from(*b) % n);
                        let (a, b) = (a.min(b), a.max(b));
                        let part = bundle.read(&name, a..b).await.unwrap();
                        assert_eq!(&part[..], &c[a as usize..b as usize]);
                    }
                    assert!(bundle.read(&name, 0..c.len() as u64 + 1).await.is_err());
                }
            });
        }
    }

    #[test]
    fn truncated_or_foreign_objects_are_refused_not_misread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let src = tempfile::tempdir().unwrap();
        files(src.path(), &[vec![1; 100], vec![2; 200]]);
        let objects = tempfile::tempdir().unwrap();
        let out = objects.path().join("whole");
        write_dir(src.path(), &out, serde_json::Value::Null, |_| false).unwrap();
        let whole = std::fs::read(&out).unwrap();
        let storage = Storage::local(objects.path(), StorageMetrics::unregistered()).unwrap();
        rt.block_on(async {
            let cases: Vec<(&str, Vec<u8>)> = vec![
                ("empty", Vec::new()),
                ("short", MAGIC.to_vec()),
                ("cut", whole[..whole.len() - 1].to_vec()),
                ("foreign", vec![7; 5000]),
                ("huge-footer", {
                    let mut v = vec![0; 64];
                    v.extend_from_slice(&u32::MAX.to_le_bytes());
                    v.extend_from_slice(MAGIC);
                    v
                }),
                ("bad-json", {
                    let mut v = b"{not json".to_vec();
                    v.extend_from_slice(&9u32.to_le_bytes());
                    v.extend_from_slice(MAGIC);
                    v
                }),
            ];
            for (key, bytes) in cases {
                storage.put_new(key, Bytes::from(bytes)).await.unwrap();
                let reader = ObjectReader::open(storage.clone(), None, key)
                    .await
                    .unwrap();
                let err = Bundle::open(reader).await.unwrap_err();
                assert!(matches!(err, StorageError::Corrupt { .. }), "{key}: {err}");
            }
        });
    }
}
