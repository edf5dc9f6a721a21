//! `Authorization` headers as any client may send them: Bearer, Basic (base64 of
//! `tenant:token`), garbage. Parsing never panics, and what parses is checked against a
//! token table without panicking; a malformed header is always a 401, never a 403.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_model::auth::{Authenticator, Role, TokenHash, parse_authorization};
use triad_model::config::{AuthConfig, TokenConfig};

fuzz_target!(|data: &[u8]| {
    let auth = Authenticator::new(&AuthConfig {
        tokens: vec![TokenConfig {
            name: "n".into(),
            hash: TokenHash::of("secret").to_string(),
            tenant: "t".into(),
            role: Role::Read,
            trusted: true,
        }],
        protect_metrics: false,
    });
    match parse_authorization(data) {
        Ok(creds) => {
            let org = std::str::from_utf8(data).ok();
            let _ = auth.authenticate(&creds, org, Some(Role::Read));
        }
        Err(e) => assert!(e.is_unauthenticated()),
    }
});
