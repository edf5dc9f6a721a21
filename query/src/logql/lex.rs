//! LogQL's tokens.

/// A token and where it starts and ends in the query text (bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub kind: Tok,
    /// Start offset.
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An identifier or keyword (`json`, `by`, `service_name`).
    Ident(String),
    /// A quoted string, unescaped.
    Str(String),
    /// A number, or a number with a unit (`5m`, `1h30m`, `20MB`, `1.5`), as written.
    Num(String),
    /// Punctuation and operators (`{`, `|=`, `!~`, `>=`, `+`, …).
    Op(&'static str),
}

const OPS: &[&str] = &[
    "|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<=", "{", "}", "(", ")", "[", "]", ",",
    "|", "=", ">", "<", "+", "-", "*", "/", "%", "^",
];

/// Splits `text` into tokens.
pub fn lex(text: &str) -> Result<Vec<Token>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            // A comment runs to the end of the line.
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        if c == b'"' || c == b'\'' {
            let (s, next) = quoted(text, i)?;
            out.push(Token {
                kind: Tok::Str(s),
                start,
                end: next,
            });
            i = next;
            continue;
        }
        if c == b'`' {
            let Some(len) = text[i + 1..].find('`') else {
                return Err(format!("unterminated raw string at position {i}"));
            };
            out.push(Token {
                kind: Tok::Str(text[i + 1..i + 1 + len].to_string()),
                start,
                end: i + len + 2,
            });
            i += len + 2;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            // Numbers with units and durations: `5m`, `1h30m`, `1.5GB`, `1e3`.
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == b'.'
                    || ((b[i] == b'+' || b[i] == b'-')
                        && matches!(b[i - 1], b'e' | b'E')
                        && !text[start..i]
                            .contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')))
            {
                i += 1;
            }
            out.push(Token {
                kind: Tok::Num(text[start..i].to_string()),
                start,
                end: i,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            out.push(Token {
                kind: Tok::Ident(text[start..i].to_string()),
                start,
                end: i,
            });
            continue;
        }
        match OPS.iter().find(|op| text[i..].starts_with(**op)) {
            Some(op) => {
                i += op.len();
                out.push(Token {
                    kind: Tok::Op(op),
                    start,
                    end: i,
                });
            }
            None => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected character {ch:?} at position {i}"));
            }
        }
    }
    Ok(out)
}

/// Reads a quoted string starting at `i` (Go's escapes); returns it and the offset past it.
fn quoted(text: &str, i: usize) -> Result<(String, usize), String> {
    let quote = text.as_bytes()[i] as char;
    let mut out = String::new();
    let mut chars = text[i + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, i + 1 + off + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '0')) => out.push('\0'),
                Some((_, 'u')) => {
                    let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("invalid escape \\u{hex} in string"))?;
                    out.push(ch);
                }
                // Regular expressions keep their escapes (`"\\d+"` or `"\d+"` both mean \d).
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(format!("unterminated string at position {i}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(t: &str) -> Vec<Tok> {
        lex(t).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens_of_a_query() {
        assert_eq!(
            kinds(r#"{app="a\"b"} |= `x\d` != "y" | latency >= 1.5s [5m]"#),
            vec![
                Tok::Op("{"),
                Tok::Ident("app".into()),
                Tok::Op("="),
                Tok::Str("a\"b".into()),
                Tok::Op("}"),
                Tok::Op("|="),
                Tok::Str("x\\d".into()),
                Tok::Op("!="),
                Tok::Str("y".into()),
                Tok::Op("|"),
                Tok::Ident("latency".into()),
                Tok::Op(">="),
                Tok::Num("1.5s".into()),
                Tok::Op("["),
                Tok::Num("5m".into()),
                Tok::Op("]"),
            ]
        );
        assert_eq!(kinds("1e-3"), vec![Tok::Num("1e-3".into())]);
        assert_eq!(
            kinds("5m-1"),
            vec![Tok::Num("5m".into()), Tok::Op("-"), Tok::Num("1".into())]
        );
        assert!(lex("{a=\"b}").is_err());
        assert!(lex("{a=\"b\"} @").is_err());
    }
}
