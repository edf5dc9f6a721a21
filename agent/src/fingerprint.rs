//! File identity: device and inode, plus a checksum of the first bytes so that a new
//! file that reuses an old inode (or a file truncated and rewritten) is not mistaken
//! for the old one.

use std::fs::File;
use std::io::Read;
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

fn crc_of(file: &mut File, len: usize) -> std::io::Result<(u32, u32)> {
    use std::io::Seek;
    let pos = file.stream_position()?;
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut buf = vec![0u8; len];
    let mut read = 0;
    while read < len {
        match file.read(&mut buf[read..])? {
            0 => break,
            n => read += n,
        }
    }
    file.seek(std::io::SeekFrom::Start(pos))?;
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[..read]);
    Ok((read as u32, h.finalize()))
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
