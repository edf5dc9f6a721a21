//! How this process calls other Triad servers: the agent its collectors, a query server
//! the collectors' internal and remote-read APIs and the alert engine's snapshot.
//!
//! The client identity — the token sent as `Authorization: Bearer`, the CA that servers'
//! certificates chain to, the client certificate for mutual TLS — belongs to the
//! process, like its host name: set once at start from `client_token_file` or
//! `TRIAD_TOKEN` and the `tls` section ([`configure`]), and applied by [`http_client`]
//! to every HTTP client and by [`bearer`] and [`grpc_tls`] to the agent's gRPC
//! channels. The tenant a call reads for travels per
//! request in [`crate::auth::ORG_ID_HEADER`] (honoured for trusted tokens).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::HeaderValue;
use triad_model::config::TlsConfig;

/// Who this process is to other Triad servers.
struct Identity {
    token: Option<HeaderValue>,
    /// For `https://` calls over reqwest: `None` keeps reqwest's own trust store.
    rustls: Option<Arc<rustls::ClientConfig>>,
    /// For the agent's gRPC channels to `https://` collectors.
    grpc: Option<tonic::transport::ClientTlsConfig>,
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();

/// Sets the token and TLS client settings this process uses; the first call wins (call
/// it once, at start). An error names the key and the file.
pub fn configure(token: Option<&str>, tls: &TlsConfig) -> Result<(), String> {
    let token = token
        .map(|t| {
            let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| "the client token has characters a header cannot carry".to_string())?;
            v.set_sensitive(true);
            Ok::<_, String>(v)
        })
        .transpose()?;
    let identity = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(c), Some(k)) => Some((
            crate::tls::certificates(c, "tls.client_cert_file")?,
            crate::tls::private_key(k, "tls.client_key_file")?,
        )),
        _ => None,
    };
    let (rustls, grpc) = match &tls.ca_file {
        None if identity.is_some() => {
            return Err(
                "tls.client_cert_file is set without tls.ca_file: name the CA the servers' \
                 certificates chain to"
                    .into(),
            );
        }
        None => (None, None),
        Some(ca) => {
            let roots = crate::tls::roots(ca, "tls.ca_file")?;
            let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
            let cfg = match &identity {
                Some((certs, key)) => builder
                    .with_client_auth_cert(certs.clone(), key.clone_key())
                    .map_err(|e| format!("tls.client_cert_file / tls.client_key_file: {e}"))?,
                None => builder.with_no_client_auth(),
            };
            let pem =
                std::fs::read(ca).map_err(|e| format!("tls.ca_file {}: {e}", ca.display()))?;
            let mut grpc = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem));
            if let (Some(c), Some(k)) = (&tls.client_cert_file, &tls.client_key_file) {
                let read = |p: &std::path::Path, what: &str| {
                    std::fs::read(p).map_err(|e| format!("{what} {}: {e}", p.display()))
                };
                grpc = grpc.identity(tonic::transport::Identity::from_pem(
                    read(c, "tls.client_cert_file")?,
                    read(k, "tls.client_key_file")?,
                ));
            }
            (Some(Arc::new(cfg)), Some(grpc))
        }
    };
    let _ = IDENTITY.set(Identity {
        token,
        rustls,
        grpc,
    });
    Ok(())
}

/// TLS settings for a gRPC channel to an `https://` server, if `tls.ca_file` is set.
pub fn grpc_tls() -> Option<tonic::transport::ClientTlsConfig> {
    IDENTITY.get().and_then(|i| i.grpc.clone())
}

/// The `Authorization` value to send, if a token is configured.
pub fn bearer() -> Option<HeaderValue> {
    IDENTITY.get().and_then(|i| i.token.clone())
}

/// An HTTP client for calls to Triad servers, with the process's token and `timeout`.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(v) = bearer() {
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers);
    if let Some(cfg) = IDENTITY.get().and_then(|i| i.rustls.clone()) {
        b = b.tls_backend_preconfigured((*cfg).clone());
    }
    b.build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}
