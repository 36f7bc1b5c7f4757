//! Accepting connections: plain TCP or TLS (rustls), at most `HTTP_CONNECTIONS_MAX` at once,
//! each served by hyper with a header timeout (`HTTP_HEADER_SECONDS_MAX`), and a graceful stop
//! that lets requests in flight finish.

use super::ServerLimits;
use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use pipeline_ledger::limits::{HTTP_SHUTDOWN_GRACE_SECONDS, HTTP_TLS_HANDSHAKE_SECONDS_MAX};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// A certificate chain and its private key, PEM files (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    fn acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .with_context(|| {
                format!("cannot read the certificate chain {}", self.cert.display())
            })?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("cannot read the private key {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the certificate and the key do not make a TLS identity")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A bound listener, ready to serve.
pub struct Bound {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    addr: SocketAddr,
    limits: ServerLimits,
}

impl Bound {
    /// Binds `addr` (port 0: any free port) and loads the TLS identity, if any.
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<Tls>,
        limits: ServerLimits,
    ) -> anyhow::Result<Bound> {
        let tls = tls.as_ref().map(Tls::acceptor).transpose()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        Ok(Bound {
            listener,
            tls,
            addr,
            limits,
        })
    }

    /// The base URL the server answers at.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Serves `app` until `shutdown` completes; then stops accepting, tells long-lived
    /// responses to end (`stop`), and waits up to [`HTTP_SHUTDOWN_GRACE_SECONDS`] for the
    /// requests in flight to be answered.
    pub async fn run(
        self,
        app: Router,
        shutdown: impl Future<Output = ()>,
        stop: watch::Sender<bool>,
    ) {
        let connections = Arc::new(Semaphore::new(self.limits.connections));
        let graceful = GracefulShutdown::new();
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(self.limits.header_seconds));
        builder.http2().timer(TokioTimer::new());
        tokio::pin!(shutdown);
        loop {
            let (tcp, _peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors, typically: pause rather than spin.
                        eprintln!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                tokio::spawn(refuse(tcp, self.limits.connections));
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let service = TowerToHyperService::new(app.clone());
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tls {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    Some(acceptor) => {
                        let handshake = Duration::from_secs(HTTP_TLS_HANDSHAKE_SECONDS_MAX);
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(handshake, acceptor.accept(tcp)).await
                        else {
                            return;
                        };
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                }
            });
        }
        drop(self.listener);
        let _ = stop.send(true);
        let grace = Duration::from_secs(HTTP_SHUTDOWN_GRACE_SECONDS);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            eprintln!(
                "requests still in flight after {HTTP_SHUTDOWN_GRACE_SECONDS} s (HTTP_SHUTDOWN_GRACE_SECONDS); stopping anyway"
            );
        }
    }
}

/// Answers a connection over the limit of `max` with 503 and closes it.
async fn refuse(mut tcp: impl AsyncRead + AsyncWrite + Unpin, max: usize) {
    let body = format!(
        "{{\"type\":\"/problems/too-many-connections\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"the server has {max} connections open (HTTP_CONNECTIONS_MAX); try again shortly\"}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = tcp.write_all(response.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}
