//! Preparation of user query text before tantivy's query parser sees it.
//!
//! Users write trace and span IDs in hex, but they are not stored as hex:
//! - `trace_id` is a bytes term (16 bytes instead of 32 hex characters in the term
//!   dictionary); tantivy's parser reads bytes literals as base64, so the hex is
//!   re-encoded;
//! - `span_id` is a u64 fast field only (no term dictionary at all: span lookups are
//!   nearly always inside one trace), so `span_id:X` becomes the range `[X TO X]`, which
//!   tantivy answers from the fast field.
//!
//! The rewrite happens in the parsed query tree, not in the text, so quoting, grouping
//! and `IN [...]` sets keep working.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tantivy::query_grammar::{Occur, UserInputAst, UserInputBound, UserInputLeaf};
use triad_model::{SpanId, TraceId};

fn trace_id_base64(hex: &str) -> Result<String, String> {
    TraceId::from_hex(hex)
        .map(|t| BASE64.encode(t.0))
        .map_err(|e| format!("trace_id:{hex} is not a valid ID: {e}"))
}

fn span_id_range(hex: &str) -> Result<UserInputAst, String> {
    let v = SpanId::from_hex(hex)
        .map(SpanId::to_u64)
        .map_err(|e| format!("span_id:{hex} is not a valid ID: {e}"))?
        .to_string();
    Ok(UserInputAst::Leaf(Box::new(UserInputLeaf::Range {
        field: Some("span_id".into()),
        lower: UserInputBound::Inclusive(v.clone()),
        upper: UserInputBound::Inclusive(v),
    })))
}

/// Parses `text` and rewrites ID literals; the result goes to
/// `QueryParser::build_query_from_user_input_ast`.
pub fn parse(text: &str) -> Result<UserInputAst, String> {
    let ast = tantivy::query_grammar::parse_query(text)
        .map_err(|_| format!("syntax error in query {text:?}"))?;
    rewrite(ast)
}

fn rewrite(ast: UserInputAst) -> Result<UserInputAst, String> {
    Ok(match ast {
        UserInputAst::Clause(clauses) => {
            let mut out = Vec::with_capacity(clauses.len());
            for (occur, sub) in clauses {
                match (occur, rewrite(sub)?) {
                    // `a AND NOT b` parses as `+a +(-b)`: a required group that can only
                    // exclude, which matches nothing. Lucene reads it as `+a -b`; so do we.
                    (None | Some(Occur::Must), UserInputAst::Clause(inner))
                        if !inner.is_empty()
                            && inner.iter().all(|(o, _)| *o == Some(Occur::MustNot)) =>
                    {
                        out.extend(inner);
                    }
                    (occur, sub) => out.push((occur, sub)),
                }
            }
            UserInputAst::Clause(out)
        }
        UserInputAst::Boost(inner, boost) => UserInputAst::Boost(Box::new(rewrite(*inner)?), boost),
        UserInputAst::Leaf(leaf) => rewrite_leaf(*leaf)?,
    })
}

fn rewrite_leaf(leaf: UserInputLeaf) -> Result<UserInputAst, String> {
    let leaf = match leaf {
        UserInputLeaf::Literal(lit) if lit.field_name.as_deref() == Some("span_id") => {
            return span_id_range(lit.phrase.trim());
        }
        UserInputLeaf::Literal(mut lit) if lit.field_name.as_deref() == Some("trace_id") => {
            lit.phrase = trace_id_base64(lit.phrase.trim())?;
            UserInputLeaf::Literal(lit)
        }
        UserInputLeaf::Set {
            field: Some(field),
            elements,
        } if field == "trace_id" => {
            let elements = elements
                .iter()
                .map(|e| trace_id_base64(e.trim()))
                .collect::<Result<_, _>>()?;
            UserInputLeaf::Set {
                field: Some(field),
                elements,
            }
        }
        UserInputLeaf::Set {
            field: Some(field),
            elements,
        } if field == "span_id" => {
            let any = elements
                .iter()
                .map(|e| span_id_range(e.trim()).map(|r| (Some(Occur::Should), r)))
                .collect::<Result<_, _>>()?;
            return Ok(UserInputAst::Clause(any));
        }
        other => other,
    };
    Ok(UserInputAst::Leaf(Box::new(leaf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_ids_anywhere_in_the_tree() {
        let ast = parse(
            "(trace_id:4BF92F3577B34DA6A3CE929D0E0E4736 OR span_id:\"00f067aa0ba902b7\") AND error",
        )
        .unwrap();
        let text = format!("{ast:?}");
        assert!(
            text.contains(
                &BASE64.encode(
                    TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736")
                        .unwrap()
                        .0
                )
            ),
            "{text}"
        );
        let span = SpanId::from_hex("00f067aa0ba902b7")
            .unwrap()
            .to_u64()
            .to_string();
        assert!(text.contains(&span), "{text}");
        assert!(text.contains("error"));
    }

    #[test]
    fn and_not_excludes_like_lucene() {
        assert_eq!(format!("{:?}", parse("a AND NOT b").unwrap()), "(+a -b)");
        assert_eq!(format!("{:?}", parse("NOT b AND a").unwrap()), "(-b +a)");
        assert_eq!(format!("{:?}", parse("a OR NOT b").unwrap()), "(?a ?(-b))");
    }

    #[test]
    fn invalid_ids_and_syntax_are_explained() {
        assert!(
            parse("trace_id:xyz")
                .unwrap_err()
                .contains("not a valid ID")
        );
        assert!(parse("trace_id:(").is_err());
        assert!(parse("body words only").is_ok());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    proptest! {
        /// Any text, including hostile ID literals, parses or fails with a message.
        #[test]
        fn arbitrary_queries_never_panic(
            q in "\\PC{0,80}",
            field in "(trace_id|span_id|body|service|attributes\\.x)",
            value in "[ -~]{0,40}",
        ) {
            let _ = super::parse(&q);
            let _ = super::parse(&format!("{field}:{value}"));
            let _ = super::parse(&format!("a AND NOT {field}:{value}"));
        }
    }
}
