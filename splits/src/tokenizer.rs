//! Tokenizers for log text.
//!
//! `log`: splits on every character that is neither alphanumeric nor `_` and lowercases.
//! A word over 255 bytes is indexed as the one term [`LONG_WORD`] (so a search for part
//! of such a word, as LogQL's `|=` makes, can still find it). Identifiers such as `user_id` and
//! `ERR_CONN_REFUSED` stay whole; paths, IPs and dotted names split into parts, and
//! the query parser turns `"/api/v1/users"` or `10.0.0.1` into a phrase query over the
//! same parts (positions are indexed), so they are found exactly.
//!
//! `id`: the whole value, lowercased: for trace IDs, span IDs and levels, so that
//! `trace_id:4BF9…` and `level:ERROR` match what was stored in lowercase.

use tantivy::Index;
use tantivy::schema::{IndexRecordOption, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    LowerCaser, RawTokenizer, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// Name of the log text tokenizer.
pub const LOG_TOKENIZER: &str = "log";
/// Name of the lowercased whole-value tokenizer.
pub const ID_TOKENIZER: &str = "id";
/// Longest token indexed, in bytes.
pub const MAX_TOKEN_BYTES: usize = triad_model::store::LOG_WORD_MAX_BYTES;
/// The term a word longer than [`MAX_TOKEN_BYTES`] is indexed as.
pub const LONG_WORD: &str = triad_model::store::LOG_LONG_WORD;

/// Splits on characters that are neither alphanumeric nor `_`.
#[derive(Clone, Default)]
pub struct LogTokenizer {
    token: Token,
}

/// Token stream of [`LogTokenizer`].
pub struct LogTokenStream<'a> {
    text: &'a str,
    chars: std::str::CharIndices<'a>,
    token: &'a mut Token,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Tokenizer for LogTokenizer {
    type TokenStream<'a> = LogTokenStream<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> LogTokenStream<'a> {
        self.token.reset();
        LogTokenStream {
            text,
            chars: text.char_indices(),
            token: &mut self.token,
        }
    }
}

impl TokenStream for LogTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.token.text.clear();
        self.token.position = self.token.position.wrapping_add(1);
        while let Some((from, c)) = self.chars.next() {
            if is_word(c) {
                let to = self
                    .chars
                    .find(|(_, c)| !is_word(*c))
                    .map(|(o, _)| o)
                    .unwrap_or(self.text.len());
                self.token.offset_from = from;
                self.token.offset_to = to;
                if to - from > MAX_TOKEN_BYTES {
                    self.token.text.push_str(LONG_WORD);
                } else {
                    self.token.text.push_str(&self.text[from..to]);
                }
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Indexing of a term field: whole values with `tokenizer`, no frequencies, positions
/// or field norms. Triad orders hits by time and never scores them, so norms would
/// only cost a byte per field per document.
pub fn term_options(tokenizer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(term_indexing(tokenizer))
}

/// The indexing part of [`term_options`], for JSON fields.
pub fn term_indexing(tokenizer: &str) -> TextFieldIndexing {
    TextFieldIndexing::default()
        .set_tokenizer(tokenizer)
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false)
}

/// Registers [`LOG_TOKENIZER`] and [`ID_TOKENIZER`] on an index.
pub fn register(index: &Index) {
    let log = TextAnalyzer::builder(LogTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .build();
    let id = TextAnalyzer::builder(RawTokenizer::default())
        .filter(LowerCaser)
        .build();
    index.tokenizers().register(LOG_TOKENIZER, log);
    index.tokenizers().register(ID_TOKENIZER, id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut a = TextAnalyzer::builder(LogTokenizer::default())
            .filter(LowerCaser)
            .build();
        let mut s = a.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            out.push(s.token().text.clone());
        }
        out
    }

    #[test]
    fn keeps_identifiers_splits_paths_and_ips() {
        assert_eq!(
            tokens("GET /api/v1/users ERR_CONN_REFUSED from 10.0.0.1:8080 user_id=42 Ünïcode"),
            vec![
                "get",
                "api",
                "v1",
                "users",
                "err_conn_refused",
                "from",
                "10",
                "0",
                "0",
                "1",
                "8080",
                "user_id",
                "42",
                "ünïcode"
            ]
        );
        assert!(tokens("  ,.;  ").is_empty());
        let long = "x".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(tokens(&format!("a {long} b")), vec!["a", LONG_WORD, "b"]);
        assert_eq!(
            tokens(&"y".repeat(MAX_TOKEN_BYTES))[0].len(),
            MAX_TOKEN_BYTES
        );
    }
}
