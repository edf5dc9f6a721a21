//! Line formats and the reassembly of split lines.
//!
//! Container runtimes split long lines: Docker's `json-file` driver writes a line over
//! 16 KiB as several entries whose `log` does not end in `\n`; CRI writes `P` (partial)
//! entries followed by an `F` (full) one. A [`Decoder`] per file joins them again,
//! bounded by `max_line_bytes`: a longer line is cut with [`TRUNCATION_MARKER`] instead
//! of growing memory, and the rest of it is skipped until its end.

use serde_json::Value as J;
use triad_model::{KeyValue, LogRecord, Value};

use crate::fields::{LineContext, parse_timestamp, record_from_text_checked};

/// Appended to a line cut at `max_line_bytes`.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// How the lines of a file are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One record per line: JSON objects are mapped, anything else is plain text.
    Lines,
    /// Docker `json-file`: `{"log":"…\n","stream":"stdout","time":"…"}` per line.
    Docker,
    /// CRI: `<RFC 3339 time> <stdout|stderr> <P|F> <message>` per line.
    Cri,
}

impl Format {
    /// Guesses the format from a file's first line: a Docker `json-file` entry, a CRI
    /// line, or anything else (JSON lines or plain text).
    pub fn sniff(first_line: &[u8]) -> Format {
        let text = String::from_utf8_lossy(first_line);
        if text.starts_with("{\"log\":") {
            return Format::Docker;
        }
        let mut parts = text.splitn(4, ' ');
        let (time, stream, tag) = (parts.next(), parts.next(), parts.next());
        let cri = matches!(stream, Some("stdout" | "stderr"))
            && matches!(tag.and_then(|t| t.split(':').next()), Some("P" | "F"))
            && time.is_some_and(|t| parse_timestamp(&J::String(t.to_string())).is_some());
        if cri { Format::Cri } else { Format::Lines }
    }
}

/// Decodes the lines of one file into records, keeping partial-line state between calls.
#[derive(Debug)]
pub struct Decoder {
    format: Format,
    ctx: LineContext,
    max_line_bytes: usize,
    /// Text of a line split across entries, waiting for its end.
    partial: String,
    /// Time and stream of the first entry of the pending line.
    partial_meta: Option<(Option<i64>, String)>,
    /// The pending line was cut; skip its remaining parts.
    truncated: bool,
    /// Lines that did not parse as the format they claimed, since the last
    /// [`Decoder::take_parse_errors`].
    parse_errors: u64,
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

impl Decoder {
    /// A decoder for a file of `format`; lines longer than `max_line_bytes` are cut.
    pub fn new(format: Format, ctx: LineContext, max_line_bytes: usize) -> Self {
        Self {
            format,
            ctx,
            max_line_bytes: max_line_bytes.max(64),
            partial: String::new(),
            partial_meta: None,
            truncated: false,
            parse_errors: 0,
        }
    }

    /// Lines kept as plain text because they did not parse as their format claimed
    /// (broken JSON, corrupt container-runtime entries), since the last call.
    pub fn take_parse_errors(&mut self) -> u64 {
        std::mem::take(&mut self.parse_errors)
    }

    /// A record from a complete line, counting a line that claimed JSON but was not.
    fn record(&mut self, text: &str, observed_ns: i64) -> LogRecord {
        let (rec, broken) = record_from_text_checked(text, &self.ctx, observed_ns);
        self.parse_errors += u64::from(broken);
        rec
    }

    /// A line that does not match the file's container-runtime format: kept as text.
    fn foreign(&mut self, text: &str, observed_ns: i64) -> Option<LogRecord> {
        self.parse_errors += 1;
        Some(record_from_text_checked(text, &self.ctx, observed_ns).0)
    }

    /// Feeds one line as read from the file (without its `\n`; invalid UTF-8 is
    /// replaced, never dropped). Returns a record when a complete line is available.
    pub fn push(&mut self, raw: &[u8], observed_ns: i64) -> Option<LogRecord> {
        // Valid UTF-8 (the usual case) is borrowed; anything else is replaced, not dropped.
        let text = match std::str::from_utf8(raw) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(raw),
        };
        match self.format {
            Format::Lines if text.len() <= self.max_line_bytes => {
                Some(self.record(&text, observed_ns))
            }
            Format::Lines => {
                let mut line = text.into_owned();
                cut(&mut line, self.max_line_bytes);
                line.push_str(TRUNCATION_MARKER);
                Some(self.record(&line, observed_ns))
            }
            Format::Docker => self.push_docker(&text, observed_ns),
            Format::Cri => self.push_cri(&text, observed_ns),
        }
    }

    /// True while pieces of a split line wait for their end.
    pub fn has_pending(&self) -> bool {
        self.partial_meta.is_some()
    }

    /// Returns a pending partial line as a record (at end of file, after a timeout).
    pub fn flush(&mut self, observed_ns: i64) -> Option<LogRecord> {
        let (time, stream) = self.partial_meta.take()?;
        let text = std::mem::take(&mut self.partial);
        self.truncated = false;
        Some(self.finish(&text, time, &stream, observed_ns))
    }

    /// Adds one piece of a line; returns the whole line once `last` is true.
    fn append(
        &mut self,
        piece: &str,
        time: Option<i64>,
        stream: &str,
        last: bool,
        observed_ns: i64,
    ) -> Option<LogRecord> {
        if self.partial_meta.is_none() {
            self.partial_meta = Some((time, stream.to_string()));
        }
        if !self.truncated {
            self.partial.push_str(piece);
            if self.partial.len() > self.max_line_bytes {
                cut(&mut self.partial, self.max_line_bytes);
                self.partial.push_str(TRUNCATION_MARKER);
                self.truncated = true;
            }
        }
        if last { self.flush(observed_ns) } else { None }
    }

    fn finish(
        &mut self,
        text: &str,
        time: Option<i64>,
        stream: &str,
        observed_ns: i64,
    ) -> LogRecord {
        let mut rec = self.record(text, observed_ns);
        // The runtime's time stands in when the application wrote none.
        if let Some(t) = time
            && rec.timestamp_ns == observed_ns
        {
            rec.timestamp_ns = t;
        }
        if !stream.is_empty() {
            rec.attributes.push(KeyValue::new(
                "log.iostream",
                Value::Str(stream.to_string()),
            ));
        }
        rec
    }

    fn push_docker(&mut self, text: &str, observed_ns: i64) -> Option<LogRecord> {
        let entry = match serde_json::from_str::<J>(text) {
            Ok(J::Object(m)) => m,
            // Not a json-file entry (a corrupt or foreign line): keep it as plain text.
            _ => return self.foreign(text, observed_ns),
        };
        let log = entry.get("log").and_then(J::as_str).unwrap_or_default();
        let stream = entry.get("stream").and_then(J::as_str).unwrap_or_default();
        let time = entry.get("time").and_then(parse_timestamp);
        match log.strip_suffix('\n') {
            Some(body) => self.append(body, time, stream, true, observed_ns),
            None => self.append(log, time, stream, false, observed_ns),
        }
    }

    fn push_cri(&mut self, text: &str, observed_ns: i64) -> Option<LogRecord> {
        let mut parts = text.splitn(4, ' ');
        let (Some(time), Some(stream), Some(tag), msg) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.foreign(text, observed_ns);
        };
        let time = parse_timestamp(&J::String(time.to_string()));
        let partial = tag.split(':').next() == Some("P");
        if time.is_none() || !(stream == "stdout" || stream == "stderr") {
            return self.foreign(text, observed_ns);
        }
        self.append(msg.unwrap_or_default(), time, stream, !partial, observed_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000_000;

    fn decoder(format: Format, max: usize) -> Decoder {
        Decoder::new(
            format,
            LineContext {
                tenant: "t".into(),
                source: "f".into(),
                ..Default::default()
            },
            max,
        )
    }

    fn stream(r: &LogRecord) -> Option<String> {
        r.attributes
            .iter()
            .find(|a| a.key == "log.iostream")
            .map(|a| a.value.to_text())
    }

    #[test]
    fn sniffs_the_format_from_the_first_line() {
        assert_eq!(
            Format::sniff(br#"{"log":"x\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}"#),
            Format::Docker
        );
        assert_eq!(
            Format::sniff(b"2023-11-14T22:13:20.1Z stderr P part"),
            Format::Cri
        );
        assert_eq!(Format::sniff(br#"{"msg":"app json"}"#), Format::Lines);
        assert_eq!(Format::sniff(b"yesterday stdout F not cri"), Format::Lines);
    }

    #[test]
    fn docker_json_file_with_partial_lines() {
        let mut d = decoder(Format::Docker, 1 << 20);
        let r = d.push(br#"{"log":"{\"msg\":\"hello\",\"level\":\"info\"}\n","stream":"stdout","time":"2023-11-14T22:13:20.123456789Z"}"#, NOW).unwrap();
        assert_eq!((r.body.as_str(), r.level().as_str()), ("hello", "info"));
        assert_eq!(
            r.timestamp_ns, 1_700_000_000_123_456_789,
            "the runtime's time when the app wrote none"
        );
        assert_eq!(stream(&r).as_deref(), Some("stdout"));
        assert!(
            d.push(
                br#"{"log":"first half, ","stream":"stderr","time":"2023-11-14T22:13:21Z"}"#,
                NOW
            )
            .is_none()
        );
        assert!(
            d.push(
                br#"{"log":"second half, ","stream":"stderr","time":"2023-11-14T22:13:21Z"}"#,
                NOW
            )
            .is_none()
        );
        let r = d
            .push(
                br#"{"log":"end\n","stream":"stderr","time":"2023-11-14T22:13:22Z"}"#,
                NOW,
            )
            .unwrap();
        assert_eq!(r.body, "first half, second half, end");
        assert_eq!(
            r.timestamp_ns, 1_700_000_001_000_000_000,
            "time of the first piece"
        );
        assert_eq!(stream(&r).as_deref(), Some("stderr"));
        let r = d.push(b"not a docker entry", NOW).unwrap();
        assert_eq!(r.body, "not a docker entry");
    }

    #[test]
    fn cri_with_partial_lines() {
        let mut d = decoder(Format::Cri, 1 << 20);
        let r = d
            .push(
                b"2023-11-14T22:13:20.000000001Z stdout F plain message with spaces",
                NOW,
            )
            .unwrap();
        assert_eq!(r.body, "plain message with spaces");
        assert_eq!(r.timestamp_ns, 1_700_000_000_000_000_001);
        assert!(
            d.push(b"2023-11-14T22:13:21Z stderr P {\"msg\":\"json ", NOW)
                .is_none()
        );
        let r = d
            .push(
                b"2023-11-14T22:13:21Z stderr F split\",\"ts\":1700000005}",
                NOW,
            )
            .unwrap();
        assert_eq!(r.body, "json split");
        assert_eq!(
            r.timestamp_ns, 1_700_000_005_000_000_000,
            "the app's own time wins"
        );
        assert_eq!(stream(&r).as_deref(), Some("stderr"));
        let r = d.push(b"2023-11-14T22:13:21Z stdout F ", NOW).unwrap();
        assert_eq!(r.body, "", "an empty line is still a record");
        let r = d.push(b"garbage without the CRI prefix", NOW).unwrap();
        assert_eq!(r.body, "garbage without the CRI prefix");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker_and_memory_stays_bounded() {
        let mut d = decoder(Format::Lines, 100);
        let r = d.push(&vec![b'x'; 10_000_000], NOW).unwrap();
        assert_eq!(r.body.len(), 100 + TRUNCATION_MARKER.len());
        assert!(r.body.ends_with(TRUNCATION_MARKER));

        let mut d = decoder(Format::Cri, 100);
        for _ in 0..1000 {
            assert!(
                d.push(
                    format!("2023-11-14T22:13:21Z stdout P {}", "y".repeat(1000)).as_bytes(),
                    NOW
                )
                .is_none()
            );
            assert!(d.partial.len() <= 100 + TRUNCATION_MARKER.len());
        }
        let r = d.push(b"2023-11-14T22:13:21Z stdout F tail", NOW).unwrap();
        assert!(r.body.ends_with(TRUNCATION_MARKER) && r.body.starts_with("yyyy"));
        let r = d.push(b"2023-11-14T22:13:22Z stdout F next", NOW).unwrap();
        assert_eq!(r.body, "next", "the next line is not affected");
    }

    #[test]
    fn invalid_utf8_nul_bytes_and_cut_multibyte_chars_are_kept() {
        let mut d = decoder(Format::Lines, 64);
        let r = d.push(&[b'a', 0xff, 0, b'b'], NOW).unwrap();
        assert_eq!(r.body, "a\u{fffd}\u{0}b");
        // 65 bytes: the cut at 64 falls inside the last two-byte character.
        let r = d
            .push(format!("x{}", "é".repeat(32)).as_bytes(), NOW)
            .unwrap();
        assert_eq!(
            r.body,
            format!("x{}{TRUNCATION_MARKER}", "é".repeat(31)),
            "cut on a character boundary"
        );
    }

    #[test]
    fn a_pending_partial_line_is_flushed_not_lost() {
        let mut d = decoder(Format::Docker, 1 << 20);
        assert!(
            d.push(
                br#"{"log":"no newline yet","stream":"stdout","time":"2023-11-14T22:13:20Z"}"#,
                NOW
            )
            .is_none()
        );
        assert_eq!(d.flush(NOW).unwrap().body, "no newline yet");
        assert!(d.flush(NOW).is_none());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a file holds, every format yields records without panicking, each
        /// bounded by `max_line_bytes`, and no complete line is lost.
        #[test]
        fn arbitrary_lines_never_panic_and_stay_bounded(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            max in 64usize..256,
        ) {
            for format in [Format::Lines, Format::Docker, Format::Cri] {
                let mut d = Decoder::new(format, LineContext::default(), max);
                let mut out = Vec::new();
                for l in &lines {
                    out.extend(d.push(l, 1));
                }
                out.extend(d.flush(1));
                for r in &out {
                    // A JSON body may be re-serialised; plain text is bounded exactly.
                    if format == Format::Lines && !r.body.starts_with('{') {
                        prop_assert!(r.body.len() <= max + TRUNCATION_MARKER.len());
                    }
                }
                if format == Format::Lines {
                    prop_assert_eq!(out.len(), lines.len());
                }
            }
        }
    }
}
