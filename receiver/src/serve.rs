//! Serving an axum router on a [`Listener`]: Triad's own accept loop over hyper, so that
//! every connection is held to [`ConnLimits`] — a client must send its request headers
//! within `header_read_timeout` (a slow client cannot hold connections open:
//! "slowloris"), and headers above `max_header_bytes` get 431 — which `axum::serve`
//! does not offer. On cancellation it stops accepting and lets in-flight requests end.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::tls::Listener;

/// What one connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Bytes of a request's headers (HTTP/1 buffer, HTTP/2 header list); more: 431.
    pub max_header_bytes: usize,
    /// Time to send a request's headers; the connection is closed after it.
    pub header_read_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_header_bytes: 65_536,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl ConnLimits {
    /// From the `limits` section.
    pub fn from_config(l: &triad_model::config::LimitsConfig) -> ConnLimits {
        ConnLimits {
            max_header_bytes: l.max_header_bytes,
            header_read_timeout: Duration::from_secs(l.header_read_timeout_secs),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Where connections come from: the socket, or the TLS handshakes done on it.
enum Incoming {
    Plain(tokio::net::TcpListener),
    Tls(tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>),
}

impl Incoming {
    /// The next connection; `None` once the TLS accept loop ended.
    async fn next(&mut self) -> Option<Box<dyn Io>> {
        match self {
            Incoming::Plain(l) => loop {
                match l.accept().await {
                    Ok((s, _)) => {
                        let _ = s.set_nodelay(true);
                        return Some(Box::new(s));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
            Incoming::Tls(rx) => rx.recv().await.map(|(s, _)| Box::new(s) as Box<dyn Io>),
        }
    }
}

/// Serves `app` on `listener` until `cancel` fires, then waits for the connections'
/// in-flight requests.
pub async fn serve(
    listener: Listener,
    app: Router,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let Listener { tcp, tls, limits } = listener;
    let mut incoming = match tls {
        None => Incoming::Plain(tcp),
        Some(t) => Incoming::Tls(crate::tls::handshakes(tcp, t, cancel.clone())),
    };
    let mut conns = JoinSet::new();
    loop {
        let io: Box<dyn Io> = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            c = incoming.next() => match c {
                Some(io) => io,
                None => break,
            },
        };
        let (svc, c) = (TowerToHyperService::new(app.clone()), cancel.clone());
        conns.spawn(async move {
            let mut b = auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes);
            b.http2()
                .timer(TokioTimer::new())
                .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
                // WebSockets over HTTP/2 (Loki's tail).
                .enable_connect_protocol();
            let conn = b.serve_connection_with_upgrades(TokioIo::new(io), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::trace!(error = %e, "connection ended");
                    }
                }
                _ = c.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    while conns.join_next().await.is_some() {}
    Ok(())
}
