//! Immutable on-disk blocks: every series' samples over a time range.
//!
//! A block is a directory written once (to `<name>.tmp`, fsync'd, then renamed) and
//! never changed:
//! - `chunks`: the encoded chunks back to back; each series' samples in the block are
//!   one chunk (up to 65 535 samples per chunk), so the per-chunk header cost is paid
//!   once per series and block; each chunk is Gorilla XOR or, for series that only hold
//!   integers, bit-packed deltas, whichever is smaller ([`encode_best`]);
//! - `index`: postcard-encoded series list sorted by labels, each with its chunk
//!   references (time range, sample count, offset, length); the inverted index
//!   ([`Postings`]) is built from it when the block is opened;
//! - `meta.json`: time range, counts, compaction level and size.
//!
//! Reads fetch chunk bytes with positioned reads; the index lives in memory.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use triad_model::metric::{Labels, Matcher, SeriesSamples};

use super::chunk::{Chunk, Encoding, decode, encode_best};
use super::index::Postings;
use crate::{Error, Result};

/// Most samples in one block chunk.
const MAX_BLOCK_CHUNK_SAMPLES: usize = u16::MAX as usize;

/// What `meta.json` says about a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Oldest sample, ms.
    pub min_t: i64,
    /// Newest sample, ms.
    pub max_t: i64,
    /// Series in the block.
    pub num_series: u64,
    /// Samples in the block.
    pub num_samples: u64,
    /// 0 for a block cut from the head; one more for each compaction.
    pub level: u32,
    /// Bytes of the `chunks` file.
    pub chunk_bytes: u64,
    /// Bytes of the `index` file.
    pub index_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct ChunkRef {
    /// [`Encoding`] as a byte.
    encoding: u8,
    min_t: i64,
    max_t: i64,
    count: u16,
    offset: u64,
    len: u32,
}

#[derive(Serialize, Deserialize)]
struct SeriesEntry {
    labels: Vec<(String, String)>,
    chunks: Vec<ChunkRef>,
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    series: Vec<SeriesEntry>,
}

struct BlockSeries {
    labels: Labels,
    chunks: Vec<ChunkRef>,
}

/// An open block.
pub struct Block {
    dir: PathBuf,
    /// Its metadata.
    pub meta: BlockMeta,
    series: Vec<BlockSeries>,
    postings: Postings,
    chunks: File,
}

/// Writes a block into `parent` from series sorted by labels with their samples
/// (ascending timestamps). Returns `None` when there was no sample.
pub fn write_block(
    parent: &Path,
    series: impl Iterator<Item = (Labels, Vec<(i64, f64)>)>,
    level: u32,
) -> Result<Option<PathBuf>> {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = parent.join(format!("tmp-{nonce}"));
    fs::create_dir_all(&tmp).map_err(Error::io(format!("creating {}", tmp.display())))?;
    let chunk_file =
        File::create(tmp.join("chunks")).map_err(Error::io("creating block chunks"))?;
    let mut w = BufWriter::with_capacity(1 << 20, chunk_file);
    let mut offset = 0u64;
    let mut entries = Vec::new();
    let (mut min_t, mut max_t, mut samples) = (i64::MAX, i64::MIN, 0u64);
    for (labels, data) in series {
        if data.is_empty() {
            continue;
        }
        let mut refs = Vec::new();
        for part in data.chunks(MAX_BLOCK_CHUNK_SAMPLES) {
            let Some((encoding, c)) = encode_best(part) else {
                continue;
            };
            w.write_all(&c.bytes)
                .map_err(Error::io("writing block chunks"))?;
            refs.push(ChunkRef {
                encoding: encoding as u8,
                min_t: c.min_t,
                max_t: c.max_t,
                count: c.count,
                offset,
                len: c.bytes.len() as u32,
            });
            offset += c.bytes.len() as u64;
            min_t = min_t.min(c.min_t);
            max_t = max_t.max(c.max_t);
            samples += u64::from(c.count);
        }
        entries.push(SeriesEntry {
            labels: labels.to_vec(),
            chunks: refs,
        });
    }
    if entries.is_empty() {
        drop(w);
        let _ = fs::remove_dir_all(&tmp);
        return Ok(None);
    }
    let file = w
        .into_inner()
        .map_err(|e| Error::io("flushing block chunks")(e.into_error()))?;
    file.sync_all().map_err(Error::io("syncing block chunks"))?;
    let num_series = entries.len() as u64;
    let index = postcard::to_stdvec(&IndexFile { series: entries })
        .map_err(|e| Error::Corrupt(format!("encoding block index: {e}")))?;
    write_synced(&tmp.join("index"), &index)?;
    let meta = BlockMeta {
        min_t,
        max_t,
        num_series,
        num_samples: samples,
        level,
        chunk_bytes: offset,
        index_bytes: index.len() as u64,
    };
    let meta_json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| Error::Corrupt(format!("encoding block meta: {e}")))?;
    write_synced(&tmp.join("meta.json"), &meta_json)?;
    let dir = parent.join(format!("block-{min_t:015}-{max_t:015}-{nonce}"));
    fs::rename(&tmp, &dir).map_err(Error::io("renaming block"))?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing blocks directory"))?;
    Ok(Some(dir))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(Error::io(format!("creating {}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(Error::io(format!("writing {}", path.display())))
}

impl Block {
    /// Opens a block directory and loads its index.
    pub fn open(dir: &Path) -> Result<Block> {
        let meta: BlockMeta = serde_json::from_slice(
            &fs::read(dir.join("meta.json")).map_err(Error::io("reading block meta"))?,
        )
        .map_err(|e| Error::Corrupt(format!("{}: meta.json: {e}", dir.display())))?;
        let index: IndexFile = postcard::from_bytes(
            &fs::read(dir.join("index")).map_err(Error::io("reading block index"))?,
        )
        .map_err(|e| Error::Corrupt(format!("{}: index: {e}", dir.display())))?;
        let mut postings = Postings::default();
        let mut series = Vec::with_capacity(index.series.len());
        for (i, e) in index.series.into_iter().enumerate() {
            let labels = Labels::new(e.labels);
            postings.add(i as u32, labels.iter());
            series.push(BlockSeries {
                labels,
                chunks: e.chunks,
            });
        }
        let chunks = File::open(dir.join("chunks")).map_err(Error::io("opening block chunks"))?;
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            series,
            postings,
            chunks,
        })
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.meta.chunk_bytes + self.meta.index_bytes
    }

    /// True when the block holds data in `[start, end]`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.meta.max_t >= start && self.meta.min_t <= end
    }

    /// Indexes of the series matching, ascending (= sorted by labels).
    pub fn select_ids(&self, matchers: &[Matcher]) -> Vec<u32> {
        self.postings
            .select(matchers, || (0..self.series.len() as u32).collect())
    }

    /// Labels of series `id`.
    pub fn labels(&self, id: u32) -> Option<&Labels> {
        self.series.get(id as usize).map(|s| &s.labels)
    }

    /// Whether series `id` has a chunk overlapping the range.
    pub fn has_data(&self, id: u32, start: i64, end: i64) -> bool {
        self.series
            .get(id as usize)
            .is_some_and(|s| s.chunks.iter().any(|c| c.max_t >= start && c.min_t <= end))
    }

    /// Samples of series `id` in `[start, end]`.
    pub fn samples(&self, id: u32, start: i64, end: i64) -> Result<Vec<(i64, f64)>> {
        let mut out = Vec::new();
        let Some(s) = self.series.get(id as usize) else {
            return Ok(out);
        };
        for c in s
            .chunks
            .iter()
            .filter(|c| c.max_t >= start && c.min_t <= end)
        {
            let mut buf = vec![0u8; c.len as usize];
            self.chunks
                .read_exact_at(&mut buf, c.offset)
                .map_err(Error::io(format!(
                    "reading chunk of {}",
                    self.dir.display()
                )))?;
            let encoding = Encoding::from_u8(c.encoding).ok_or_else(|| {
                Error::Corrupt(format!(
                    "{}: unknown chunk encoding {}",
                    self.dir.display(),
                    c.encoding
                ))
            })?;
            out.extend(
                decode(encoding, &buf, c.count)
                    .into_iter()
                    .filter(|(t, _)| *t >= start && *t <= end),
            );
        }
        Ok(out)
    }

    /// Every matching series with its samples in the range.
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesSamples>> {
        let mut out = Vec::new();
        for id in self.select_ids(matchers) {
            let samples = self.samples(id, start, end)?;
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: self.series[id as usize].labels.clone(),
                    samples,
                });
            }
        }
        Ok(out)
    }

    /// Every series with all its samples, sorted by labels (for compaction).
    pub fn all(&self) -> impl Iterator<Item = Result<(Labels, Vec<(i64, f64)>)>> + '_ {
        (0..self.series.len() as u32).map(move |id| {
            Ok((
                self.series[id as usize].labels.clone(),
                self.samples(id, i64::MIN, i64::MAX)?,
            ))
        })
    }
}

/// Decodes a head chunk list into samples.
pub fn decode_chunks(chunks: &[std::sync::Arc<Chunk>]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(chunks.iter().map(|c| usize::from(c.count)).sum());
    for c in chunks {
        out.extend(c.iter());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_open_select() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |job: &str| {
            Labels::new(vec![
                ("__name__".into(), "up".into()),
                ("job".into(), job.into()),
            ])
        };
        let data: Vec<(Labels, Vec<(i64, f64)>)> = vec![
            (mk("a"), (0..1000).map(|i| (i * 15_000, i as f64)).collect()),
            (mk("b"), vec![(5, 1.0)]),
        ];
        let path = write_block(dir.path(), data.clone().into_iter(), 0)
            .unwrap()
            .unwrap();
        let b = Block::open(&path).unwrap();
        assert_eq!(b.meta.num_samples, 1001);
        assert_eq!((b.meta.min_t, b.meta.max_t), (0, 999 * 15_000));
        let got = b
            .select(&[Matcher::equal("job", "a")], 15_000, 30_000)
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, vec![(15_000, 1.0), (30_000, 2.0)]);
        let all: Vec<_> = b.all().map(|r| r.unwrap()).collect();
        assert_eq!(all, data);
        assert!(
            write_block(dir.path(), std::iter::empty(), 0)
                .unwrap()
                .is_none()
        );
    }
}
