//! Trace and span identifiers: fixed-size byte arrays shown as lowercase hex.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a byte string or hex text is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier has the wrong number of bytes.
    #[error("{kind} must be {expected} bytes, got {got}")]
    Length {
        /// "trace_id" or "span_id".
        kind: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Length that was given.
        got: usize,
    },
    /// All bytes are zero, which OTLP defines as invalid.
    #[error("{kind} is all zeros, which is invalid")]
    Zero {
        /// "trace_id" or "span_id".
        kind: &'static str,
    },
    /// The text is not hexadecimal.
    #[error("{kind} is not hexadecimal: {text:?}")]
    Hex {
        /// "trace_id" or "span_id".
        kind: &'static str,
        /// The offending text (cut to 64 characters).
        text: String,
    },
}

/// Hex digit values; 0xff marks a non-digit.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex_digit(c: u8) -> Option<u8> {
    match HEX[c as usize] {
        0xff => None,
        v => Some(v),
    }
}

macro_rules! id_type {
    ($name:ident, $len:expr, $kind:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Builds the identifier from raw bytes, rejecting a wrong length or all zeros.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    kind: $kind,
                    expected: $len,
                    got: bytes.len(),
                })?;
                if arr.iter().all(|b| *b == 0) {
                    return Err(IdError::Zero { kind: $kind });
                }
                Ok(Self(arr))
            }

            /// Parses hex text (either case). Shorter hex is left-padded with zeros, as
            /// Jaeger and Zipkin accept 64-bit trace IDs.
            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                let hex_err = || IdError::Hex {
                    kind: $kind,
                    text: text.chars().take(64).collect(),
                };
                if text.is_empty() || text.len() > $len * 2 {
                    return Err(if text.len() > $len * 2 {
                        IdError::Length {
                            kind: $kind,
                            expected: $len,
                            got: text.len() / 2,
                        }
                    } else {
                        hex_err()
                    });
                }
                // Left-pad with zeros on the stack: this runs once per log line.
                let mut padded = [b'0'; $len * 2];
                padded[$len * 2 - text.len()..].copy_from_slice(text.as_bytes());
                let mut arr = [0u8; $len];
                for (i, pair) in padded.chunks_exact(2).enumerate() {
                    match (hex_digit(pair[0]), hex_digit(pair[1])) {
                        (Some(hi), Some(lo)) => arr[i] = hi << 4 | lo,
                        _ => return Err(hex_err()),
                    }
                }
                Self::from_bytes(&arr)
            }

            /// Lowercase hex, `2 * LEN` characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = String::deserialize(d)?;
                    Self::from_hex(&text).map_err(serde::de::Error::custom)
                } else {
                    Ok(Self(<[u8; $len]>::deserialize(d)?))
                }
            }
        }
    };
}

id_type!(
    TraceId,
    16,
    "trace_id",
    "A 16-byte W3C/OTLP trace identifier."
);
id_type!(SpanId, 8, "span_id", "An 8-byte span identifier.");

impl SpanId {
    /// The identifier as a big-endian integer (how it is stored in fast fields).
    pub fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// Inverse of [`SpanId::to_u64`]; `None` for zero.
    pub fn from_u64(v: u64) -> Option<Self> {
        (v != 0).then(|| Self(v.to_be_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_padding() {
        let t = TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").unwrap();
        assert_eq!(t.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let short = TraceId::from_hex("a3ce929d0e0e4736").unwrap();
        assert_eq!(short.to_hex(), "0000000000000000a3ce929d0e0e4736");
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(matches!(
            TraceId::from_bytes(&[1; 15]),
            Err(IdError::Length { got: 15, .. })
        ));
        assert!(matches!(
            TraceId::from_bytes(&[0; 16]),
            Err(IdError::Zero { .. })
        ));
        assert!(matches!(SpanId::from_hex("zz"), Err(IdError::Hex { .. })));
        assert!(matches!(SpanId::from_hex(""), Err(IdError::Hex { .. })));
        assert!(matches!(
            SpanId::from_hex(&"a".repeat(40)),
            Err(IdError::Length { .. })
        ));
    }

    #[test]
    fn span_id_u64_round_trip() {
        let s = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(SpanId::from_u64(s.to_u64()), Some(s));
        assert_eq!(SpanId::from_u64(0), None);
    }
}
