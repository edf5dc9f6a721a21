//! Authentication: tokens, roles and tenants, without any I/O or HTTP framework.
//!
//! A token is a random secret (`triad token new`); the configuration keeps only its
//! SHA-256 (`sha256:<hex>`). A request's credentials — `Authorization: Bearer <token>`,
//! `Authorization: Basic <base64(user:token)>` as Grafana and Prometheus clients send
//! them, or the UI's session cookie — are hashed and compared with every configured hash
//! in constant time. Tokens are high-entropy, so a plain SHA-256 is the right hash (as for
//! GitHub's or Kubernetes' tokens): a slow password hash would only cost CPU per request.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, AuthSetting};

/// What a token may do. `admin` may do everything the others may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send data: receivers.
    Write,
    /// Query: APIs and the UI.
    Read,
    /// Read, write, and change alert rules, silences and anything that holds configuration.
    Admin,
}

impl Role {
    /// Whether a token with this role may use an endpoint that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }

    /// The role's name as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Write => "write",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// The role named `text` (`write`, `read`, `admin`).
    pub fn parse(text: &str) -> Result<Role, String> {
        match text {
            "write" => Ok(Role::Write),
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(format!("{other:?} is not a role: use write, read or admin")),
        }
    }
}

/// Who is asking, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant whose data the request writes or reads.
    pub tenant: String,
    /// What the token may do.
    pub role: Role,
    /// The configured token's name (`"anonymous"` without authentication).
    pub name: Arc<str>,
}

impl Principal {
    /// The principal of every request when authentication is off: the default tenant,
    /// every role.
    pub fn anonymous() -> Principal {
        Principal {
            tenant: crate::DEFAULT_TENANT.to_string(),
            role: Role::Admin,
            name: Arc::from("anonymous"),
        }
    }
}

/// Whether `t` can name a tenant: 1–128 ASCII letters, digits, `_` or `-` (it becomes a
/// directory name and an index term).
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// A token's SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a token.
    pub fn of(token: &str) -> TokenHash {
        let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut h = [0u8; 32];
        h.copy_from_slice(d.as_ref());
        TokenHash(h)
    }

    /// Reads `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<TokenHash, String> {
        let hex_part = text
            .strip_prefix("sha256:")
            .ok_or_else(|| "does not start with `sha256:`".to_string())?;
        let bytes = hex::decode(hex_part).map_err(|e| format!("is not hex: {e}"))?;
        let h: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "is not 32 bytes (64 hex digits)".to_string())?;
        Ok(TokenHash(h))
    }
}

impl std::fmt::Display for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// A new random token: `triad_` and 32 random bytes in URL-safe base64 (256 bits).
pub fn new_token() -> Result<String, AuthError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Random)?;
    Ok(format!(
        "triad_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials (401).
    #[error("authentication required: send `Authorization: Bearer <token>`")]
    Missing,
    /// Credentials that are not understood (401).
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    /// A token that is not configured (401).
    #[error("unknown token")]
    Unknown,
    /// A token whose role does not allow the endpoint (403).
    #[error("the token's role ({have}) may not do this: it needs {need}")]
    Forbidden {
        /// The token's role.
        have: &'static str,
        /// The endpoint's.
        need: &'static str,
    },
    /// A tenant chosen by a header or user name that the token may not choose (403).
    #[error("this token may not act for tenant {0:?}")]
    WrongTenant(String),
    /// The operating system's random source failed.
    #[error("no random numbers from the operating system")]
    Random,
}

impl AuthError {
    /// Whether the answer is 401 (who are you?) rather than 403 (not you).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            AuthError::Missing | AuthError::Malformed(_) | AuthError::Unknown
        )
    }
}

/// Credentials as a request carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The secret.
    pub token: std::borrow::Cow<'a, str>,
    /// Basic auth's user name, if any: a tenant.
    pub user: Option<String>,
}

/// Reads an `Authorization` header's value: `Bearer <token>` or `Basic <base64>` (user
/// = tenant, password = token). Scheme names are case-insensitive (RFC 9110).
pub fn parse_authorization(value: &[u8]) -> Result<Credentials<'_>, AuthError> {
    let value = std::str::from_utf8(value).map_err(|_| AuthError::Malformed("not UTF-8"))?;
    let (scheme, rest) = value.trim().split_once(' ').ok_or(AuthError::Malformed(
        "expected `Bearer <token>` or `Basic <base64>`",
    ))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(AuthError::Malformed("empty bearer token"));
        }
        return Ok(Credentials {
            token: std::borrow::Cow::Borrowed(rest),
            user: None,
        });
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthError::Malformed("Basic credentials are not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| AuthError::Malformed("not UTF-8"))?;
        let (user, password) = text
            .split_once(':')
            .ok_or(AuthError::Malformed("Basic credentials without `:`"))?;
        if password.is_empty() {
            return Err(AuthError::Malformed("empty password: it is the token"));
        }
        return Ok(Credentials {
            token: std::borrow::Cow::Owned(password.to_string()),
            user: (!user.is_empty()).then(|| user.to_string()),
        });
    }
    Err(AuthError::Malformed(
        "unknown scheme: expected Bearer or Basic",
    ))
}

struct Entry {
    hash: TokenHash,
    tenant: String,
    role: Role,
    trusted: bool,
    name: Arc<str>,
}

/// Checks credentials against the configured tokens.
pub struct Authenticator {
    entries: Vec<Entry>,
    protect_metrics: bool,
}

impl Authenticator {
    /// The authenticator of an `auth` setting; `None` when authentication is off.
    pub fn from_setting(s: &AuthSetting) -> Option<Arc<Authenticator>> {
        s.tokens().map(|a| Arc::new(Authenticator::new(a)))
    }

    /// From validated configuration (a hash that does not parse is skipped: validation
    /// refused it already).
    pub fn new(cfg: &AuthConfig) -> Authenticator {
        Authenticator::with_tokens(cfg, &[])
    }

    /// From the configuration's tokens and `more` (those of the metastore); an entry
    /// whose hash does not parse is skipped.
    pub fn with_tokens(cfg: &AuthConfig, more: &[crate::config::TokenConfig]) -> Authenticator {
        let entries = cfg
            .tokens
            .iter()
            .chain(more)
            .filter_map(|t| {
                Some(Entry {
                    hash: TokenHash::parse(&t.hash).ok()?,
                    tenant: t.tenant.clone(),
                    role: t.role,
                    trusted: t.trusted,
                    name: Arc::from(t.name.as_str()),
                })
            })
            .collect();
        Authenticator {
            entries,
            protect_metrics: cfg.protect_metrics,
        }
    }

    /// How many tokens it accepts.
    pub fn token_count(&self) -> usize {
        self.entries.len()
    }

    /// Whether `/metrics` needs a token.
    pub fn protect_metrics(&self) -> bool {
        self.protect_metrics
    }

    /// The principal of `creds` for an endpoint needing `needed` (`None`: any role).
    /// `org_id` is the `X-Scope-OrgID` header: honoured for trusted tokens, refused for
    /// others unless it names the token's own tenant.
    pub fn authenticate(
        &self,
        creds: &Credentials<'_>,
        org_id: Option<&str>,
        needed: Option<Role>,
    ) -> Result<Principal, AuthError> {
        let hash = TokenHash::of(&creds.token);
        // Every entry is compared, whatever matched, so the time does not tell which.
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if bool::from(e.hash.0.ct_eq(&hash.0)) {
                found = Some(e);
            }
        }
        let e = found.ok_or(AuthError::Unknown)?;
        if let Some(need) = needed
            && !e.role.allows(need)
        {
            return Err(AuthError::Forbidden {
                have: e.role.as_str(),
                need: need.as_str(),
            });
        }
        let mut tenant = e.tenant.clone();
        for chosen in [creds.user.as_deref(), org_id].into_iter().flatten() {
            if chosen == e.tenant {
                continue;
            }
            if !e.trusted {
                return Err(AuthError::WrongTenant(chosen.to_string()));
            }
            if !valid_tenant(chosen) {
                return Err(AuthError::Malformed("not a tenant name"));
            }
            tenant = chosen.to_string();
        }
        Ok(Principal {
            tenant,
            role: e.role,
            name: e.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn auth() -> Authenticator {
        let tok = |name: &str, secret: &str, tenant: &str, role, trusted| TokenConfig {
            name: name.into(),
            hash: TokenHash::of(secret).to_string(),
            tenant: tenant.into(),
            role,
            trusted,
        };
        Authenticator::new(&AuthConfig {
            tokens: vec![
                tok("w", "write-secret", "a", Role::Write, false),
                tok("r", "read-secret", "a", Role::Read, false),
                tok("adm", "admin-secret", "b", Role::Admin, false),
                tok("gw", "gateway-secret", "a", Role::Read, true),
            ],
            protect_metrics: false,
        })
    }

    fn bearer(t: &str) -> Credentials<'_> {
        Credentials {
            token: t.into(),
            user: None,
        }
    }

    #[test]
    fn roles_and_tenants() {
        let a = auth();
        let p = a
            .authenticate(&bearer("write-secret"), None, Some(Role::Write))
            .unwrap();
        assert_eq!((p.tenant.as_str(), p.role), ("a", Role::Write));
        assert!(matches!(
            a.authenticate(&bearer("write-secret"), None, Some(Role::Read)),
            Err(AuthError::Forbidden { .. })
        ));
        assert_eq!(
            a.authenticate(&bearer("nope"), None, None),
            Err(AuthError::Unknown)
        );
        let p = a
            .authenticate(&bearer("admin-secret"), None, Some(Role::Read))
            .unwrap();
        assert_eq!(p.tenant, "b");
        // X-Scope-OrgID: only a trusted token chooses; naming one's own tenant is fine.
        assert!(matches!(
            a.authenticate(&bearer("read-secret"), Some("b"), None),
            Err(AuthError::WrongTenant(_))
        ));
        assert_eq!(
            a.authenticate(&bearer("read-secret"), Some("a"), None)
                .unwrap()
                .tenant,
            "a"
        );
        assert_eq!(
            a.authenticate(&bearer("gateway-secret"), Some("c"), None)
                .unwrap()
                .tenant,
            "c"
        );
        assert!(
            a.authenticate(&bearer("gateway-secret"), Some("../x"), None)
                .is_err()
        );
    }

    #[test]
    fn authorization_headers() {
        let c = parse_authorization(b"Bearer abc").unwrap();
        assert_eq!((c.token.as_ref(), c.user), ("abc", None));
        let c = parse_authorization(b"bearer   abc ").unwrap();
        assert_eq!(c.token, "abc");
        // Basic a:read-secret, as Grafana sends it.
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("a:read-secret")
        );
        let c = parse_authorization(v.as_bytes()).unwrap();
        assert_eq!(
            (c.token.as_ref(), c.user.as_deref()),
            ("read-secret", Some("a"))
        );
        assert_eq!(auth().authenticate(&c, None, None).unwrap().tenant, "a");
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("b:read-secret")
        );
        let c = parse_authorization(v.as_bytes()).unwrap();
        assert!(matches!(
            auth().authenticate(&c, None, None),
            Err(AuthError::WrongTenant(_))
        ));
        for bad in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Token abc",
            b"Basic !!!",
            b"Basic YWJj",
            b"Basic YTo=",
            b"\xff\xfe",
        ] {
            let e = parse_authorization(bad).unwrap_err();
            assert!(e.is_unauthenticated(), "{bad:?}: {e}");
        }
    }

    #[test]
    fn hashes_round_trip() {
        let t = new_token().unwrap();
        assert!(t.starts_with("triad_") && t.len() > 40, "{t}");
        let h = TokenHash::of(&t);
        assert_eq!(TokenHash::parse(&h.to_string()).unwrap(), h);
        assert_eq!(
            TokenHash::of("test").to_string(),
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert!(TokenHash::parse("md5:00").is_err());
        assert!(TokenHash::parse("sha256:00").is_err());
    }
}
