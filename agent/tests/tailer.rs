//! The tailer against real files: rotation both ways, truncation, deletion, symlinks,
//! long and unterminated lines, restarts from checkpoints.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use triad_agent::checkpoint::{Checkpoints, Position};
use triad_agent::fingerprint::Fingerprint;
use triad_agent::tailer::{Line, ReadFrom, Tailer, TailerConfig};

fn cfg(dir: &Path) -> TailerConfig {
    TailerConfig {
        include: vec![format!("{}/*.log", dir.display())],
        rotate_wait: Duration::ZERO,
        partial_line_timeout: Duration::from_secs(3600),
        ..Default::default()
    }
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn texts(lines: &[Line]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
        .collect()
}

/// Records every delivered line's end offset, as the agent does after an acknowledgement.
fn checkpoint_all(cp: &mut Checkpoints, lines: &[Line]) {
    for l in lines {
        let mut f = fs::File::open(&*l.path).unwrap();
        if let Ok(fp) = Fingerprint::of(&mut f)
            && (fp.dev, fp.ino) == l.file
        {
            cp.set(Position {
                fingerprint: fp,
                offset: l.end_offset,
                path: l.path.to_string(),
                tail: None,
            });
        }
    }
}

#[test]
fn reads_lines_in_order_and_resumes_from_a_checkpoint_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "one\ntwo\n");
    let mut cp = Checkpoints::load(&dir.path().join("cp.json")).unwrap();
    let mut t = Tailer::new(cfg(dir.path())).unwrap();
    let lines = t.poll(&cp);
    assert_eq!(texts(&lines), ["one", "two"]);
    assert_eq!(lines[1].end_offset, 8);
    checkpoint_all(&mut cp, &lines);
    cp.save().unwrap();

    append(&log, "three\n");
    drop(t);
    let cp = Checkpoints::load(&dir.path().join("cp.json")).unwrap();
    let mut t = Tailer::new(cfg(dir.path())).unwrap();
    assert_eq!(
        texts(&t.poll(&cp)),
        ["three"],
        "restart resumes after the checkpoint"
    );
    assert!(t.poll(&cp).is_empty());
}

#[test]
fn rotation_by_rename_and_create_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let cp = Checkpoints::load(&dir.path().join("cp.json")).unwrap();
    let mut t = Tailer::new(cfg(dir.path())).unwrap();
    append(&log, "a\n");
    assert_eq!(texts(&t.poll(&cp)), ["a"]);
    append(&log, "b\n"); // written before the rotation, not yet read
    fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "c\n"); // the new file
    let mut got = texts(&t.poll(&cp));
    got.sort();
    assert_eq!(got, ["b", "c"]);
    assert_eq!(t.open_files(), 1, "the rotated file is closed once drained");
}

#[test]
fn copytruncate_and_truncate_then_rewrite_start_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let cp = Checkpoints::load(&dir.path().join("cp.json")).unwrap();
    let mut t = Tailer::new(cfg(dir.path())).unwrap();
    append(&log, "first line\nsecond line\n");
    assert_eq!(t.poll(&cp).len(), 2);
    // copytruncate: copy away, truncate in place, the writer continues.
    fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "after truncate\n");
    assert_eq!(texts(&t.poll(&cp)), ["after truncate"]);
    // Truncated and rewritten past the old offset before the next poll.
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "a much longer line written after the truncation\n");
    assert_eq!(
        texts(&t.poll(&cp)),
        ["a much longer line written after the truncation"]
    );
}

#[test]
fn deleted_files_are_drained_and_new_inodes_are_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut cp = Checkpoints::load(&dir.path().join("cp.json")).unwrap();
    let mut t = Tailer::new(cfg(dir.path())).unwrap();
    append(&log, "x\n");
    let first = t.poll(&cp);
    checkpoint_all(&mut cp, &first);
    append(&log, "written before delete\n");
    fs::remove_file(&log).unwrap();
    assert_eq!(
        texts(&t.poll(&cp)),
        ["written before delete"],
        "read through the open descriptor"
    );
    // A new file, possibly on the reused inode: its head differs, so it starts at 0.
    append(&log, "new file\n");
    assert_eq!(texts(&t.poll(&cp)), ["new file"]);
}

#[test]
fn symlinks_partial_lines_long_lines_directories_and_read_from_end() {
    let dir = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let target = target_dir.path().join("real.txt");
    append(&target, "through the link\n");
    std::os::unix::fs::symlink(&target, dir.path().join("linked.log")).unwrap();
    fs::create_dir(dir.path().join("dir.log")).unwrap();
    let cp = Checkpoints::load(&dir.path().join("cp.json")).unwrap();
    let mut c = cfg(dir.path());
    c.max_line_bytes = 100;
    c.partial_line_timeout = Duration::ZERO;
    let mut t = Tailer::new(c.clone()).unwrap();
    assert_eq!(texts(&t.poll(&cp)), ["through the link"]);

    append(&target, "no newline yet");
    let got = texts(&t.poll(&cp));
    assert!(
        got.is_empty(),
        "first poll reads it, the timeout delivers it next time"
    );
    assert_eq!(texts(&t.poll(&cp)), ["no newline yet"]);

    append(&target, &format!("{}\nshort\n", "z".repeat(10_000_000)));
    let got = texts(&t.poll(&cp));
    let all: Vec<String> = got
        .into_iter()
        .chain(texts(&t.poll(&cp)))
        .chain(texts(&t.poll(&cp)))
        .collect();
    assert!(
        all[0].starts_with("zzzz") && all[0].ends_with("[truncated]") && all[0].len() < 200,
        "{}",
        &all[0][..50]
    );
    let mut rest = all.clone();
    for _ in 0..100 {
        if rest.iter().any(|l| l == "short") {
            break;
        }
        rest.extend(texts(&t.poll(&cp)));
    }
    assert!(
        rest.iter().any(|l| l == "short"),
        "the line after the long one arrives"
    );
    assert_eq!(
        rest.iter().filter(|l| l.starts_with('z')).count(),
        1,
        "the long line once, cut"
    );

    let end_dir = tempfile::tempdir().unwrap();
    append(&end_dir.path().join("old.log"), "existing\n");
    let mut e = cfg(end_dir.path());
    e.read_from = ReadFrom::End;
    let mut t = Tailer::new(e).unwrap();
    assert!(t.poll(&cp).is_empty(), "existing content skipped");
    append(&end_dir.path().join("old.log"), "new\n");
    append(
        &end_dir.path().join("later.log"),
        "file created later is read whole\n",
    );
    let mut got = texts(&t.poll(&cp));
    got.sort();
    assert_eq!(got, ["file created later is read whole", "new"]);
}

#[test]
fn bad_globs_are_named() {
    let e = Tailer::new(TailerConfig {
        include: vec!["/var/log/[".into()],
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(e.to_string().contains("/var/log/["), "{e}");
}

#[test]
fn idle_files_are_closed_and_resume_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("quiet.log");
    append(&log, "one\ntwo\n");
    let cp = Checkpoints::load(&dir.path().join("cp.json")).unwrap();
    let mut c = cfg(dir.path());
    c.close_idle = Duration::from_millis(1);
    let mut t = Tailer::new(c).unwrap();
    assert_eq!(texts(&t.poll(&cp)), ["one", "two"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.open_files() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never closed while idle"
        );
        assert!(t.poll(&cp).is_empty());
    }
    assert!(
        t.poll(&cp).is_empty(),
        "not reopened while it does not change"
    );
    assert_eq!(t.open_files(), 0);
    // No checkpoint was written (nothing acknowledged), yet it resumes where it stopped.
    append(&log, "three\n");
    assert_eq!(texts(&t.poll(&cp)), ["three"]);
    assert_eq!(t.open_files(), 1);
}

#[test]
fn one_poll_is_bounded_and_busy_files_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["a.log", "b.log", "c.log"] {
        append(&dir.path().join(f), &format!("{f}\n").repeat(1000)); // 6 KB each
    }
    let cp = Checkpoints::load(&dir.path().join("cp.json")).unwrap();
    let mut c = cfg(dir.path());
    c.poll_budget_bytes = 1000;
    c.read_quantum_bytes = 4096;
    let mut t = Tailer::new(c).unwrap();
    let mut per_poll_files = Vec::new();
    let mut total = 0;
    for _ in 0..20 {
        let lines = t.poll(&cp);
        let mut files: Vec<String> = lines.iter().map(|l| l.path.to_string()).collect();
        files.dedup();
        assert!(
            lines.len() <= 4096 / 6 + 1,
            "one file's quantum at most: {}",
            lines.len()
        );
        total += lines.len();
        per_poll_files.push(files);
    }
    assert_eq!(total, 3000, "everything read");
    let firsts: std::collections::HashSet<&String> =
        per_poll_files.iter().filter_map(|f| f.first()).collect();
    assert_eq!(
        firsts.len(),
        3,
        "each file gets the first turn in some poll"
    );
}
