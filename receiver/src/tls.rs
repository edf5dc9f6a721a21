//! TLS on every server (rustls): a [`Listener`] is plain TCP or TCP with a
//! [`ServerTls`], whose certificate, key and client CA are re-read from disk when they
//! change. A handshake in progress never blocks the accept loop: each runs in its own
//! task, bounded in number and time, and a finished connection is handed to the server
//! (axum's or tonic's) through a bounded channel.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use triad_model::config::TlsConfig;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most, per listener; more wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;

/// Labels of the reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok` or `error`.
    pub outcome: &'static str,
}

triad_model::metric_set! {
    /// TLS counters.
    pub struct TlsMetrics in "triad_tls" {
        /// Handshakes that failed or timed out (a client without a valid certificate,
        /// plain HTTP to a TLS port, a slow client).
        pub handshake_failures: Counter,
        /// Certificate reloads after the files changed, by outcome (an error keeps the
        /// certificate in use).
        pub reloads: Family<OutcomeLabel, Counter>,
    }
}

/// Something read from files and read again when they change.
pub(crate) trait Reload: Send + Sync {
    /// Re-reads the files if they changed since the last look; `Ok(true)` when the
    /// value was replaced. A file that cannot be read or does not parse (half-written
    /// by a rotation, say) keeps the current value.
    fn reload_if_changed(&self) -> Result<bool, String>;
    /// The first file, for logs.
    fn name(&self) -> String;
}

type Stamp = Vec<Option<(SystemTime, u64)>>;

/// A value built from `files` by `build`, rebuilt when they change (by modification
/// time and length).
pub(crate) struct Watched<T> {
    files: Vec<PathBuf>,
    build: fn(&[PathBuf]) -> Result<T, String>,
    current: RwLock<Arc<T>>,
    stamp: Mutex<Stamp>,
}

fn stamp_of(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

impl<T> Watched<T> {
    /// `build` over `files`, read now; an error names the key and the file.
    pub(crate) fn load(
        files: Vec<PathBuf>,
        build: fn(&[PathBuf]) -> Result<T, String>,
    ) -> Result<Self, String> {
        let stamp = stamp_of(&files);
        let current = build(&files)?;
        Ok(Watched {
            files,
            build,
            current: RwLock::new(Arc::new(current)),
            stamp: Mutex::new(stamp),
        })
    }

    /// The value as last read.
    pub(crate) fn get(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl<T: Send + Sync> Reload for Watched<T> {
    fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp_of(&self.files);
        if *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) == now {
            return Ok(false);
        }
        let next = (self.build)(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(true)
    }

    fn name(&self) -> String {
        self.files
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("files", &self.files)
            .finish()
    }
}

/// A server's TLS configuration, reloaded when its files change.
pub struct ServerTls {
    /// Built from the certificate, the key and the client CA, if any.
    watched: Watched<rustls::ServerConfig>,
    metrics: TlsMetrics,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.watched)
            .finish()
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The certificates of a PEM file (at least one).
pub fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn private_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path, what)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// A root store of the CA certificates of a PEM file.
pub fn roots(path: &Path, what: &str) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    for c in certificates(path, what)? {
        store
            .add(c)
            .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    }
    Ok(store)
}

/// The server configuration of `[cert_file, key_file]` or `[cert_file, key_file,
/// client_ca_file]`.
fn build(files: &[PathBuf]) -> Result<rustls::ServerConfig, String> {
    let (cert, key, client_ca) = match files {
        [cert, key] => (cert, key, None),
        [cert, key, ca] => (cert, key, Some(ca)),
        _ => return Err("a server certificate needs its certificate and key files".into()),
    };
    let certs = certificates(cert, "tls.cert_file")?;
    let key = private_key(key, "tls.key_file")?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder(Arc::new(roots(ca, "tls.client_ca_file")?))
                    .build()
                    .map_err(|e| format!("tls.client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.cert_file / tls.key_file: {e}"))?;
    // gRPC needs HTTP/2; the HTTP servers speak both.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

impl ServerTls {
    /// The servers' TLS from `cfg`, `None` when it sets no certificate. The files are
    /// read now: an error names the key and the file.
    pub fn load(cfg: &TlsConfig, metrics: TlsMetrics) -> Result<Option<Arc<ServerTls>>, String> {
        let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) else {
            return Ok(None);
        };
        let mut files = vec![cert.clone(), key.clone()];
        files.extend(cfg.client_ca_file.clone());
        Ok(Some(Arc::new(ServerTls {
            watched: Watched::load(files, build)?,
            metrics,
        })))
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.watched.get()
    }

    /// Re-reads the files if they changed since the last look. A file that cannot be
    /// read or does not parse (half-written by a rotation, say) leaves the current
    /// configuration in place, and is tried again at the next look.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let outcome = self.watched.reload_if_changed();
        let label = match outcome {
            Ok(false) => return outcome,
            Ok(true) => "ok",
            Err(_) => "error",
        };
        self.metrics
            .reloads
            .get_or_create(&OutcomeLabel { outcome: label })
            .inc();
        outcome
    }

    /// Looks at the files every `every` until `cancel` fires.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        every: Duration,
        cancel: &CancellationToken,
        tasks: &mut tokio::task::JoinSet<Result<(), String>>,
    ) {
        let (me, cancel) = (self.clone(), cancel.child_token());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let m = me.clone();
                match tokio::task::spawn_blocking(move || m.reload_if_changed()).await {
                    Ok(Ok(true)) => tracing::info!(cert = %me.watched.name(), "TLS certificate reloaded"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use"),
                    Err(e) => tracing::error!(error = %e, "TLS reload task failed"),
                }
            }
        });
    }
}

/// A server socket: TCP, with TLS when `tls` is set, and the limits every connection
/// on it is served under.
pub struct Listener {
    /// The bound socket.
    pub tcp: TcpListener,
    /// TLS, if the process serves it.
    pub tls: Option<Arc<ServerTls>>,
    /// Limits of each connection.
    pub limits: crate::serve::ConnLimits,
}

impl Listener {
    /// `tcp`, with TLS if `tls` is set, under `limits`.
    pub fn new(
        tcp: TcpListener,
        tls: Option<&Arc<ServerTls>>,
        limits: crate::serve::ConnLimits,
    ) -> Listener {
        Listener {
            tcp,
            tls: tls.cloned(),
            limits,
        }
    }

    /// Plain TCP with the default connection limits (tests, benchmarks).
    pub fn plain(tcp: TcpListener) -> Listener {
        Listener::new(tcp, None, crate::serve::ConnLimits::default())
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Accepts TCP connections and hands over those that completed their handshake, until
/// `cancel` fires.
pub(crate) fn handshakes(
    tcp: TcpListener,
    tls: Arc<ServerTls>,
    cancel: CancellationToken,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => return,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (stream, addr) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = tcp.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (tx, tls) = (tx.clone(), tls.clone());
            // Bounded by the semaphore and the timeout; its outcome is counted.
            tokio::spawn(async move {
                let acceptor = TlsAcceptor::from(tls.config());
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => {
                        let _ = tx.send((s, addr)).await;
                    }
                    Ok(Err(e)) => {
                        tls.metrics.handshake_failures.inc();
                        tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        tls.metrics.handshake_failures.inc();
                        tracing::debug!(peer = %addr, "TLS handshake timed out");
                    }
                }
                drop(permit);
            });
        }
    });
    rx
}
