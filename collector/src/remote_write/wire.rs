//! A reader of `prometheus.WriteRequest` that borrows from the decompressed body.
//!
//! prost's derived decoder (kept in `super` for encoding and as this reader's
//! reference) allocates a `String` per label name and value and a `Vec` per series; a
//! remote_write request is mostly labels, so that was most of its cost. This reader
//! walks the same wire format with prost's own primitives (`decode_key`,
//! `decode_varint`, `check_wire_type`, `skip_field`) and hands out `&str`s into the
//! body. It accepts and refuses exactly what the derived decoder does (a property test
//! in `super` checks it on arbitrary bytes).

use prost::DecodeError;
use prost::bytes::Buf;
use prost::encoding::{
    DecodeContext, WireType, check_wire_type, decode_key, decode_varint, skip_field,
};

/// Why a body did not decode.
#[derive(Debug, thiserror::Error)]
pub(super) enum WireError {
    /// What prost's primitives refused.
    #[error("{0}")]
    Prost(#[from] DecodeError),
    /// A length or a fixed-width value runs past the end of its message.
    #[error("buffer underflow")]
    Underflow,
    /// A string field is not UTF-8.
    #[error("invalid string value: data is not UTF-8 encoded")]
    Utf8,
}

/// One series of a request, its vectors reused from one series to the next.
#[derive(Default)]
pub(super) struct Series<'a> {
    /// (name, value) in the order sent.
    pub labels: Vec<(&'a str, &'a str)>,
    /// (timestamp ms, value).
    pub samples: Vec<(i64, f64)>,
    /// Exemplars.
    pub exemplars: Vec<Exemplar<'a>>,
}

/// An exemplar of a series.
pub(super) struct Exemplar<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub value: f64,
    pub timestamp: i64,
}

/// A `MetricMetadata` entry.
#[derive(Default)]
pub(super) struct Metadata<'a> {
    pub r#type: i32,
    pub family: &'a str,
    pub help: &'a str,
    pub unit: &'a str,
}

/// Reads a whole request, calling `series` for each time series and `metadata` for
/// each metadata entry, in order. On an error, what was already handed out stays
/// handed out: the caller discards it.
pub(super) fn read_request<'a>(
    mut buf: &'a [u8],
    mut series: impl FnMut(&Series<'a>),
    mut metadata: impl FnMut(Metadata<'a>),
) -> Result<(), WireError> {
    let mut s = Series::default();
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf)?;
        match tag {
            1 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                let body = delimited(&mut buf)?;
                s.labels.clear();
                s.samples.clear();
                s.exemplars.clear();
                read_series(body, &mut s)?;
                series(&s);
            }
            3 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                metadata(read_metadata(delimited(&mut buf)?)?);
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(())
}

fn read_series<'a>(mut buf: &'a [u8], s: &mut Series<'a>) -> Result<(), WireError> {
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf)?;
        match tag {
            1 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                s.labels.push(read_label(delimited(&mut buf)?)?);
            }
            2 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                s.samples.push(read_sample(delimited(&mut buf)?)?);
            }
            3 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                s.exemplars.push(read_exemplar(delimited(&mut buf)?)?);
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(())
}

fn read_label(mut buf: &[u8]) -> Result<(&str, &str), WireError> {
    let (mut name, mut value) = ("", "");
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf)?;
        match tag {
            1 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                name = string(&mut buf)?;
            }
            2 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                value = string(&mut buf)?;
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok((name, value))
}

fn read_sample(mut buf: &[u8]) -> Result<(i64, f64), WireError> {
    let (mut t, mut v) = (0i64, 0f64);
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf)?;
        match tag {
            1 => {
                check_wire_type(WireType::SixtyFourBit, wire)?;
                v = double(&mut buf)?;
            }
            2 => {
                check_wire_type(WireType::Varint, wire)?;
                t = decode_varint(&mut buf)? as i64;
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok((t, v))
}

fn read_exemplar(mut buf: &[u8]) -> Result<Exemplar<'_>, WireError> {
    let mut e = Exemplar {
        labels: Vec::new(),
        value: 0.0,
        timestamp: 0,
    };
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf)?;
        match tag {
            1 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                e.labels.push(read_label(delimited(&mut buf)?)?);
            }
            2 => {
                check_wire_type(WireType::SixtyFourBit, wire)?;
                e.value = double(&mut buf)?;
            }
            3 => {
                check_wire_type(WireType::Varint, wire)?;
                e.timestamp = decode_varint(&mut buf)? as i64;
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(e)
}

fn read_metadata(mut buf: &[u8]) -> Result<Metadata<'_>, WireError> {
    let mut m = Metadata::default();
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf)?;
        match tag {
            1 => {
                check_wire_type(WireType::Varint, wire)?;
                m.r#type = decode_varint(&mut buf)? as i32;
            }
            2 | 4 | 5 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                let text = string(&mut buf)?;
                match tag {
                    2 => m.family = text,
                    4 => m.help = text,
                    _ => m.unit = text,
                }
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(m)
}

/// A length-delimited field's bytes.
fn delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = decode_varint(buf)?;
    let Some(body) = usize::try_from(len).ok().and_then(|n| buf.get(..n)) else {
        return Err(WireError::Underflow);
    };
    *buf = &buf[body.len()..];
    Ok(body)
}

fn string<'a>(buf: &mut &'a [u8]) -> Result<&'a str, WireError> {
    std::str::from_utf8(delimited(buf)?).map_err(|_| WireError::Utf8)
}

fn double(buf: &mut &[u8]) -> Result<f64, WireError> {
    if buf.remaining() < 8 {
        return Err(WireError::Underflow);
    }
    Ok(buf.get_f64_le())
}
