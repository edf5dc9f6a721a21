//! Immutable on-disk blocks: every series' samples over a time range.
//!
//! A block is a directory written once (to `<name>.tmp`, fsync'd, then renamed) and
//! never changed:
//! - `chunks`: the encoded chunks back to back; each series' samples in the block are
//!   one chunk (up to 65 535 samples per chunk), so the per-chunk header cost is paid
//!   once per series and block; each chunk is Gorilla XOR or, for series that only hold
//!   integers, bit-packed deltas, whichever is smaller ([`encode_best`]);
//! - `index`: postcard-encoded: a symbol table (every label name and value once,
//!   sorted), then the series sorted by labels, each as symbol numbers with its chunk
//!   references (encoding, time range relative to the block, sample count, length; the
//!   offsets follow from the order); the inverted index ([`Postings`]) is built from it
//!   when the block is opened. Format 1 (strings in every series, absolute times and
//!   offsets) is still read;
//! - `meta.json`: time range, counts, compaction level, size and index format.
//!
//! Reads fetch chunk bytes through a [`ChunkFile`] — positioned reads of the local
//! `chunks` file, or ranged reads of the block's object in object storage — coalescing
//! the chunks of neighbouring series into one read; the index lives in memory.

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
/// Chunks this close to each other are fetched with one read (the bytes between are
/// read and dropped): one request instead of many for the series of a selector,
/// which sit next to each other since series are stored sorted by labels.
const COALESCE_GAP: u64 = 16 << 10;

/// Where a block's chunk bytes are read from.
pub trait ChunkFile: Send + Sync {
    /// `len` bytes from `offset`.
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>>;
}

impl ChunkFile for File {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

/// A series' labels and its samples (timestamp ms, value), oldest first.
pub type SeriesData = (Labels, Vec<(i64, f64)>);

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
    /// Layout of the `index` file (1 when absent: blocks written before there was a
    /// choice).
    #[serde(default = "index_format_1")]
    pub index_format: u32,
}

fn index_format_1() -> u32 {
    1
}

/// The index layout this version writes.
const INDEX_FORMAT: u32 = 2;

/// Where a chunk is, in memory.
struct ChunkRef {
    /// [`Encoding`] as a byte.
    encoding: u8,
    min_t: i64,
    max_t: i64,
    count: u16,
    offset: u64,
    len: u32,
}

/// Index format 2.
#[derive(Serialize, Deserialize)]
struct IndexFile {
    /// Every label name and value once, sorted.
    symbols: Vec<String>,
    series: Vec<SeriesEntry>,
}

#[derive(Serialize, Deserialize)]
struct SeriesEntry {
    /// Symbol numbers: name, value, name, value, …
    labels: Vec<u32>,
    chunks: Vec<ChunkEntry>,
}

/// A chunk in format 2; its offset is the sum of the lengths before it.
#[derive(Serialize, Deserialize)]
struct ChunkEntry {
    /// [`Encoding`] as a byte.
    encoding: u8,
    /// `min_t` minus the block's `min_t`.
    start: u64,
    /// `max_t - min_t`.
    span: u64,
    count: u16,
    len: u32,
}

/// Index format 1.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct IndexFileV1 {
    series: Vec<SeriesEntryV1>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct SeriesEntryV1 {
    labels: Vec<(String, String)>,
    chunks: Vec<ChunkRefV1>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct ChunkRefV1 {
    encoding: u8,
    min_t: i64,
    max_t: i64,
    count: u16,
    offset: u64,
    len: u32,
}

struct BlockSeries {
    labels: Labels,
    chunks: Vec<ChunkRef>,
}

/// An open block.
pub struct Block {
    /// Its name: the directory's (`block-<min_t>-<max_t>-<nonce>`).
    name: String,
    /// Its directory, when it is on local disk.
    dir: Option<PathBuf>,
    /// Its metadata.
    pub meta: BlockMeta,
    series: Vec<BlockSeries>,
    postings: Postings,
    chunks: Box<dyn ChunkFile>,
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
        entries.push((labels, refs));
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
    let index = postcard::to_stdvec(&index_file(&entries, min_t))
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
        index_format: INDEX_FORMAT,
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

/// The format-2 index of series sorted by labels.
fn index_file(entries: &[(Labels, Vec<ChunkRef>)], block_min_t: i64) -> IndexFile {
    let mut symbols: Vec<&str> = entries
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|(n, v)| [n, v]))
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    let number: std::collections::HashMap<&str, u32> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32))
        .collect();
    let series = entries
        .iter()
        .map(|(labels, refs)| SeriesEntry {
            labels: labels
                .iter()
                .flat_map(|(n, v)| [n, v])
                .map(|s| number.get(s).copied().unwrap_or_default())
                .collect(),
            chunks: refs
                .iter()
                .map(|c| ChunkEntry {
                    encoding: c.encoding,
                    start: c.min_t.wrapping_sub(block_min_t) as u64,
                    span: c.max_t.wrapping_sub(c.min_t) as u64,
                    count: c.count,
                    len: c.len,
                })
                .collect(),
        })
        .collect();
    IndexFile {
        symbols: symbols.into_iter().map(str::to_string).collect(),
        series,
    }
}

/// Reads an index file of either format into series (labels, chunk references).
fn read_index(bytes: &[u8], meta: &BlockMeta) -> std::result::Result<Vec<BlockSeries>, String> {
    if meta.index_format == 1 {
        let index: IndexFileV1 = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        return Ok(index
            .series
            .into_iter()
            .map(|e| BlockSeries {
                labels: Labels::new(e.labels),
                chunks: e
                    .chunks
                    .into_iter()
                    .map(|c| ChunkRef {
                        encoding: c.encoding,
                        min_t: c.min_t,
                        max_t: c.max_t,
                        count: c.count,
                        offset: c.offset,
                        len: c.len,
                    })
                    .collect(),
            })
            .collect());
    }
    if meta.index_format != INDEX_FORMAT {
        return Err(format!(
            "index format {} is newer than this version of Triad reads ({INDEX_FORMAT})",
            meta.index_format
        ));
    }
    let index: IndexFile = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
    let symbol = |n: u32| {
        index
            .symbols
            .get(n as usize)
            .map(String::as_str)
            .ok_or_else(|| format!("symbol {n} out of range"))
    };
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(index.series.len());
    for e in &index.series {
        let mut pairs = Vec::with_capacity(e.labels.len() / 2);
        for p in e.labels.chunks(2) {
            let [n, v] = p else {
                return Err("a label without a value".into());
            };
            pairs.push((symbol(*n)?, symbol(*v)?));
        }
        // Written sorted; a damaged file gets the checks of `Labels::new`.
        let labels = if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            Labels::from_sorted(pairs.iter().copied())
        } else {
            Labels::new(
                pairs
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let chunks = e
            .chunks
            .iter()
            .map(|c| {
                let min_t = meta.min_t.wrapping_add(c.start as i64);
                let r = ChunkRef {
                    encoding: c.encoding,
                    min_t,
                    max_t: min_t.wrapping_add(c.span as i64),
                    count: c.count,
                    offset,
                    len: c.len,
                };
                offset += u64::from(c.len);
                r
            })
            .collect();
        out.push(BlockSeries { labels, chunks });
    }
    Ok(out)
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
        let index = fs::read(dir.join("index")).map_err(Error::io("reading block index"))?;
        let chunks = File::open(dir.join("chunks")).map_err(Error::io("opening block chunks"))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut block = Block::from_parts(&name, meta, &index, Box::new(chunks))
            .map_err(|e| Error::Corrupt(format!("{}: {e}", dir.display())))?;
        block.dir = Some(dir.to_path_buf());
        Ok(block)
    }

    /// A block from its parts: `meta.json`'s content, the `index` file's bytes, and where
    /// the `chunks` file is read from (for a block in object storage).
    pub fn from_parts(
        name: &str,
        meta: BlockMeta,
        index: &[u8],
        chunks: Box<dyn ChunkFile>,
    ) -> Result<Block> {
        let series = read_index(index, &meta)
            .map_err(|e| Error::Corrupt(format!("block {name}: index: {e}")))?;
        let mut postings = Postings::default();
        for (i, s) in series.iter().enumerate() {
            postings.add(i as u32, s.labels.iter());
        }
        Ok(Block {
            name: name.to_string(),
            dir: None,
            meta,
            series,
            postings,
            chunks,
        })
    }

    /// The block's name (unique: it carries the time range and a nonce).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The block's directory, when it is on local disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
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
        Ok(self
            .samples_of(&[id], start, end)?
            .pop()
            .unwrap_or_default())
    }

    /// Samples of each series of `ids` (ascending) in `[start, end]`, in that order;
    /// neighbouring chunks are fetched together.
    fn samples_of(&self, ids: &[u32], start: i64, end: i64) -> Result<Vec<Vec<(i64, f64)>>> {
        // The chunks to decode, as (position in `ids`, chunk), in file order.
        let wanted: Vec<(usize, &ChunkRef)> = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| Some((i, self.series.get(*id as usize)?)))
            .flat_map(|(i, s)| {
                s.chunks
                    .iter()
                    .filter(|c| c.max_t >= start && c.min_t <= end)
                    .map(move |c| (i, c))
            })
            .collect();
        let mut out = vec![Vec::new(); ids.len()];
        let mut run_start = 0;
        while run_start < wanted.len() {
            // A run: chunks each starting within COALESCE_GAP of the previous one's end.
            let mut run_end = run_start + 1;
            let mut end_offset = wanted[run_start].1.offset + u64::from(wanted[run_start].1.len);
            while let Some((_, c)) = wanted.get(run_end) {
                if c.offset < end_offset || c.offset - end_offset > COALESCE_GAP {
                    break;
                }
                end_offset = c.offset + u64::from(c.len);
                run_end += 1;
            }
            let base = wanted[run_start].1.offset;
            let bytes = self
                .chunks
                .read_at(base, (end_offset - base) as usize)
                .map_err(Error::io(format!("reading chunks of block {}", self.name)))?;
            for (i, c) in &wanted[run_start..run_end] {
                let at = (c.offset - base) as usize;
                let buf = bytes.get(at..at + c.len as usize).ok_or_else(|| {
                    Error::Corrupt(format!("block {}: short chunk read", self.name))
                })?;
                let encoding = Encoding::from_u8(c.encoding).ok_or_else(|| {
                    Error::Corrupt(format!(
                        "block {}: unknown chunk encoding {}",
                        self.name, c.encoding
                    ))
                })?;
                out[*i].extend(
                    decode(encoding, buf, c.count)
                        .into_iter()
                        .filter(|(t, _)| *t >= start && *t <= end),
                );
            }
            run_start = run_end;
        }
        Ok(out)
    }

    /// Every matching series with its samples in the range.
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesSamples>> {
        let ids: Vec<u32> = self
            .select_ids(matchers)
            .into_iter()
            .filter(|id| self.has_data(*id, start, end))
            .collect();
        let samples = self.samples_of(&ids, start, end)?;
        Ok(ids
            .iter()
            .zip(samples)
            .filter(|(_, s)| !s.is_empty())
            .map(|(id, samples)| SeriesSamples {
                labels: self.series[*id as usize].labels.clone(),
                samples,
            })
            .collect())
    }

    /// Every series with all its samples, sorted by labels (for compaction); read a few
    /// hundred series at a time.
    pub fn all(&self) -> impl Iterator<Item = Result<SeriesData>> + '_ {
        const BATCH: u32 = 512;
        let n = self.series.len() as u32;
        (0..n.div_ceil(BATCH)).flat_map(move |b| {
            let ids: Vec<u32> = (b * BATCH..((b + 1) * BATCH).min(n)).collect();
            let batch: Vec<Result<SeriesData>> = match self.samples_of(&ids, i64::MIN, i64::MAX) {
                Ok(samples) => ids
                    .iter()
                    .zip(samples)
                    .map(|(id, s)| Ok((self.series[*id as usize].labels.clone(), s)))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            batch
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

    /// A `chunks` file in memory that counts the reads made of it.
    struct Counted {
        bytes: Vec<u8>,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl ChunkFile for std::sync::Arc<Counted> {
        fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.bytes
                .get(offset as usize..offset as usize + len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| std::io::Error::other("read past the end"))
        }
    }

    #[test]
    fn a_block_from_its_parts_reads_as_the_local_one_with_neighbouring_chunks_read_together() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<(Labels, Vec<(i64, f64)>)> = (0..300)
            .map(|i| {
                let labels = Labels::new(vec![
                    ("__name__".into(), "req".into()),
                    ("pod".into(), format!("pod-{i:03}")),
                    ("zone".into(), ["a", "b", "c"][i % 3].into()),
                ]);
                let n = 1 + (i * 37) % 400;
                (
                    labels,
                    (0..n as i64)
                        .map(|t| (t * 15_000, (t * i as i64) as f64))
                        .collect(),
                )
            })
            .collect();
        let path = write_block(dir.path(), data.clone().into_iter(), 0)
            .unwrap()
            .unwrap();
        let local = Block::open(&path).unwrap();
        let file = std::sync::Arc::new(Counted {
            bytes: fs::read(path.join("chunks")).unwrap(),
            reads: Default::default(),
        });
        let remote = Block::from_parts(
            local.name(),
            local.meta.clone(),
            &fs::read(path.join("index")).unwrap(),
            Box::new(file.clone()),
        )
        .unwrap();
        assert!(remote.dir().is_none());
        for (matchers, start, end) in [
            (vec![Matcher::equal("__name__", "req")], i64::MIN, i64::MAX),
            (vec![Matcher::equal("zone", "b")], 30_000, 600_000),
            (vec![Matcher::equal("pod", "pod-007")], 0, 0),
            (vec![Matcher::equal("pod", "none")], i64::MIN, i64::MAX),
        ] {
            let a = local.select(&matchers, start, end).unwrap();
            let b = remote.select(&matchers, start, end).unwrap();
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!((&x.labels, &x.samples), (&y.labels, &y.samples));
            }
        }
        let all: Vec<_> = remote.all().map(|r| r.unwrap()).collect();
        assert_eq!(all, data);
        // Every series of the block: one read per batch of series, not one per chunk.
        file.reads.store(0, std::sync::atomic::Ordering::Relaxed);
        let every = remote
            .select(&[Matcher::equal("__name__", "req")], i64::MIN, i64::MAX)
            .unwrap();
        assert_eq!(every.len(), 300);
        assert_eq!(file.reads.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn format_1_blocks_are_still_read_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<(Labels, Vec<(i64, f64)>)> = vec![(
            Labels::new(vec![
                ("__name__".into(), "up".into()),
                ("job".into(), "a".into()),
            ]),
            (0..100).map(|i| (1_000 + i * 15_000, i as f64)).collect(),
        )];
        let path = write_block(dir.path(), data.clone().into_iter(), 0)
            .unwrap()
            .unwrap();
        let b = Block::open(&path).unwrap();
        assert_eq!(b.meta.index_format, INDEX_FORMAT);
        let all: Vec<_> = b.all().map(|r| r.unwrap()).collect();
        assert_eq!(all, data);
        // Rewrite the index as format 1 and drop the format from meta.json.
        let s = &b.series[0];
        let v1 = IndexFileV1 {
            series: vec![SeriesEntryV1 {
                labels: s.labels.to_vec(),
                chunks: s
                    .chunks
                    .iter()
                    .map(|c| ChunkRefV1 {
                        encoding: c.encoding,
                        min_t: c.min_t,
                        max_t: c.max_t,
                        count: c.count,
                        offset: c.offset,
                        len: c.len,
                    })
                    .collect(),
            }],
        };
        fs::write(path.join("index"), postcard::to_stdvec(&v1).unwrap()).unwrap();
        let mut meta: serde_json::Value =
            serde_json::from_slice(&fs::read(path.join("meta.json")).unwrap()).unwrap();
        meta.as_object_mut().unwrap().remove("index_format");
        fs::write(path.join("meta.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
        let old = Block::open(&path).unwrap();
        assert_eq!(old.meta.index_format, 1);
        let all: Vec<_> = old.all().map(|r| r.unwrap()).collect();
        assert_eq!(all, data);
        // A format-2 index naming a symbol that is not there is refused, not a panic.
        let bad = IndexFile {
            symbols: vec!["__name__".into()],
            series: vec![SeriesEntry {
                labels: vec![0, 7],
                chunks: vec![],
            }],
        };
        let meta2 = BlockMeta {
            index_format: INDEX_FORMAT,
            ..old.meta.clone()
        };
        let err = read_index(&postcard::to_stdvec(&bad).unwrap(), &meta2)
            .err()
            .unwrap();
        assert!(err.contains("symbol 7"), "{err}");
        let newer = BlockMeta {
            index_format: INDEX_FORMAT + 1,
            ..old.meta.clone()
        };
        assert!(read_index(&[], &newer).is_err());
    }
}
