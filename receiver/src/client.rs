//! How this process calls other Triad servers: the agent its collectors, a query server
//! the collectors' internal and remote-read APIs and the alert engine's snapshot.
//!
//! The client identity — the token sent as `Authorization: Bearer`, the CA that servers'
//! certificates chain to, the client certificate for mutual TLS — belongs to the
//! process, like its host name: set once at start from `client_token_file` or
//! `TRIAD_TOKEN` and the `tls` section ([`configure`]), and applied by [`http_client`]
//! to every HTTP client and by [`bearer`] and [`grpc_channel`] to the agent's gRPC
//! channels. The tenant a call reads for travels per
//! request in [`crate::auth::ORG_ID_HEADER`] (honoured for trusted tokens).
//!
//! The client certificate and the CA are re-read when their files change
//! ([`spawn_reloader`]), as the servers' certificates are: every TLS handshake asks for
//! the current ones, so new connections use the new files and open ones keep theirs.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::HeaderValue;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use triad_model::config::TlsConfig;

use crate::tls::{Reload, Watched};

/// Who this process is to other Triad servers.
struct Identity {
    token: Option<HeaderValue>,
    /// For `https://` calls over reqwest: `None` keeps reqwest's own trust store.
    rustls: Option<Arc<rustls::ClientConfig>>,
    /// For the agent's gRPC channels to `https://` collectors (HTTP/2 by ALPN).
    grpc: Option<Arc<rustls::ClientConfig>>,
    /// What is re-read when its files change: the CA, the client certificate.
    watched: Vec<Arc<dyn Reload>>,
}

/// The client certificate and key (`tls.client_cert_file`, `tls.client_key_file`).
fn client_cert(files: &[PathBuf]) -> Result<CertifiedKey, String> {
    let [cert_file, key_file] = files else {
        return Err("a client certificate needs its certificate and key files".into());
    };
    let certs = crate::tls::certificates(cert_file, "tls.client_cert_file")?;
    let key = crate::tls::private_key(key_file, "tls.client_key_file")?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| format!("tls.client_cert_file / tls.client_key_file: {e}"))
}

/// The verifier of servers' certificates against the CA of `tls.ca_file`.
fn server_verifier(files: &[PathBuf]) -> Result<Arc<WebPkiServerVerifier>, String> {
    let [ca] = files else {
        return Err("the CA is one file".into());
    };
    WebPkiServerVerifier::builder(Arc::new(crate::tls::roots(ca, "tls.ca_file")?))
        .build()
        .map_err(|e| format!("tls.ca_file {}: {e}", ca.display()))
}

impl ResolvesClientCert for Watched<CertifiedKey> {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Servers' certificates are checked by WebPKI against the current CA.
impl ServerCertVerifier for Watched<Arc<WebPkiServerVerifier>> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.get().supported_verify_schemes()
    }
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
    let cert = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(c), Some(k)) => Some(Arc::new(Watched::load(
            vec![c.clone(), k.clone()],
            client_cert,
        )?)),
        _ => None,
    };
    let mut watched: Vec<Arc<dyn Reload>> = Vec::new();
    let (rustls, grpc) = match &tls.ca_file {
        None if cert.is_some() => {
            return Err(
                "tls.client_cert_file is set without tls.ca_file: name the CA the servers' \
                 certificates chain to"
                    .into(),
            );
        }
        None => (None, None),
        Some(ca) => {
            let verifier = Arc::new(Watched::load(vec![ca.clone()], server_verifier)?);
            watched.push(verifier.clone());
            // "dangerous" only in name: the verifier is rustls' WebPKI one, over the
            // CA as last read.
            let builder = rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(verifier);
            let cfg = match &cert {
                Some(c) => {
                    watched.push(c.clone());
                    builder.with_client_cert_resolver(c.clone())
                }
                None => builder.with_no_client_auth(),
            };
            let mut grpc = cfg.clone();
            grpc.alpn_protocols = vec![b"h2".to_vec()];
            (Some(Arc::new(cfg)), Some(Arc::new(grpc)))
        }
    };
    let _ = IDENTITY.set(Identity {
        token,
        rustls,
        grpc,
        watched,
    });
    Ok(())
}

/// Looks at the CA's and the client certificate's files every `every` (when they are
/// configured) and re-reads them when they change, until `cancel` fires.
pub fn spawn_reloader(
    every: Duration,
    cancel: &tokio_util::sync::CancellationToken,
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
) {
    let watched = IDENTITY
        .get()
        .map(|i| i.watched.clone())
        .unwrap_or_default();
    if watched.is_empty() {
        return;
    }
    let cancel = cancel.child_token();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            for w in &watched {
                let file = w.name();
                let w = w.clone();
                match tokio::task::spawn_blocking(move || w.reload_if_changed()).await {
                    Ok(Ok(true)) => tracing::info!(file, "TLS client file reloaded"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "TLS client file not reloaded; the previous one stays in use"),
                    Err(e) => tracing::error!(error = %e, "TLS client reload task failed"),
                }
            }
        }
    });
}

/// A lazily connecting gRPC channel to `url` (`http://` or `https://host:port`), with
/// `configure` applied to its endpoint (timeouts). An `https://` channel makes its TLS
/// connections itself, with `tls.ca_file` and the current client certificate; an error
/// says what is missing.
pub fn grpc_channel(
    url: &str,
    configure: impl FnOnce(tonic::transport::Endpoint) -> tonic::transport::Endpoint,
) -> Result<tonic::transport::Channel, String> {
    use tonic::transport::Endpoint;
    let Some(rest) = url.strip_prefix("https://") else {
        let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| e.to_string())?;
        return Ok(configure(endpoint).connect_lazy());
    };
    let tls = IDENTITY.get().and_then(|i| i.grpc.clone()).ok_or_else(|| {
        "an https:// collector needs tls.ca_file (the CA its certificate chains to)".to_string()
    })?;
    // tonic's own TLS takes no rustls configuration (nor a certificate that changes):
    // the channel speaks to an http:// URI over connections this connector secures.
    let endpoint = Endpoint::from_shared(format!("http://{rest}")).map_err(|e| e.to_string())?;
    let connector = tower::service_fn(move |uri: axum::http::Uri| {
        let tls = tls.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other(format!("{uri}: no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    Ok(configure(endpoint).connect_with_connector_lazy(connector))
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
