//! A second handle on each WebSocket connection's TCP socket, so that a session that is closed
//! can cut its connection even when the peer never reads.
//!
//! actix-web writes a closing session's last frames until the peer has read them, however long
//! that takes: a client that stops reading would keep its connection, its buffers and the
//! kernel's socket memory for ever. The listener keeps a duplicate of every accepted socket
//! (`on_connect`); whoever closes a session (the session itself, or the registry dropping it as
//! too slow) gives the peer `limits.close_timeout_ms` to read the goodbye, then resets the
//! connection. The duplicate costs one file descriptor per connection.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use actix_web::HttpRequest;
use socket2::{SockRef, Socket};
use tokio::sync::watch;

/// A duplicate of a connection's socket, kept for as long as a holder may need to cut it.
#[derive(Debug, Clone)]
pub struct PeerSocket {
    socket: Arc<Socket>,
    /// Closed once actix-web has dropped the connection.
    ended: watch::Receiver<()>,
}

impl PeerSocket {
    /// The socket of `request`'s connection, when its listener kept one ([`keep`]).
    pub fn of(request: &HttpRequest) -> Option<PeerSocket> {
        let kept = request.conn_data::<Kept>()?;
        Some(PeerSocket {
            socket: kept.socket.clone(),
            ended: kept.ended.clone(),
        })
    }

    /// Resets the connection after `grace` unless it has ended by then; returns at once.
    pub fn cut_after(&self, grace: Duration) {
        let mut peer = self.clone();
        actix_rt::spawn(async move {
            tokio::select! {
                _ = actix_rt::time::sleep(grace) => peer.cut(),
                _ = peer.ended.changed() => {}
            }
        });
    }

    /// Resets the connection now: what is unsent is dropped and the peer sees a reset.
    fn cut(&self) {
        log::debug!(
            "cutting the connection of {:?}: it did not end in time",
            self.socket
                .peer_addr()
                .ok()
                .and_then(|address| address.as_socket())
        );
        // A zero linger makes the last close a reset, not a FIN queued behind unread data.
        let _ = self.socket.set_linger(Some(Duration::ZERO));
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// The duplicate socket, in the connection's data: dropped with actix-web's connection (its
/// dispatcher), which closes `ended` — not when the response ends, since a close that the peer
/// does not read keeps the dispatcher flushing for ever.
struct Kept {
    socket: Arc<Socket>,
    _alive: watch::Sender<()>,
    ended: watch::Receiver<()>,
}

/// `HttpServer::on_connect` for WebSocket listeners: keeps a duplicate of each accepted socket,
/// the one under the TLS session on a TLS listener.
pub fn keep(connection: &dyn Any, data: &mut Extensions) {
    let Some(stream) = tcp_stream(connection) else {
        return;
    };
    match SockRef::from(stream).try_clone() {
        Ok(socket) => {
            let (alive, ended) = watch::channel(());
            data.insert(Kept {
                socket: Arc::new(socket),
                _alive: alive,
                ended,
            });
        }
        // Out of descriptors: the connection is served, it just cannot be cut early.
        Err(error) => log::warn!("cannot keep a handle on a connection's socket: {error}"),
    }
}

/// The TCP stream of an accepted connection, plain or under rustls.
fn tcp_stream(connection: &dyn Any) -> Option<&TcpStream> {
    connection.downcast_ref::<TcpStream>().or_else(|| {
        connection
            .downcast_ref::<TlsStream<TcpStream>>()
            .map(|tls| tls.get_ref().0)
    })
}
