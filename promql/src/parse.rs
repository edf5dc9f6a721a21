//! Parsing a query: `promql-parser`, with Prometheus 2.x's function names registered,
//! and number literals checked as Prometheus' parser checks them.

use std::sync::LazyLock;

use promql_parser::parser::{self, Expr};

use super::eval::EvalError;

/// Parses a query (see [`crate::Engine::parse`]).
pub(crate) fn parse(query: &str) -> Result<Expr, EvalError> {
    LazyLock::force(&PROMETHEUS_2_FUNCTIONS);
    let expr = parser::parse(query)
        .map_err(|e| EvalError::BadData(format!("parse error: {}", e.trim())))?;
    check_number_literals(query)?;
    Ok(expr)
}

/// Functions of Prometheus 2.x that `promql-parser` knows under other names, registered
/// once with the parser.
static PROMETHEUS_2_FUNCTIONS: LazyLock<()> = LazyLock::new(|| {
    use promql_parser::parser::value::ValueType;
    let holt_winters = promql_parser::parser::Function::new(
        "holt_winters",
        vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
        0,
        ValueType::Vector,
        false,
    );
    // An error means a future parser knows the name itself: then it parses anyway.
    let _ = promql_parser::parser::register_extra_functions(vec![holt_winters]);
});

/// Refuses a number literal too large for a float (`1e400`, 400 digits), as
/// Prometheus' parser does; `promql-parser` reads it as +Inf. Literals are found by a
/// scan that skips strings and comments, so a label value is never taken for one.
fn check_number_literals(query: &str) -> Result<(), EvalError> {
    let b = query.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' && q != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c if (c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
                && (i == 0 || !ident(b[i - 1])) =>
            {
                let start = i;
                while i < b.len() {
                    let signed_exponent = matches!(b[i], b'+' | b'-')
                        && matches!(b[i - 1], b'e' | b'E')
                        && b[start].is_ascii_digit();
                    if ident(b[i]) || b[i] == b'.' || signed_exponent {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let text = &query[start..i];
                if text.parse::<f64>().is_ok_and(f64::is_infinite) {
                    return Err(EvalError::BadData(format!(
                        "parse error: error parsing number: {text:?}: value out of range"
                    )));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}
