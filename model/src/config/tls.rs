//! The `tls` section: TLS (rustls) on this process's servers, and for its calls to other
//! Triad servers over `https://`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, range};

/// TLS with rustls. With `cert_file` and `key_file` set, every server of the process
/// (OTLP gRPC and HTTP, Zipkin, the query API and UI, the agent's receivers) speaks TLS
/// only; the files are re-read when they change, without a restart (connections open
/// keep their certificate, new ones get the new one). The client keys apply to this
/// process's calls to `https://` Triad servers (agent → collector, query server →
/// collectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain the servers present (leaf first).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates: set, clients must present a certificate signed by one of
    /// them (mutual TLS); tokens still decide the tenant and role.
    pub client_ca_file: Option<PathBuf>,
    /// How often the certificate, key and CA files are checked for changes, in seconds.
    pub reload_interval_secs: u64,
    /// PEM CA certificates the servers this process calls over `https://` must chain to
    /// (re-read when the file changes). Empty: the operating system's trust store.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain this process presents when a server asks for one (mutual
    /// TLS); re-read when it changes, as the servers' certificates are.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            reload_interval_secs: 10,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

impl TlsConfig {
    /// Whether the servers speak TLS.
    pub fn serves_tls(&self) -> bool {
        self.cert_file.is_some()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let pair = |a: &Option<PathBuf>, b: &Option<PathBuf>, ka: &str, kb: &str| {
            if a.is_some() != b.is_some() {
                let (set, missing) = if a.is_some() { (ka, kb) } else { (kb, ka) };
                return Err(ConfigError {
                    key: format!("tls.{missing}"),
                    problem: format!("is missing while tls.{set} is set"),
                    fix: format!("set both tls.{ka} and tls.{kb}, or neither"),
                });
            }
            Ok(())
        };
        pair(&self.cert_file, &self.key_file, "cert_file", "key_file")?;
        pair(
            &self.client_cert_file,
            &self.client_key_file,
            "client_cert_file",
            "client_key_file",
        )?;
        if self.client_ca_file.is_some() && self.cert_file.is_none() {
            return Err(ConfigError {
                key: "tls.client_ca_file".into(),
                problem: "asks clients for certificates, but the servers do not speak TLS".into(),
                fix: "set tls.cert_file and tls.key_file too".into(),
            });
        }
        range(
            "tls.reload_interval_secs",
            self.reload_interval_secs,
            1,
            3600,
            "e.g. 10",
        )
    }
}
