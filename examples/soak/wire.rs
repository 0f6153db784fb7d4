//! Connections: WebSocket clients (tokio-tungstenite over a TCP socket of our own, so that a slow
//! client can shrink its receive buffer and see its connection reset) and a byte-level client for
//! what no WebSocket library sends (frame headers announcing 64 MiB, unfinished fragmented
//! messages, text that is not UTF-8). Every wait has a deadline.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long one step of a conversation (connect, one reply) may take.
pub const STEP: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<TcpStream>;

/// Why a conversation did not go as it should.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("no {0} within {STEP:?}")]
    Timeout(&'static str),
    #[error("the connection ended: {0}")]
    Ended(Ending),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket: {0}")]
    Ws(Box<tokio_tungstenite::tungstenite::Error>),
    #[error("{0}")]
    Unexpected(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for WireError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> WireError {
        WireError::Ws(Box::new(error))
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with its code and reason.
    Closed(u16, String),
    /// A close frame without a code.
    ClosedBare,
    /// The TCP connection was reset.
    Reset,
    /// The TCP connection ended (or failed) without a close frame.
    Dropped(String),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Closed(code, reason) => write!(f, "close {code} {reason:?}"),
            Ending::ClosedBare => write!(f, "close without a code"),
            Ending::Reset => write!(f, "connection reset"),
            Ending::Dropped(why) => write!(f, "dropped without a close ({why})"),
        }
    }
}

/// `host:port` of a `ws://` or `http://` URL.
pub fn host_port(url: &str) -> &str {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// A TCP connection to `url`'s address, with a receive buffer of `receive_buffer` bytes when
/// given (a client that stops reading then fills up quickly).
pub async fn tcp(url: &str, receive_buffer: Option<u32>) -> Result<TcpStream, WireError> {
    let address = host_port(url)
        .parse()
        .map_err(|_| WireError::Unexpected(format!("not a socket address: {url}")))?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    tokio::time::timeout(STEP, socket.connect(address))
        .await
        .map_err(|_| WireError::Timeout("TCP connection"))?
        .map_err(WireError::Io)
}

/// A WebSocket connection to `url` with extra request `headers`.
pub async fn connect(
    url: &str,
    headers: &[(&'static str, String)],
    receive_buffer: Option<u32>,
) -> Result<Ws, WireError> {
    let stream = tcp(url, receive_buffer).await?;
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        let value = value
            .parse()
            .map_err(|_| WireError::Unexpected(format!("not a header value: {value}")))?;
        request.headers_mut().insert(*name, value);
    }
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::client_async(request, stream))
        .await
        .map_err(|_| WireError::Timeout("WebSocket handshake"))??;
    Ok(ws)
}

pub async fn send(ws: &mut Ws, text: impl Into<String>) -> Result<(), WireError> {
    ws.send(Message::Text(text.into())).await?;
    Ok(())
}

/// The next text frame; Engine.IO pings (`2`) are answered on the way.
pub async fn next_text(ws: &mut Ws, what: &'static str) -> Result<String, WireError> {
    loop {
        let frame = tokio::time::timeout(STEP, ws.next())
            .await
            .map_err(|_| WireError::Timeout(what))?;
        match frame {
            Some(Ok(Message::Text(text))) if text == "2" => send(ws, "3").await?,
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Close(close))) => {
                return Err(WireError::Ended(match close {
                    Some(close) => Ending::Closed(close.code.into(), close.reason.into_owned()),
                    None => Ending::ClosedBare,
                }))
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(WireError::Ended(ending_of(&error))),
            None => return Err(WireError::Ended(Ending::Dropped("end of stream".into()))),
        }
    }
}

/// Reads text frames until one satisfies `wanted`, which it returns.
pub async fn reply(
    ws: &mut Ws,
    what: &'static str,
    wanted: impl Fn(&str) -> bool,
) -> Result<String, WireError> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let text = tokio::time::timeout_at(deadline, next_text(ws, what))
            .await
            .map_err(|_| WireError::Timeout(what))??;
        if wanted(&text) {
            return Ok(text);
        }
    }
}

/// Reads until the connection ends, for at most [`STEP`]; how it ended.
pub async fn ending(ws: &mut Ws) -> Result<Ending, WireError> {
    loop {
        match next_text(ws, "the end of the connection").await {
            Ok(_) => continue,
            Err(WireError::Ended(ending)) => return Ok(ending),
            Err(error) => return Err(error),
        }
    }
}

/// How a tungstenite error ended the connection.
pub fn ending_of(error: &tokio_tungstenite::tungstenite::Error) -> Ending {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => Ending::Reset,
        other => Ending::Dropped(other.to_string()),
    }
}

/// A frame from the server, as the byte-level client reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum RawFrame {
    Text(String),
    Pong(Vec<u8>),
    Close(u16, String),
    Other(u8),
}

/// A WebSocket connection driven byte by byte.
pub struct Raw {
    stream: TcpStream,
    /// Bytes read past the last frame handed out.
    read: Vec<u8>,
}

impl Raw {
    /// Upgrades a TCP connection to `url` (`ws://host:port/path?query`) with `headers`.
    pub async fn connect(url: &str, headers: &[(&'static str, String)]) -> Result<Raw, WireError> {
        let mut stream = tcp(url, None).await?;
        let authority = host_port(url);
        let path = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.find('/').map(|at| &rest[at..]))
            .unwrap_or("/");
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Raw {
            stream,
            read: Vec::new(),
        };
        let end = loop {
            if let Some(at) = raw.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            raw.fill().await?;
        };
        let head = String::from_utf8_lossy(&raw.read[..end]).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(WireError::Unexpected(format!("not upgraded: {head}")));
        }
        raw.read.drain(..end);
        Ok(raw)
    }

    /// A masked frame header (with a zero mask: the payload goes as it is).
    pub fn header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
        switchboard::frame_header::FrameHeader::client(fin, opcode, length)
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    pub async fn send_frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: &[u8],
    ) -> Result<(), WireError> {
        let mut frame = Self::header(fin, opcode, payload.len() as u64);
        frame.extend_from_slice(payload);
        self.write(&frame).await
    }

    /// The next frame from the server.
    pub async fn frame(&mut self) -> Result<RawFrame, WireError> {
        loop {
            if let Some((frame, used)) = parse(&self.read) {
                self.read.drain(..used);
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// Reads frames until the connection ends (within [`STEP`]); how it ended.
    pub async fn ending(&mut self) -> Ending {
        loop {
            match self.frame().await {
                Ok(RawFrame::Close(code, reason)) => return Ending::Closed(code, reason),
                Ok(_) => continue,
                Err(WireError::Ended(ending)) => return ending,
                Err(error) => return Ending::Dropped(error.to_string()),
            }
        }
    }

    async fn fill(&mut self) -> Result<(), WireError> {
        let mut buffer = [0u8; 16 * 1024];
        let read = tokio::time::timeout(STEP, self.stream.read(&mut buffer))
            .await
            .map_err(|_| WireError::Timeout("bytes from the server"))?;
        match read {
            Ok(0) => Err(WireError::Ended(Ending::Dropped("end of stream".into()))),
            Ok(read) => {
                self.read.extend_from_slice(&buffer[..read]);
                Ok(())
            }
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                Err(WireError::Ended(Ending::Reset))
            }
            Err(error) => Err(WireError::Ended(Ending::Dropped(error.to_string()))),
        }
    }
}

/// A whole unmasked server frame at the start of `bytes`, and its length.
fn parse(bytes: &[u8]) -> Option<(RawFrame, usize)> {
    let (first, second) = (*bytes.first()?, *bytes.get(1)?);
    let (length, start): (usize, usize) = match second & 0x7f {
        126 => (
            u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        length => (length as usize, 2),
    };
    let payload = bytes.get(start..start.checked_add(length)?)?;
    let frame = match first & 0x0f {
        0x1 => RawFrame::Text(String::from_utf8_lossy(payload).into_owned()),
        0xA => RawFrame::Pong(payload.to_vec()),
        0x8 if payload.len() >= 2 => RawFrame::Close(
            u16::from_be_bytes([payload[0], payload[1]]),
            String::from_utf8_lossy(&payload[2..]).into_owned(),
        ),
        0x8 => RawFrame::Close(1005, String::new()),
        opcode => RawFrame::Other(opcode),
    };
    Some((frame, start + length))
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`); the response's status.
/// `body_length` is what `Content-Length` announces, which may be more than `body`.
pub async fn http_status(
    base: &str,
    method: &str,
    path: &str,
    body: &[u8],
    body_length: u64,
    admin_token: &str,
) -> Result<u16, WireError> {
    let mut stream = tcp(base, None).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {admin_token}\r\n\
         Content-Length: {body_length}\r\nConnection: close\r\n\r\n",
        host_port(base)
    );
    stream.write_all(head.as_bytes()).await?;
    let (mut reader, mut writer) = stream.split();
    // The server may answer (and stop reading) before it has the whole body.
    let write = async {
        let _ = writer.write_all(body).await;
        std::future::pending::<()>().await
    };
    let read = async {
        let mut response = Vec::new();
        let mut buffer = [0u8; 4096];
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = tokio::time::timeout(STEP, reader.read(&mut buffer))
                .await
                .map_err(|_| WireError::Timeout("an HTTP response"))?;
            match read {
                Ok(0) => break,
                Ok(read) => response.extend_from_slice(&buffer[..read]),
                // A reset after the status line still tells the status.
                Err(_) if response.len() >= 12 => break,
                Err(error) => return Err(WireError::Io(error)),
            }
        }
        Ok(response)
    };
    let response = tokio::select! {
        response = read => response?,
        _ = write => unreachable!("the write never ends"),
    };
    let line = String::from_utf8_lossy(&response);
    line.split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| WireError::Unexpected(format!("not an HTTP response: {line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_parsed_once_it_is_whole() {
        let close = [0x88, 0x04, 0x03, 0xf1, b'h', b'i'];
        assert_eq!(parse(&close[..3]), None);
        assert_eq!(parse(&close), Some((RawFrame::Close(1009, "hi".into()), 6)));
        assert_eq!(Raw::header(false, 0x1, 70_000)[..2], [0x01, 0xff]);
    }
}
