//! File identity: device and inode, plus a checksum of the first bytes so that a new
//! file that reuses an old inode (or a file truncated and rewritten) is not mistaken
//! for the old one.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

/// Bytes at the head of a file covered by the checksum.
pub const HEAD_BYTES: usize = 256;

/// The identity of a file as the tailer knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// How many head bytes the checksum covers (fewer than [`HEAD_BYTES`] while the file
    /// is shorter).
    pub head_len: u32,
    /// CRC-32 of those bytes.
    pub head_crc: u32,
}

/// Device and inode of an open file.
pub fn key(file: &File) -> std::io::Result<(u64, u64)> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// CRC-32 of up to `len` (at most [`HEAD_BYTES`]) bytes from the start of `file`, and
/// how many there were. Positional reads: the file's read position is left alone.
fn crc_of(file: &File, len: usize) -> std::io::Result<(u32, u32)> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; HEAD_BYTES];
    let len = len.min(HEAD_BYTES);
    let mut read = 0;
    while read < len {
        match file.read_at(&mut buf[read..len], read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    Ok((read as u32, crc32fast::hash(&buf[..read])))
}

impl Fingerprint {
    /// Fingerprints an open file (its read position is left unchanged).
    pub fn of(file: &mut File) -> std::io::Result<Fingerprint> {
        let (dev, ino) = key(file)?;
        let (head_len, head_crc) = crc_of(file, HEAD_BYTES)?;
        Ok(Fingerprint {
            dev,
            ino,
            head_len,
            head_crc,
        })
    }

    /// True when `file` is the file this fingerprint was taken of: same device and inode,
    /// and its first `head_len` bytes are unchanged.
    pub fn matches(&self, file: &mut File) -> std::io::Result<bool> {
        if key(file)? != (self.dev, self.ino) {
            return Ok(false);
        }
        let (len, crc) = crc_of(file, self.head_len as usize)?;
        Ok(len == self.head_len && crc == self.head_crc)
    }
}

/// Bytes before an offset covered by a [`TailSum`].
pub const TAIL_BYTES: u64 = 256;

/// A checksum of the bytes just before an offset: with the head [`Fingerprint`], it
/// recognises a copy of a file (copytruncate) that holds what was already read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TailSum {
    /// How many bytes (fewer than [`TAIL_BYTES`] near the start of the file).
    pub len: u32,
    /// CRC-32 of those bytes.
    pub crc: u32,
}

/// The [`TailSum`] of the bytes of `file` that end at `end`; `None` if they cannot
/// all be read (the file is shorter).
pub fn tail_sum(file: &File, end: u64) -> Option<TailSum> {
    use std::os::unix::fs::FileExt;
    let len = end.min(TAIL_BYTES) as usize;
    let mut buf = [0u8; TAIL_BYTES as usize];
    file.read_exact_at(&mut buf[..len], end - len as u64).ok()?;
    Some(TailSum {
        len: len as u32,
        crc: crc32fast::hash(&buf[..len]),
    })
}

/// True when the first `head_len` bytes of `file` have the CRC `head_crc`.
pub fn head_is(file: &File, head_len: u32, head_crc: u32) -> bool {
    crc_of(file, head_len as usize).is_ok_and(|got| got == (head_len, head_crc))
}
