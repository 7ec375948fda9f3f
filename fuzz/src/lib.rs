//! What the fuzz targets share: reading a fuzzer's bytes as lines and HTTP headers.
//!
//! Several targets read their input as text lines, so that the starting inputs in `corpus/`
//! are written by hand and read like the requests they stand for. A line break cannot be
//! part of a header value, so splitting on it loses nothing a request could carry.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The input's lines, split on `\n` (a `\r` before it stays, as a header value refuses it);
/// a final `\n` ends the last line rather than starting an empty one.
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.strip_suffix(b"\n")
        .unwrap_or(data)
        .split(|b| *b == b'\n')
}

/// The headers of `name: value` lines, in order, repeated names kept; a line that is not a
/// valid header (no colon, a bad name, a byte a value may not hold) is left out, as the
/// HTTP server would never pass it on.
pub fn header_map<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii_start());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}

/// The text of a line: `None` when it is empty or not UTF-8.
pub fn text(line: &[u8]) -> Option<&str> {
    std::str::from_utf8(line)
        .ok()
        .filter(|text| !text.is_empty())
}
