//! Write-ahead log: acknowledged data survives `kill -9` before it is indexed.
//!
//! A WAL is a directory of segment files named after the LSN (log sequence number) of
//! their first record. A record is `[len: u32][crc32: u32][lsn: u64][payload]`, little
//! endian, the CRC covering the LSN and the payload. Appends are buffered and made
//! durable by [`Wal::sync`] (one `fdatasync` for a whole group of appends). A torn
//! record at the end of the newest segment (a crash mid-write) is cut off at open; it
//! was never acknowledged. Segments whose records are all at or below the indexed
//! checkpoint are deleted when a new segment starts.
//!
//! [`GroupCommit`] shares one WAL between concurrent writers: each appends under a short
//! lock, then waits for a sync that covers its record; one `fdatasync`, run outside the
//! append lock, serves every record appended before it started. The log and trace stores
//! group in their WAL thread instead (their writers hand over whole batches).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A segment is closed and a new one started once it holds this many bytes.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Upper bound on one record's payload; a larger length field means corruption.
const MAX_RECORD_BYTES: u32 = 1 << 30;
const HEADER_BYTES: usize = 16;

struct Segment {
    first_lsn: u64,
    path: PathBuf,
}

/// An open write-ahead log.
pub struct Wal {
    dir: PathBuf,
    /// Closed segments, oldest first.
    closed: Vec<Segment>,
    current: Segment,
    writer: BufWriter<File>,
    current_bytes: u64,
    next_lsn: u64,
    /// Bytes of the current segment made durable by the last successful sync.
    synced_bytes: u64,
}

/// What [`Wal::open`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records handed to the replay callback.
    pub replayed: u64,
    /// Bytes cut off as a torn or corrupt tail.
    pub truncated_bytes: u64,
}

fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

/// Reads the next record; `Ok(None)` at a clean end or a torn/corrupt tail.
fn read_record(r: &mut impl Read) -> io::Result<Option<(u64, Vec<u8>)>> {
    let mut header = [0u8; HEADER_BYTES];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let lsn = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    if len > MAX_RECORD_BYTES {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    match r.read_exact(&mut payload) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..16]);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(None);
    }
    Ok(Some((lsn, payload)))
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`, calls `replay` for every record with an LSN
    /// above `checkpoint` in order, cuts torn tails, and starts a fresh segment.
    pub fn open(
        dir: &Path,
        checkpoint: u64,
        mut replay: impl FnMut(u64, Vec<u8>) -> io::Result<()>,
    ) -> io::Result<(Wal, ReplayStats)> {
        fs::create_dir_all(dir)?;
        let mut firsts: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".wal")?.parse::<u64>().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut stats = ReplayStats::default();
        let mut last_lsn = checkpoint;
        let mut closed = Vec::new();
        for first in firsts {
            let path = segment_path(dir, first);
            let file = File::open(&path)?;
            let file_len = file.metadata()?.len();
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut good_bytes = 0u64;
            let mut seg_last = None;
            while let Some((lsn, payload)) = read_record(&mut reader)? {
                good_bytes += (HEADER_BYTES + payload.len()) as u64;
                seg_last = Some(lsn);
                if lsn > checkpoint {
                    replay(lsn, payload)?;
                    stats.replayed += 1;
                }
                last_lsn = last_lsn.max(lsn);
            }
            if good_bytes < file_len {
                // Never acknowledged: the fsync that would have covered it did not finish.
                stats.truncated_bytes += file_len - good_bytes;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(good_bytes)?;
            }
            match seg_last {
                Some(l) if l > checkpoint => closed.push(Segment {
                    first_lsn: first,
                    path,
                }),
                _ => fs::remove_file(&path)?,
            }
        }
        let next_lsn = last_lsn + 1;
        let current = Segment {
            first_lsn: next_lsn,
            path: segment_path(dir, next_lsn),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current.path)?;
        sync_dir(dir)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            closed,
            current,
            writer: BufWriter::with_capacity(1 << 20, file),
            current_bytes: 0,
            next_lsn,
            synced_bytes: 0,
        };
        Ok((wal, stats))
    }

    /// Appends a record (buffered, not yet durable) and returns its LSN.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        let lsn = self.next_lsn;
        let lsn_bytes = lsn.to_le_bytes();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&lsn_bytes);
        hasher.update(payload);
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD_BYTES)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "wal record too large"))?;
        self.writer.write_all(&len.to_le_bytes())?;
        self.writer.write_all(&hasher.finalize().to_le_bytes())?;
        self.writer.write_all(&lsn_bytes)?;
        self.writer.write_all(payload)?;
        self.current_bytes += (HEADER_BYTES + payload.len()) as u64;
        self.next_lsn += 1;
        Ok(lsn)
    }

    /// Hands buffered records to the operating system (no fsync): they survive a crash
    /// of the process, not of the machine.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Makes every appended record durable. When the segment is full, starts a new one
    /// and deletes closed segments entirely at or below `checkpoint`.
    pub fn sync(&mut self, checkpoint: u64) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        self.synced_bytes = self.current_bytes;
        if self.current_bytes >= SEGMENT_BYTES {
            self.rotate(checkpoint)?;
        }
        Ok(())
    }

    /// Gives up the records appended since the last successful sync, after a failed
    /// append or sync: none of them was acknowledged, and the next [`Wal::open`] must
    /// not find (and replay) a part of them. Their buffered bytes are dropped unwritten
    /// and the segment is cut back to what was synced (best effort: on a full or
    /// failing disk the open's CRC check still cuts a torn tail).
    pub fn abandon(self) {
        let Wal {
            writer,
            synced_bytes,
            ..
        } = self;
        let (file, _unwritten) = writer.into_parts();
        if file.set_len(synced_bytes).is_ok() {
            let _ = file.sync_all();
        }
    }

    fn rotate(&mut self, checkpoint: u64) -> io::Result<()> {
        let next = Segment {
            first_lsn: self.next_lsn,
            path: segment_path(&self.dir, self.next_lsn),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&next.path)?;
        let old = std::mem::replace(&mut self.current, next);
        self.writer = BufWriter::with_capacity(1 << 20, file);
        self.current_bytes = 0;
        self.synced_bytes = 0;
        self.closed.push(old);
        // A closed segment's records end just before the next segment's first LSN.
        let mut keep = Vec::new();
        let firsts: Vec<u64> = self
            .closed
            .iter()
            .skip(1)
            .map(|s| s.first_lsn)
            .chain(std::iter::once(self.current.first_lsn))
            .collect();
        for (seg, next_first) in std::mem::take(&mut self.closed).into_iter().zip(firsts) {
            if next_first - 1 <= checkpoint {
                fs::remove_file(&seg.path)?;
            } else {
                keep.push(seg);
            }
        }
        self.closed = keep;
        sync_dir(&self.dir)
    }

    /// The LSN the next record gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// True when the current segment is full and the next [`Wal::sync`] starts another.
    fn segment_full(&self) -> bool {
        self.current_bytes >= SEGMENT_BYTES
    }

    /// Hands buffered records to the operating system and returns a handle on the
    /// current segment to `fdatasync` without holding the WAL, with the segment's first
    /// LSN and its length then (see [`Wal::synced_through`]).
    fn flushed_segment(&mut self) -> io::Result<(File, u64, u64)> {
        self.writer.flush()?;
        Ok((
            self.writer.get_ref().try_clone()?,
            self.current.first_lsn,
            self.current_bytes,
        ))
    }

    /// Notes that segment `first_lsn` was synced through `bytes` (by a sync run
    /// outside the WAL's lock).
    fn synced_through(&mut self, first_lsn: u64, bytes: u64) {
        if self.current.first_lsn == first_lsn {
            self.synced_bytes = self.synced_bytes.max(bytes);
        }
    }

    /// Total bytes of the WAL's segments on disk.
    pub fn disk_bytes(&self) -> u64 {
        let closed: u64 = self
            .closed
            .iter()
            .filter_map(|s| fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum();
        closed + self.current_bytes
    }
}

/// A [`Wal`] shared by concurrent writers, with group commit (see the module docs).
pub struct GroupCommit {
    wal: Mutex<Wal>,
    /// Held by the one sync in progress; the others wait for it and usually find their
    /// record covered when they get it.
    sync_turn: Mutex<()>,
    /// Every record below this LSN is durable.
    durable_below: AtomicU64,
}

impl GroupCommit {
    /// Shares `wal`; records appended before are taken as durable (a replayed WAL is).
    pub fn new(wal: Wal) -> GroupCommit {
        let next = wal.next_lsn();
        GroupCommit {
            wal: Mutex::new(wal),
            sync_turn: Mutex::new(()),
            durable_below: AtomicU64::new(next),
        }
    }

    /// The WAL itself, for appends that must be ordered with other state (take the
    /// other lock first) and for its size. Keep the guard short: syncs wait for it.
    pub fn lock(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record (not yet durable) and returns its LSN.
    pub fn append(&self, payload: &[u8]) -> io::Result<u64> {
        self.lock().append(payload)
    }

    /// Returns once the record `lsn` is durable: at once if a sync covered it already,
    /// else after one `fdatasync` shared with every writer waiting meanwhile. A full
    /// segment is closed (and segments at or below `checkpoint` deleted) here too.
    pub fn sync_through(&self, lsn: u64, checkpoint: u64) -> io::Result<()> {
        if self.durable_below.load(Ordering::Acquire) > lsn {
            return Ok(());
        }
        let _turn = self.sync_turn.lock().unwrap_or_else(|p| p.into_inner());
        if self.durable_below.load(Ordering::Acquire) > lsn {
            return Ok(()); // the sync we waited for covered it
        }
        let ((segment, first_lsn, bytes), upto, full) = {
            let mut wal = self.lock();
            (wal.flushed_segment()?, wal.next_lsn(), wal.segment_full())
        };
        // Appenders go on meanwhile: their records join the next sync.
        segment.sync_data()?;
        self.lock().synced_through(first_lsn, bytes);
        if full {
            // Rare (once a segment): flush, sync and rotate under the lock, so nothing
            // appended since is left behind in the closed segment.
            let mut wal = self.lock();
            let upto = wal.next_lsn();
            wal.sync(checkpoint)?;
            self.durable_below.fetch_max(upto, Ordering::AcqRel);
        }
        self.durable_below.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Hands buffered records to the operating system (no fsync).
    pub fn flush(&self) -> io::Result<()> {
        self.lock().flush()
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_commit_makes_every_writers_record_durable_with_shared_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 0, |_, _| Ok(())).unwrap();
        let wal = std::sync::Arc::new(GroupCommit::new(wal));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        let lsn = wal.append(&[t as u8; 100]).unwrap();
                        wal.sync_through(lsn, 0).unwrap();
                        assert!(wal.durable_below.load(Ordering::Acquire) > lsn, "{i}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(wal);
        // Every record is there after a reopen, each whole.
        let mut n = 0;
        Wal::open(dir.path(), 0, |_, payload| {
            assert_eq!(payload.len(), 100);
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1600);
    }

    fn open_collect(dir: &Path, checkpoint: u64) -> (Wal, Vec<(u64, Vec<u8>)>, ReplayStats) {
        let mut got = Vec::new();
        let (wal, stats) = Wal::open(dir, checkpoint, |lsn, p| {
            got.push((lsn, p));
            Ok(())
        })
        .unwrap();
        (wal, got, stats)
    }

    #[test]
    fn replays_after_checkpoint_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, got, _) = open_collect(dir.path(), 0);
        assert!(got.is_empty());
        for i in 0..10u8 {
            assert_eq!(wal.append(&[i; 100]).unwrap(), u64::from(i) + 1);
        }
        wal.sync(0).unwrap();
        drop(wal);
        let (mut wal, got, stats) = open_collect(dir.path(), 4);
        assert_eq!(stats.replayed, 6);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![5, 6, 7, 8, 9, 10]
        );
        assert_eq!(got[0].1, vec![4u8; 100]);
        // LSNs continue after a restart.
        assert_eq!(wal.append(b"x").unwrap(), 11);
    }

    #[test]
    fn torn_tail_is_cut_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = open_collect(dir.path(), 0);
        wal.append(b"one").unwrap();
        wal.append(b"two").unwrap();
        wal.sync(0).unwrap();
        let path = wal.current.path.clone();
        drop(wal);
        // Simulate a crash mid-record: a header promising more than was written.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[50, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
        drop(f);
        let (_, got, stats) = open_collect(dir.path(), 0);
        assert_eq!(got.len(), 2);
        assert_eq!(stats.truncated_bytes, 10);
    }

    #[test]
    fn an_abandoned_wal_keeps_what_was_synced_only() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = open_collect(dir.path(), 0);
        wal.append(b"acknowledged").unwrap();
        wal.sync(0).unwrap();
        // A group whose sync failed: some bytes reached the file, some the buffer only.
        wal.append(&[7u8; 100]).unwrap();
        wal.flush().unwrap();
        wal.append(b"still buffered").unwrap();
        wal.abandon();
        let (mut wal, got, stats) = open_collect(dir.path(), 0);
        assert_eq!(got, vec![(1, b"acknowledged".to_vec())]);
        assert_eq!(stats.truncated_bytes, 0, "cut by abandon, not found torn");
        // The LSNs of the abandoned records are given again.
        assert_eq!(wal.append(b"next").unwrap(), 2);
    }

    #[test]
    fn corrupt_payload_stops_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = open_collect(dir.path(), 0);
        wal.append(b"good").unwrap();
        wal.append(b"flipped").unwrap();
        wal.sync(0).unwrap();
        let path = wal.current.path.clone();
        drop(wal);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let (_, got, stats) = open_collect(dir.path(), 0);
        assert_eq!(got, vec![(1, b"good".to_vec())]);
        assert!(stats.truncated_bytes > 0);
    }

    #[test]
    fn checkpointed_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _, _) = open_collect(dir.path(), 0);
        wal.append(b"a").unwrap();
        wal.sync(0).unwrap();
        drop(wal);
        // Everything is checkpointed: the old segment goes away at open.
        let (_, got, _) = open_collect(dir.path(), 1);
        assert!(got.is_empty());
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "only the fresh segment remains");
    }
}
