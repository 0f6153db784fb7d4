//! A WebSocket client at the byte level, for what a well-behaved library will not send: frame
//! headers announcing more than follows, unfinished fragmented messages, a peer that never reads.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::TIMEOUT;

/// Both halves of an upgraded connection, to be used apart (write while reading).
pub struct RawWs {
    pub reader: Reader,
    pub writer: OwnedWriteHalf,
}

pub struct Reader {
    pub half: OwnedReadHalf,
    /// Bytes read past the last frame handed out.
    read: Vec<u8>,
}

/// A frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerFrame {
    Text(String),
    Pong(Vec<u8>),
    Close(u16, String),
    Other(u8),
}

impl RawWs {
    /// Upgrades a TCP connection to `url` (`ws://host:port/path`) with `headers`.
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> RawWs {
        let stream = Self::tcp(url, None).await;
        Self::upgrade(stream, url, headers).await
    }

    /// The same over a socket whose receive buffer is `receive_buffer` bytes: a peer that stops
    /// reading fills up quickly.
    pub async fn connect_small(url: &str, receive_buffer: u32) -> RawWs {
        let stream = Self::tcp(url, Some(receive_buffer)).await;
        Self::upgrade(stream, url, &[]).await
    }

    /// A TCP connection to the host of `url`, with a receive buffer of `receive_buffer` bytes.
    pub async fn tcp(url: &str, receive_buffer: Option<u32>) -> TcpStream {
        let address = host_port(url).parse().expect("a socket address");
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF set");
        }
        socket.connect(address).await.expect("connected")
    }

    async fn upgrade(mut stream: TcpStream, url: &str, headers: &[(&str, &str)]) -> RawWs {
        let path = url
            .trim_start_matches("ws://")
            .find('/')
            .map_or("/", |at| &url["ws://".len() + at..]);
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            host_port(url)
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("sent");
        let (half, writer) = stream.into_split();
        let mut reader = Reader {
            half,
            read: Vec::new(),
        };
        let end = loop {
            if let Some(at) = reader.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            reader.fill().await;
        };
        let head = String::from_utf8_lossy(&reader.read[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
        reader.read.drain(..end);
        RawWs { reader, writer }
    }

    /// A masked frame header: FIN, opcode, payload length (a zero mask: the payload goes as
    /// it is).
    pub fn header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
        switchboard::frame_header::FrameHeader::client(fin, opcode, length)
    }

    /// Sends one whole frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut frame = Self::header(fin, opcode, payload.len() as u64);
        frame.extend_from_slice(payload);
        self.writer.write_all(&frame).await.expect("frame sent");
    }

    /// Sends a ping and waits for its pong: everything sent before has been read by the server.
    pub async fn sync(&mut self) {
        self.send_frame(true, 0x9, b"sync").await;
        loop {
            match self.reader.frame().await {
                ServerFrame::Pong(payload) if payload == b"sync" => return,
                ServerFrame::Close(code, reason) => {
                    panic!("closed {code} {reason} before the pong")
                }
                _ => continue,
            }
        }
    }

    /// The next frame from the server, within [`TIMEOUT`].
    pub async fn frame(&mut self) -> ServerFrame {
        self.reader.frame().await
    }
}

impl Reader {
    /// The next frame from the server, within [`TIMEOUT`].
    pub async fn frame(&mut self) -> ServerFrame {
        loop {
            if let Some((frame, used)) = parse(&self.read) {
                self.read.drain(..used);
                return frame;
            }
            self.fill().await;
        }
    }

    async fn fill(&mut self) {
        let mut buffer = [0u8; 64 * 1024];
        let read = tokio::time::timeout(TIMEOUT, self.half.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("nothing read within {TIMEOUT:?}"))
            .expect("readable");
        assert!(read > 0, "the connection ended");
        self.read.extend_from_slice(&buffer[..read]);
    }
}

/// `host:port` of a URL such as `ws://127.0.0.1:1234/path` (any scheme).
pub fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().expect("a host")
}

/// A whole unmasked server frame at the start of `bytes`, and its length.
fn parse(bytes: &[u8]) -> Option<(ServerFrame, usize)> {
    let (first, second) = (*bytes.first()?, *bytes.get(1)?);
    let (length, start) = match second & 0x7f {
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
    let payload = bytes.get(start..start + length)?;
    let frame = match first & 0x0f {
        0x1 => ServerFrame::Text(String::from_utf8_lossy(payload).into_owned()),
        0xA => ServerFrame::Pong(payload.to_vec()),
        0x8 if payload.len() >= 2 => ServerFrame::Close(
            u16::from_be_bytes([payload[0], payload[1]]),
            String::from_utf8_lossy(&payload[2..]).into_owned(),
        ),
        opcode => ServerFrame::Other(opcode),
    };
    Some((frame, start + length))
}
