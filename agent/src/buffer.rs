//! The agent's bounded on-disk buffer: batches wait here, in order, until the collector
//! acknowledges them.
//!
//! Entries are appended to segment files (`<first id>.seg`) as
//! `[len u32][crc32 u32][id u64][kind u8][positions len u32][positions][body]`, where
//! the body is a zstd-compressed OTLP export request and the positions are the file
//! offsets the batch completes (empty for data from the receivers). The forwarder reads
//! the oldest entry, sends it, and [`DiskBuffer::ack`]s it; the id of the last
//! acknowledged entry is kept in `acked`, and a segment is deleted once every entry in
//! it is acknowledged. At start the segments are scanned from there, a torn tail (a
//! crash in the middle of a write) is cut off, and every entry still in the buffer is
//! sent again, in order.
//!
//! The buffer is bounded by bytes. The file source waits while the buffer holds more
//! than half of `max_bytes` (files are a buffer of their own: the tailer keeps rotated
//! files open until they are read), so the other half stays free for the receivers,
//! whose data has no other home; they are refused (429 / RESOURCE_EXHAUSTED) only when
//! the whole buffer is full.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::checkpoint::Position;

const HEADER_BYTES: usize = 8;
/// Largest entry accepted (a corrupt length above it ends the scan).
const MAX_ENTRY_BYTES: usize = 256 * 1024 * 1024;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An `ExportLogsServiceRequest`.
    Logs = 1,
    /// An `ExportTraceServiceRequest`.
    Traces = 2,
    /// An OTLP `ExportMetricsServiceRequest`.
    Metrics = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Logs),
            2 => Some(Kind::Traces),
            3 => Some(Kind::Metrics),
            _ => None,
        }
    }
}

/// One buffered batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the buffer, increasing by one per entry.
    pub id: u64,
    /// What the body is.
    pub kind: Kind,
    /// File positions to checkpoint once the entry is acknowledged.
    pub positions: Vec<Position>,
    /// zstd-compressed, protobuf-encoded export request.
    pub body: Vec<u8>,
}

/// Who is pushing: the file source may use half the buffer, receivers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Producer {
    /// The file source (waits when its half is full).
    Files,
    /// A receiver (refused when the buffer is full).
    Receiver,
}

/// Errors of the buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// No room: the collector is behind or unreachable.
    #[error(
        "agent buffer full ({bytes} of {max} bytes in use): the collector is behind or unreachable"
    )]
    Full {
        /// Bytes in use.
        bytes: u64,
        /// The bound.
        max: u64,
    },
    /// The wait for room was given up because the agent is stopping.
    #[error("agent stopping")]
    Stopped,
    /// Disk I/O failed.
    #[error("agent buffer I/O: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    id: u64,
    segment: u64,
    offset: u64,
    len: u64,
}

struct State {
    /// Unacknowledged entries, oldest first.
    entries: VecDeque<Meta>,
    /// Segments on disk by first id, oldest first.
    segments: VecDeque<u64>,
    /// The segment being appended to.
    writer: Option<(u64, Arc<File>, u64)>,
    next_id: u64,
    bytes: u64,
    /// Highest id known durable (fsync'd).
    synced: u64,
    /// Per file, the furthest position among acknowledged entries: recorded with the
    /// acknowledged id, so a restart resumes there even if the file source had not yet
    /// written its checkpoint file.
    acked_positions: HashMap<(u64, u64), Position>,
}

/// The on-disk buffer. All methods are blocking (file I/O); call them from a blocking
/// context.
pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
    /// Signalled when entries are acknowledged (room freed).
    room: Condvar,
    /// Signalled when an entry is pushed.
    data: tokio::sync::Notify,
    /// Serialises fsyncs (group commit).
    sync_lock: Mutex<()>,
}

fn segment_path(dir: &Path, first_id: u64) -> PathBuf {
    dir.join(format!("{first_id:020}.seg"))
}

impl DiskBuffer {
    /// Opens (or creates) the buffer in `dir`, bounded to `max_bytes`, and recovers
    /// unacknowledged entries.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DiskBuffer, BufferError> {
        std::fs::create_dir_all(dir)?;
        let (acked, acked_positions) = read_acked(dir)?;
        let mut segments: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse::<u64>().ok()
            })
            .collect();
        segments.sort_unstable();
        let mut entries = VecDeque::new();
        let mut next_id = acked + 1;
        let mut kept = VecDeque::new();
        for (i, first) in segments.iter().enumerate() {
            let path = segment_path(dir, *first);
            let metas = scan_segment(&path, *first)?;
            let last_in_segment = metas.last().map(|m| m.id);
            let is_last = i + 1 == segments.len();
            if last_in_segment.is_none_or(|last| last <= acked) && !is_last {
                std::fs::remove_file(&path)?;
                continue;
            }
            for m in metas {
                next_id = next_id.max(m.id + 1);
                if m.id > acked {
                    entries.push_back(m);
                }
            }
            kept.push_back(*first);
        }
        let bytes = entries.iter().map(|m| m.len).sum();
        let buffer = DiskBuffer {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(1 << 20, 64 << 20),
            state: Mutex::new(State {
                entries,
                segments: kept,
                writer: None,
                next_id,
                bytes,
                synced: next_id.saturating_sub(1),
                acked_positions: acked_positions
                    .into_iter()
                    .filter(|p| Path::new(&p.path).exists())
                    .map(|p| ((p.fingerprint.dev, p.fingerprint.ino), p))
                    .collect(),
            }),
            room: Condvar::new(),
            data: tokio::sync::Notify::new(),
            sync_lock: Mutex::new(()),
        };
        // What survived the restart is made durable before anyone relies on it.
        for first in buffer.lock().segments.iter() {
            File::open(segment_path(dir, *first))?.sync_all()?;
        }
        Ok(buffer)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes held by unacknowledged entries.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Number of unacknowledged entries.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when every entry was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn limit(&self, who: Producer) -> u64 {
        match who {
            Producer::Files => self.max_bytes / 2,
            Producer::Receiver => self.max_bytes,
        }
    }

    /// Appends an entry if there is room for `who`; `durable` waits for fsync (data
    /// that exists nowhere else). Returns the entry's id.
    pub fn try_push(
        &self,
        who: Producer,
        kind: Kind,
        positions: &[Position],
        body: &[u8],
        durable: bool,
    ) -> Result<u64, BufferError> {
        let mut st = self.lock();
        let len = entry_len(positions, body)?;
        // An empty buffer takes any entry, so one large batch cannot wedge it.
        if !st.entries.is_empty() && st.bytes + len > self.limit(who) {
            return Err(BufferError::Full {
                bytes: st.bytes,
                max: self.max_bytes,
            });
        }
        let id = self.append(&mut st, kind, positions, body)?;
        drop(st);
        self.data.notify_one();
        if durable {
            self.sync_through(id)?;
        }
        Ok(id)
    }

    /// Appends an entry, waiting while the file source's share of the buffer is full.
    /// Gives up with [`BufferError::Stopped`] once `stop` returns true.
    pub fn push_wait(
        &self,
        kind: Kind,
        positions: &[Position],
        body: &[u8],
        stop: &dyn Fn() -> bool,
    ) -> Result<u64, BufferError> {
        let len = entry_len(positions, body)?;
        let mut st = self.lock();
        while !st.entries.is_empty() && st.bytes + len > self.limit(Producer::Files) {
            if stop() {
                return Err(BufferError::Stopped);
            }
            st = self
                .room
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let id = self.append(&mut st, kind, positions, body)?;
        drop(st);
        self.data.notify_one();
        Ok(id)
    }

    fn append(
        &self,
        st: &mut State,
        kind: Kind,
        positions: &[Position],
        body: &[u8],
    ) -> Result<u64, BufferError> {
        let id = st.next_id;
        let roll = match &st.writer {
            None => true,
            Some((_, _, size)) => *size >= self.segment_bytes,
        };
        if roll {
            if let Some((_, old, _)) = st.writer.take() {
                // Entries in a closed segment are durable from here on.
                old.sync_data()?;
                st.synced = id - 1;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, id))?;
            if st.segments.back() != Some(&id) {
                st.segments.push_back(id);
            }
            st.writer = Some((id, Arc::new(file), 0));
        }
        let encoded = encode_entry(id, kind, positions, body)?;
        let Some((segment, file, size)) = st.writer.as_mut() else {
            return Err(BufferError::Io(std::io::Error::other("no segment open")));
        };
        let offset = *size;
        if let Err(e) = (&**file).write_all(&encoded) {
            // A partial write would be cut off at the next start; start a new segment
            // now so nothing is appended after it.
            st.writer = None;
            return Err(e.into());
        }
        *size += encoded.len() as u64;
        let meta = Meta {
            id,
            segment: *segment,
            offset,
            len: encoded.len() as u64,
        };
        st.entries.push_back(meta);
        st.bytes += meta.len;
        st.next_id += 1;
        Ok(id)
    }

    /// Makes every entry up to `id` durable; concurrent callers share one fsync.
    fn sync_through(&self, id: u64) -> Result<(), BufferError> {
        let _turn = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (file, upto) = {
            let st = self.lock();
            if st.synced >= id {
                return Ok(());
            }
            match &st.writer {
                Some((_, f, _)) => (f.clone(), st.next_id - 1),
                None => return Ok(()), // rolled: the old segment was synced
            }
        };
        file.sync_data()?;
        let mut st = self.lock();
        st.synced = st.synced.max(upto);
        Ok(())
    }

    /// The oldest unacknowledged entry, read from disk.
    pub fn front(&self) -> Result<Option<Entry>, BufferError> {
        let meta = match self.lock().entries.front() {
            Some(m) => *m,
            None => return Ok(None),
        };
        let mut f = File::open(segment_path(&self.dir, meta.segment))?;
        f.seek(SeekFrom::Start(meta.offset))?;
        let mut raw = vec![0u8; meta.len as usize];
        f.read_exact(&mut raw)?;
        decode_entry(&raw).map(Some).ok_or_else(|| {
            BufferError::Io(std::io::Error::other("buffer entry corrupt on re-read"))
        })
    }

    /// Waits until an entry is pushed (returns at once if one was pushed since the
    /// last wait).
    pub async fn wait_for_data(&self) {
        self.data.notified().await
    }

    /// Acknowledges the oldest entry if it has this id: frees its room, records the
    /// id in `acked`, deletes segments no longer needed.
    pub fn ack(&self, id: u64, positions: &[Position]) -> Result<(), BufferError> {
        let mut st = self.lock();
        if st.entries.front().map(|m| m.id) != Some(id) {
            return Ok(());
        }
        if let Some(m) = st.entries.pop_front() {
            st.bytes -= m.len;
        }
        for p in positions {
            st.acked_positions
                .insert((p.fingerprint.dev, p.fingerprint.ino), p.clone());
        }
        write_acked(&self.dir, id, st.acked_positions.values())?;
        // Segments before the one holding the next entry are fully acknowledged.
        let keep_from = st
            .entries
            .front()
            .map(|m| m.segment)
            .or(st.writer.as_ref().map(|w| w.0));
        while let Some(first) = st.segments.front().copied() {
            if Some(first) == keep_from || keep_from.is_none_or(|k| first > k) {
                break;
            }
            st.segments.pop_front();
            let _ = std::fs::remove_file(segment_path(&self.dir, first));
        }
        drop(st);
        self.room.notify_all();
        Ok(())
    }

    /// The furthest position per file among the acknowledged and the unacknowledged
    /// entries: the file source resumes after them rather than read their lines a
    /// second time.
    pub fn pending_positions(&self) -> Result<Vec<Position>, BufferError> {
        let (metas, acked): (Vec<Meta>, HashMap<(u64, u64), Position>) = {
            let st = self.lock();
            (
                st.entries.iter().copied().collect(),
                st.acked_positions.clone(),
            )
        };
        let mut out = acked;
        for m in metas {
            let mut f = File::open(segment_path(&self.dir, m.segment))?;
            f.seek(SeekFrom::Start(m.offset))?;
            let mut raw = vec![0u8; m.len as usize];
            f.read_exact(&mut raw)?;
            if let Some(e) = decode_entry(&raw) {
                for p in e.positions {
                    out.insert((p.fingerprint.dev, p.fingerprint.ino), p);
                }
            }
        }
        Ok(out.into_values().collect())
    }
}

fn entry_len(positions: &[Position], body: &[u8]) -> Result<u64, BufferError> {
    let pos = postcard::to_stdvec(positions).map_err(std::io::Error::other)?;
    Ok((HEADER_BYTES + 8 + 1 + 4 + pos.len() + body.len()) as u64)
}

fn encode_entry(
    id: u64,
    kind: Kind,
    positions: &[Position],
    body: &[u8],
) -> Result<Vec<u8>, BufferError> {
    let pos = postcard::to_stdvec(positions).map_err(std::io::Error::other)?;
    let payload_len = 8 + 1 + 4 + pos.len() + body.len();
    if payload_len > MAX_ENTRY_BYTES {
        return Err(BufferError::Io(std::io::Error::other(format!(
            "batch of {payload_len} bytes exceeds the buffer's entry limit"
        ))));
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + payload_len);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&id.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&(pos.len() as u32).to_le_bytes());
    out.extend_from_slice(&pos);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[HEADER_BYTES..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a whole entry (header included); `None` if it is corrupt.
fn decode_entry(raw: &[u8]) -> Option<Entry> {
    let len = u32::from_le_bytes(raw.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(raw.get(4..8)?.try_into().ok()?);
    let payload = raw.get(HEADER_BYTES..HEADER_BYTES + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let id = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
    let kind = Kind::from_u8(*payload.get(8)?)?;
    let pos_len = u32::from_le_bytes(payload.get(9..13)?.try_into().ok()?) as usize;
    let positions = postcard::from_bytes(payload.get(13..13 + pos_len)?).ok()?;
    let body = payload.get(13 + pos_len..)?.to_vec();
    Some(Entry {
        id,
        kind,
        positions,
        body,
    })
}

/// Reads a segment's entries; cuts the file after the last intact one.
fn scan_segment(path: &Path, first_id: u64) -> Result<Vec<Meta>, BufferError> {
    let bytes = std::fs::read(path)?;
    let mut metas = Vec::new();
    let mut offset = 0usize;
    let mut expect = first_id;
    while offset + HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes([
            bytes[offset],
            bytes[offset + 1],
            bytes[offset + 2],
            bytes[offset + 3],
        ]) as usize;
        let end = offset + HEADER_BYTES + len;
        if len > MAX_ENTRY_BYTES || end > bytes.len() {
            break;
        }
        match decode_entry(&bytes[offset..end]) {
            Some(e) if e.id == expect => {
                metas.push(Meta {
                    id: e.id,
                    segment: first_id,
                    offset: offset as u64,
                    len: (end - offset) as u64,
                });
                expect += 1;
            }
            _ => break,
        }
        offset = end;
    }
    if offset < bytes.len() {
        tracing::warn!(path = %path.display(), kept = offset, dropped = bytes.len() - offset,
            "agent buffer segment has a torn tail (crash during a write); cutting it off");
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(offset as u64)?;
    }
    Ok(metas)
}

/// The `acked` file: the last acknowledged id and the positions acknowledged so far.
#[derive(serde::Serialize, serde::Deserialize)]
struct Acked {
    id: u64,
    positions: Vec<Position>,
}

fn read_acked(dir: &Path) -> Result<(u64, Vec<Position>), BufferError> {
    let path = dir.join("acked");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Acked>(&bytes)
            .map(|a| (a.id, a.positions))
            .map_err(|e| {
                BufferError::Io(std::io::Error::other(format!("{}: {e}", path.display())))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, Vec::new())),
        Err(e) => Err(e.into()),
    }
}

/// Records the last acknowledged id and positions (write and rename; a lost update
/// after a power failure only resends entries, never skips one).
fn write_acked<'a>(
    dir: &Path,
    id: u64,
    positions: impl Iterator<Item = &'a Position>,
) -> std::io::Result<()> {
    let acked = Acked {
        id,
        positions: positions.cloned().collect(),
    };
    let tmp = dir.join("acked.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&acked).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, dir.join("acked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Fingerprint;

    fn pos(ino: u64, offset: u64) -> Position {
        Position {
            fingerprint: Fingerprint {
                dev: 1,
                ino,
                head_len: 3,
                head_crc: 7,
            },
            offset,
            path: format!("/f{ino}"),
            tail: None,
        }
    }

    #[test]
    fn entries_survive_reopen_in_order_until_acked() {
        let dir = tempfile::tempdir().unwrap();
        let b = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
        for i in 0..5u64 {
            b.try_push(
                Producer::Receiver,
                Kind::Traces,
                &[pos(i, i * 10)],
                &[i as u8; 100],
                i % 2 == 0,
            )
            .unwrap();
        }
        let first = b.front().unwrap().unwrap();
        assert_eq!(first.body, vec![0u8; 100]);
        b.ack(first.id, &first.positions).unwrap();
        drop(b);
        let b = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(b.len(), 4);
        let mut seen = vec![];
        while let Some(e) = b.front().unwrap() {
            seen.push((e.id, e.body[0], e.positions[0].offset));
            b.ack(e.id, &e.positions).unwrap();
        }
        assert_eq!(seen, vec![(2, 1, 10), (3, 2, 20), (4, 3, 30), (5, 4, 40)]);
        // Ids continue after a restart with everything acknowledged.
        drop(b);
        let b = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
        assert!(b.is_empty());
        let id = b
            .try_push(Producer::Files, Kind::Logs, &[], b"x", false)
            .unwrap();
        assert_eq!(id, 6);
    }

    #[test]
    fn torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let b = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
        for i in 0..3u8 {
            b.try_push(Producer::Receiver, Kind::Logs, &[], &[i; 50], false)
                .unwrap();
        }
        drop(b);
        let seg = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&seg).unwrap().len();
        // Half of the last entry made it to disk.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
        let b = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(b.len(), 2);
        let id = b
            .try_push(Producer::Receiver, Kind::Logs, &[], b"new", false)
            .unwrap();
        assert_eq!(id, 3);
        drop(b);
        let b = DiskBuffer::open(dir.path(), 1 << 30).unwrap();
        let mut bodies = vec![];
        while let Some(e) = b.front().unwrap() {
            bodies.push(e.body.clone());
            b.ack(e.id, &e.positions).unwrap();
        }
        assert_eq!(bodies, vec![vec![0u8; 50], vec![1u8; 50], b"new".to_vec()]);
    }

    #[test]
    fn bounded_files_get_half_receivers_all() {
        let dir = tempfile::tempdir().unwrap();
        let b = DiskBuffer::open(dir.path(), 10_000).unwrap();
        let body = vec![0u8; 1000];
        let mut files = 0;
        while b
            .try_push(Producer::Files, Kind::Logs, &[], &body, false)
            .is_ok()
        {
            files += 1;
        }
        assert_eq!(files, 4, "files stop at half of the bound");
        let mut receivers = 0;
        while b
            .try_push(Producer::Receiver, Kind::Traces, &[], &body, false)
            .is_ok()
        {
            receivers += 1;
        }
        assert_eq!(receivers, 5);
        let err = b
            .try_push(Producer::Receiver, Kind::Traces, &[], &body, true)
            .unwrap_err();
        assert!(err.to_string().contains("buffer full"), "{err}");
        // push_wait gives up when asked to stop, and proceeds once room is freed.
        assert!(matches!(
            b.push_wait(Kind::Logs, &[], &body, &|| true),
            Err(BufferError::Stopped)
        ));
        while let Some(e) = b.front().unwrap() {
            b.ack(e.id, &e.positions).unwrap();
        }
        b.push_wait(Kind::Logs, &[], &body, &|| false).unwrap();
    }

    #[test]
    fn acknowledged_segments_are_deleted_and_pending_positions_reported() {
        let dir = tempfile::tempdir().unwrap();
        let b = DiskBuffer::open(dir.path(), 16 << 20).unwrap();
        let body = vec![7u8; 300 * 1024];
        for i in 0..12u64 {
            b.try_push(
                Producer::Receiver,
                Kind::Logs,
                &[pos(1, i), pos(2, 100 + i)],
                &body,
                false,
            )
            .unwrap();
        }
        let segs = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "seg")
                })
                .count()
        };
        assert!(segs() >= 2);
        for _ in 0..8 {
            let e = b.front().unwrap().unwrap();
            b.ack(e.id, &e.positions).unwrap();
        }
        let mut p = b.pending_positions().unwrap();
        p.sort_by_key(|p| p.fingerprint.ino);
        assert_eq!(
            p.iter().map(|p| p.offset).collect::<Vec<_>>(),
            vec![11, 111]
        );
        while let Some(e) = b.front().unwrap() {
            b.ack(e.id, &e.positions).unwrap();
        }
        assert_eq!(segs(), 1, "only the segment being written remains");
    }
}
