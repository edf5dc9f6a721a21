//! The `auth` section: who may send and read, as which tenant.
//!
//! Three states, so that serving without authentication is always a decision:
//! - absent: no authentication, and every listener is held to loopback;
//! - `auth: none`: no authentication on any address (behind a gateway that does it);
//! - `auth: {tokens: [...]}`: bearer tokens (or Basic auth, password = token), each
//!   mapped to a tenant and a role.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;
use crate::auth::{Role, TokenHash, valid_tenant};

/// `auth:` as written in the file.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AuthSetting {
    /// No `auth` key: no authentication, and listeners on loopback only.
    #[default]
    Unset,
    /// `auth: none`: no authentication, on any address.
    None,
    /// Tokens.
    Tokens(AuthConfig),
}

impl AuthSetting {
    /// The token table, when tokens are configured.
    pub fn tokens(&self) -> Option<&AuthConfig> {
        match self {
            AuthSetting::Tokens(a) => Some(a),
            _ => None,
        }
    }
}

impl Serialize for AuthSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AuthSetting::Unset => s.serialize_none(),
            AuthSetting::None => s.serialize_str("none"),
            AuthSetting::Tokens(a) => a.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AuthSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Map(AuthConfig),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(AuthSetting::Unset),
            Some(Raw::Word(w)) if w == "none" => Ok(AuthSetting::None),
            Some(Raw::Word(w)) => Err(serde::de::Error::custom(format!(
                "auth: {w:?} is not a setting; write `auth: none` to serve without \
                 authentication, or a map with `tokens:`"
            ))),
            Some(Raw::Map(a)) => Ok(AuthSetting::Tokens(a)),
        }
    }
}

/// Authentication. Absent: no tokens, and every listener is held to loopback; `auth:
/// none`: no tokens, on any address (behind a gateway that authenticates); a map with
/// `tokens`: bearer tokens (or Basic auth, user = tenant, password = token), each mapped
/// to a tenant and a role. Make one with `triad token new`. With object storage and a
/// PostgreSQL metastore, tokens may also be kept there (`triad token add`), where every
/// process reads them every few seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The accepted tokens (at least one, unless they are kept in a PostgreSQL metastore
    /// with `triad token add`).
    pub tokens: Vec<TokenConfig>,
    /// Whether `/metrics` needs a token (any role). Off: Prometheus scrapes it as it
    /// scrapes any exporter. `/healthz` and `/readyz` are always open.
    pub protect_metrics: bool,
}

/// One accepted token: its hash, never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs and metrics (the token itself is never logged), e.g. `agent-prod`.
    pub name: String,
    /// `sha256:` and the token's SHA-256 in hex, as `triad token hash` prints it.
    pub hash: String,
    /// The tenant the token's data belongs to and the only one it reads: letters,
    /// digits, `_` and `-`.
    pub tenant: String,
    /// `write` (send data), `read` (query, UI) or `admin` (both, plus alert rules and
    /// silences).
    pub role: Role,
    /// A gateway's or a Triad server's token: an `X-Scope-OrgID` header (or a Basic
    /// auth user name) it sends chooses the tenant, as in Loki and Mimir.
    #[serde(default)]
    pub trusted: bool,
}

impl AuthSetting {
    /// Checks the tokens; with `in_metastore` (a PostgreSQL metastore holds more, see
    /// `triad token add`) the list may be empty.
    pub(crate) fn validate(&self, in_metastore: bool) -> Result<(), ConfigError> {
        let Some(a) = self.tokens() else {
            return Ok(());
        };
        if a.tokens.is_empty() && !in_metastore {
            return Err(ConfigError {
                key: "auth.tokens".into(),
                problem: "is empty: no request could be authenticated".into(),
                fix: "add a token made with `triad token new --tenant T --role admin`, \
                      keep tokens in a PostgreSQL metastore (`triad token add`), or write \
                      `auth: none`"
                    .into(),
            });
        }
        let mut names = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for (i, t) in a.tokens.iter().enumerate() {
            let key = |f: &str| format!("auth.tokens[{i}].{f}");
            if t.name.is_empty() || !names.insert(t.name.as_str()) {
                return Err(ConfigError {
                    key: key("name"),
                    problem: format!("{:?} is empty or used twice", t.name),
                    fix: "give every token its own name, e.g. agent-prod".into(),
                });
            }
            let hash = TokenHash::parse(&t.hash).map_err(|problem| ConfigError {
                key: key("hash"),
                problem,
                fix: "paste what `triad token hash` prints, e.g. sha256:9f86d0…".into(),
            })?;
            if !hashes.insert(hash) {
                return Err(ConfigError {
                    key: key("hash"),
                    problem: "is the hash of another token too".into(),
                    fix: "make a token per client with `triad token new`".into(),
                });
            }
            if !valid_tenant(&t.tenant) {
                return Err(ConfigError {
                    key: key("tenant"),
                    problem: format!("{:?} is not a tenant name", t.tenant),
                    fix: "use 1-128 letters, digits, `_` or `-`, e.g. team-a".into(),
                });
            }
        }
        Ok(())
    }
}
