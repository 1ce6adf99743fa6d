//! The HTTP/1.1 listener: hyper with a bound on the time a client may take to send its request
//! headers (a slow client cannot hold connections open: SECURITY F7), the peer address of each
//! request (for the audit log), and graceful shutdown (stop accepting, finish what was accepted).
//!
//! A slow body is bounded by the request timeout around every handler, which reads the body.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// How long a client may take to send the headers of a request (from the connection's start, or
/// from the end of the previous response on a kept-alive connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest read buffer of a connection (request line and headers must fit).
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `stop` turns true, then stops accepting and waits for the
/// connections to finish their requests in flight (the caller bounds that wait).
pub async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    let graceful = GracefulShutdown::new();
    // The connections, so that dropping this future (a shutdown that ran out of time) ends
    // them too.
    let mut connections = tokio::task::JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // Bounds the memory one connection's read buffer may take; larger header blocks are
        // refused with 431 before they are read whole.
        .max_buf_size(READ_BUFFER_BYTES);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    connections.shutdown().await;
}
