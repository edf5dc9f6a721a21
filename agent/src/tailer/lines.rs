//! Reading a file's new bytes and cutting them into lines: partial lines wait for their
//! newline (or the timeout), overlong lines are cut at `max_line_bytes`.

use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

use super::{Line, TailerConfig, Watched, head_bytes};
use crate::decode::TRUNCATION_MARKER;
use crate::fingerprint::{Fingerprint, tail_sum};

/// Reads what `w` gained, up to `read_quantum_bytes`, into `out`.
pub(super) fn read_file(
    w: &mut Watched,
    cfg: &TailerConfig,
    now: Instant,
    out: &mut Vec<Line>,
) -> std::io::Result<()> {
    // Truncation and the size were checked at the start of this poll.
    let len = w.size;
    if len > w.read_offset {
        w.last_growth = now;
        w.file.seek(SeekFrom::Start(w.read_offset))?;
        let want = ((len - w.read_offset) as usize).min(cfg.read_quantum_bytes);
        let mut chunk = vec![0u8; want];
        let n = w.file.read(&mut chunk)?;
        chunk.truncate(n);
        split_lines(w, &chunk, cfg, now, out);
        if n < want {
            // Shorter than its size said (shrunk meanwhile): nothing more to read until
            // the next look at its size.
            w.size = w.read_offset;
        }
        w.tail = tail_sum(&w.file, w.read_offset - w.pending.len() as u64);
        // While the file is short, its fingerprint covers fewer bytes: extend it.
        if (w.fingerprint.head_len as usize) < crate::fingerprint::HEAD_BYTES {
            w.fingerprint = Fingerprint::of(&mut w.file)?;
            w.head = head_bytes(&w.file);
        }
    } else if !w.pending.is_empty()
        && now.duration_since(w.pending_since) >= cfg.partial_line_timeout
    {
        // A last line without a newline: deliver it after waiting for one.
        let bytes = std::mem::take(&mut w.pending);
        if !w.skipping {
            out.push(line_of(w, bytes, w.read_offset));
        }
        w.skipping = false;
    }
    Ok(())
}

fn line_of(w: &Watched, bytes: Vec<u8>, end_offset: u64) -> Line {
    Line {
        file: (w.fingerprint.dev, w.fingerprint.ino),
        path: w.path_text.clone(),
        bytes,
        end_offset,
    }
}

fn split_lines(
    w: &mut Watched,
    chunk: &[u8],
    cfg: &TailerConfig,
    now: Instant,
    out: &mut Vec<Line>,
) {
    let mut start = 0;
    let base = w.read_offset;
    while let Some(nl) = memchr::memchr(b'\n', &chunk[start..]) {
        let end = start + nl;
        let end_offset = base + end as u64 + 1;
        if w.skipping {
            w.skipping = false;
        } else if w.pending.is_empty() {
            let mut bytes = chunk[start..end].to_vec();
            cap(&mut bytes, cfg.max_line_bytes);
            out.push(line_of(w, bytes, end_offset));
        } else {
            let mut bytes = std::mem::take(&mut w.pending);
            bytes.extend_from_slice(&chunk[start..end]);
            cap(&mut bytes, cfg.max_line_bytes);
            out.push(line_of(w, bytes, end_offset));
        }
        start = end + 1;
    }
    let rest = &chunk[start..];
    if !rest.is_empty() && !w.skipping {
        w.pending.extend_from_slice(rest);
        w.pending_since = now;
        if w.pending.len() > cfg.max_line_bytes {
            // Deliver the head now and drop the rest of the line: memory stays bounded.
            let mut bytes = std::mem::take(&mut w.pending);
            cap(&mut bytes, cfg.max_line_bytes);
            let end_offset = base + chunk.len() as u64;
            out.push(line_of(w, bytes, end_offset));
            w.skipping = true;
        }
    }
    w.read_offset = base + chunk.len() as u64;
}

fn cap(bytes: &mut Vec<u8>, max: usize) {
    if bytes.len() > max {
        bytes.truncate(max);
        bytes.extend_from_slice(TRUNCATION_MARKER.as_bytes());
    }
}
