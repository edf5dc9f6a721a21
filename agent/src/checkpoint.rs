//! Read positions that survive restarts. Written atomically (temporary file, fsync,
//! rename, fsync of the directory), and — by the caller — only after the data up to
//! the position was acknowledged, so a crash replays lines rather than losing them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;

/// Where reading of one file stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The file's identity.
    pub fingerprint: Fingerprint,
    /// Byte offset up to which lines were delivered.
    pub offset: u64,
    /// Path the file was last seen at (for humans; identity is the fingerprint).
    pub path: String,
    /// Checksum of the bytes before `offset`, to recognise a copy of the file.
    #[serde(default)]
    pub tail: Option<crate::fingerprint::TailSum>,
}

/// The checkpoint file: every file's acknowledged position.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    positions: BTreeMap<(u64, u64), Position>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Position>,
}

impl Checkpoints {
    /// Loads `path`, or starts empty when it does not exist.
    pub fn load(path: &Path) -> std::io::Result<Checkpoints> {
        let positions = match std::fs::read(path) {
            Ok(bytes) => {
                let disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                disk.files
                    .into_iter()
                    .map(|p| ((p.fingerprint.dev, p.fingerprint.ino), p))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Checkpoints {
            path: path.to_path_buf(),
            positions,
        })
    }

    /// The stored position of the file with this device and inode.
    pub fn get(&self, dev: u64, ino: u64) -> Option<&Position> {
        self.positions.get(&(dev, ino))
    }

    /// Every stored position.
    pub fn iter(&self) -> impl Iterator<Item = &Position> {
        self.positions.values()
    }

    /// Records a position (in memory; [`Checkpoints::save`] makes it durable).
    pub fn set(&mut self, pos: Position) {
        self.positions
            .insert((pos.fingerprint.dev, pos.fingerprint.ino), pos);
    }

    /// Forgets files for which `keep` returns false (deleted and fully read).
    pub fn retain(&mut self, mut keep: impl FnMut(&Position) -> bool) {
        self.positions.retain(|_, p| keep(p));
    }

    /// Writes all positions atomically and durably.
    pub fn save(&self) -> std::io::Result<()> {
        let disk = OnDisk {
            version: 1,
            files: self.positions.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&disk).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}
