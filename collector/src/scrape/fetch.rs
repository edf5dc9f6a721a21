//! Fetching a target's exposition: timeout, size limit, gzip, buffers reused across
//! scrapes, and why a scrape failed.

use super::*;

/// Why a scrape failed.
#[derive(Debug)]
pub(super) struct ScrapeFailure {
    pub(super) reason: &'static str,
    pub(super) message: String,
}

pub(super) fn failure(reason: &'static str, message: impl Into<String>) -> ScrapeFailure {
    ScrapeFailure {
        reason,
        message: message.into(),
    }
}

/// Fetches the body: timeout, size limit, gzip.
/// Fetches a target's exposition into `buf` (its allocation reused scrape after scrape,
/// as the body is about the same size every time); the text and its format.
pub(super) async fn fetch<'b>(
    t: &Target,
    buf: &'b mut Buffers,
) -> Result<(&'b str, Format), ScrapeFailure> {
    let mut req = t
        .client
        .get(&t.url)
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", t.timeout.as_secs_f64()),
        );
    if let Some(a) = &t.auth {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| failure("http", format!("request failed: {e}")))?;
    if !resp.status().is_success() {
        return Err(failure(
            "http",
            format!("server returned HTTP status {}", resp.status()),
        ));
    }
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let format = Format::from_content_type(&header(reqwest::header::CONTENT_TYPE));
    let gzip = header(reqwest::header::CONTENT_ENCODING).eq_ignore_ascii_case("gzip");
    let raw = &mut buf.raw;
    // One refused giant body should not pin its memory for the target's lifetime.
    if raw.capacity() > 4 * raw.len().max(1 << 20) {
        *raw = Vec::new();
    }
    raw.clear();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| failure("http", format!("reading the body: {e}")))?
    {
        raw.extend_from_slice(&chunk);
        if raw.len() as u64 > t.body_limit {
            return Err(failure(
                "too_large",
                format!("body size limit exceeded ({} bytes)", t.body_limit),
            ));
        }
    }
    let bytes = if gzip {
        let out = &mut buf.unzipped;
        out.clear();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(t.body_limit + 1)
            .read_to_end(out)
            .map_err(|e| failure("parse", format!("gzip: {e}")))?;
        if out.len() as u64 > t.body_limit {
            return Err(failure(
                "too_large",
                format!(
                    "body size limit exceeded ({} bytes) after gzip",
                    t.body_limit
                ),
            ));
        }
        &buf.unzipped
    } else {
        &buf.raw
    };
    let text = std::str::from_utf8(bytes).map_err(|_| failure("parse", "body is not UTF-8"))?;
    Ok((text, format))
}

/// A scrape loop's body buffers.
#[derive(Default)]
pub(super) struct Buffers {
    pub(super) raw: Vec<u8>,
    pub(super) unzipped: Vec<u8>,
}
