//! Slow clients: one subscribes like a well-behaved client, over a socket with a 4 KiB receive
//! buffer, then never reads again. The server must drop it once its send queue is full (so that it
//! holds up nobody) and, when it does not read the close either, reset the connection
//! `limits.close_timeout_ms` later (so that it holds no buffers). The client sees the reset
//! without reading a byte: the socket's pending error.

use std::time::{Duration, Instant};

use tokio::io::Interest;

use crate::faces::{self, Endpoints, Face};
use crate::wire::{self, Ending};

/// The receive buffer of a slow client's socket.
const RECEIVE_BUFFER: u32 = 4096;

/// What became of a slow client.
#[derive(Debug)]
pub enum Outcome {
    /// The server reset the connection, this long after the client stopped reading.
    Reset(Duration),
    /// The connection ended otherwise (a close the client found on reading at last): dropped, but
    /// not reset within the patience.
    Ended(Ending),
    /// Still open and delivering this long after it stopped reading: never dropped.
    NotDropped(Duration),
    /// It could not even subscribe.
    Failed(String),
}

/// Runs one slow client on `face` for at most `patience` after it stops reading.
pub async fn run(face: Face, endpoints: &Endpoints, patience: Duration) -> Outcome {
    let mut ws = match faces::subscribe(face, endpoints, Some(RECEIVE_BUFFER)).await {
        Ok(ws) => ws,
        Err(error) => return Outcome::Failed(error.to_string()),
    };
    let stopped = Instant::now();
    // From here the client reads nothing.
    let socket = ws.get_ref();
    if let Ok(ready) = tokio::time::timeout(patience, socket.ready(Interest::ERROR)).await {
        return match (ready, socket.take_error()) {
            (Ok(_), Ok(Some(error))) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                Outcome::Reset(stopped.elapsed())
            }
            (_, Ok(Some(error))) => Outcome::Ended(Ending::Dropped(error.to_string())),
            (Err(error), _) | (_, Err(error)) => Outcome::Failed(error.to_string()),
            (Ok(_), Ok(None)) => Outcome::Failed("an error readiness without an error".into()),
        };
    }
    // Not reset: read what is there. A close (or the end) comes at once to a dropped client; a
    // client still subscribed keeps receiving events.
    match tokio::time::timeout(Duration::from_secs(5), wire::ending(&mut ws)).await {
        Ok(Ok(ending)) => Outcome::Ended(ending),
        Ok(Err(error)) => Outcome::Ended(Ending::Dropped(error.to_string())),
        Err(_) => Outcome::NotDropped(patience),
    }
}
