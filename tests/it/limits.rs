//! What no client can make the server hold: frames refused from their header, a budget for what
//! unauthenticated connections hold, connections cut when a close is not read.

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::support::raw::{RawWs, ServerFrame};
use crate::support::{Options, TestServer, TIMEOUT};

const MIB: u64 = 1 << 20;

/// Announces a 64 MiB text frame and streams its payload; the server must close 1009 and grow
/// by far less than the frame.
async fn announce_a_huge_frame(server: &TestServer, mut raw: RawWs) {
    let before = server.rss_mib();
    let announced = 64 * MIB;
    raw.writer
        .write_all(&RawWs::header(true, 0x1, announced))
        .await
        .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let writing = async {
        for _ in 0..announced / chunk.len() as u64 {
            if raw.writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // All sent (or the connection is gone): only the reader can end the test now.
        std::future::pending::<()>().await
    };
    let closed = async {
        loop {
            if let ServerFrame::Close(code, reason) = raw.reader.frame().await {
                return (code, reason);
            }
        }
    };
    let closed = tokio::select! {
        closed = closed => closed,
        _ = writing => unreachable!(),
    };
    assert_eq!(closed, (1009, "Message too big".to_owned()));
    // What follows the header is never buffered (once the session is gone actix discards it).
    let grown = server.peak_rss_mib().saturating_sub(before);
    assert!(grown < 16, "the server grew by {grown} MiB");
}

#[tokio::test]
async fn a_frame_announcing_more_than_the_limit_is_refused_from_its_header_on_every_face() {
    let server = TestServer::start_with(Options {
        password: Some("secret".into()),
        ..Options::default()
    });
    // Streamer.bot before authenticating.
    let raw = RawWs::connect(server.url("streamerbot"), &[]).await;
    announce_a_huge_frame(&server, raw).await;
    // The custom face, with its token.
    let bearer = format!("Bearer {}", server.token());
    let raw = RawWs::connect(server.url("custom"), &[("Authorization", &bearer)]).await;
    announce_a_huge_frame(&server, raw).await;
    // Astro.
    let raw = RawWs::connect(server.url("astro"), &[]).await;
    announce_a_huge_frame(&server, raw).await;
    // The server goes on.
    let (mut ws, _) = crate::support::Ws::streamerbot(&server).await;
    let reply = ws
        .request(json!({"request": "GetInfo", "id": "after"}))
        .await;
    assert_eq!(reply["status"], "ok");
}

/// Sends the first 700 KiB of a text message that never ends; `sync` proves the server read it.
async fn unfinished_message(raw: &mut RawWs) {
    raw.send_frame(false, 0x1, &[b' '; 700 * 1024]).await;
}

#[tokio::test]
async fn unfinished_messages_of_unauthenticated_connections_share_one_budget() {
    let server = TestServer::start_with(Options {
        password: Some("secret".into()),
        // Room for five unfinished 700 KiB messages and 10 bytes more.
        extra_toml: "[limits]\nunauthenticated_bytes = 3584010\n".into(),
        ..Options::default()
    });
    let mut holding = Vec::new();
    for _ in 0..5 {
        let mut raw = RawWs::connect(server.url("streamerbot"), &[]).await;
        unfinished_message(&mut raw).await;
        raw.sync().await;
        holding.push(raw);
    }
    // The sixth is refused, on whichever face.
    let mut sixth = RawWs::connect(server.url("astro"), &[]).await;
    unfinished_message(&mut sixth).await;
    let closed = loop {
        if let ServerFrame::Close(code, reason) = sixth.frame().await {
            break (code, reason);
        }
    };
    assert_eq!(closed, (1013, "Server busy, try again later".to_owned()));
    server.wait_for_log("unauthenticated connections hold too much unfinished input");
    // A whole message costs nothing: a stranger's GetInfo is still answered meanwhile.
    let (mut stranger, _) = crate::support::Ws::streamerbot(&server).await;
    let reply = stranger
        .request(json!({"request": "GetInfo", "id": "full"}))
        .await;
    assert_eq!(reply["status"], "ok");
    // The five holding theirs keep their connections, and one that authenticates is not charged.
    for raw in &mut holding {
        raw.sync().await;
    }
    let bearer = format!("Bearer {}", server.token());
    let mut trusted = RawWs::connect(server.url("custom"), &[("Authorization", &bearer)]).await;
    unfinished_message(&mut trusted).await;
    trusted.sync().await;
    // A connection that goes gives its share back.
    drop(holding.pop());
    let mut seventh = RawWs::connect(server.url("streamerbot"), &[]).await;
    unfinished_message(&mut seventh).await;
    seventh.sync().await;
}

/// A Streamer.bot client with a 4 KiB receive buffer, subscribed to `General.Custom`; from
/// here it reads nothing.
async fn subscriber_with_a_small_buffer(server: &TestServer) -> RawWs {
    let mut slow = RawWs::connect_small(server.url("streamerbot"), 4096).await;
    let subscribe = json!({"request": "Subscribe", "id": "s", "events": {"General": ["Custom"]}});
    slow.send_frame(true, 0x1, subscribe.to_string().as_bytes())
        .await;
    loop {
        if let ServerFrame::Text(text) = slow.frame().await {
            if text.contains(r#""id":"s""#) {
                return slow;
            }
        }
    }
}

/// The server resets `stream`'s connection within `within`: the client sees the error without
/// reading a byte.
pub async fn reset_within(stream: &tokio::net::TcpStream, within: std::time::Duration) {
    let ready = stream.ready(tokio::io::Interest::ERROR);
    tokio::time::timeout(within, ready)
        .await
        .expect("the connection was reset in time")
        .expect("readiness");
    let error = stream.take_error().expect("SO_ERROR");
    assert_eq!(
        error.map(|error| error.kind()),
        Some(std::io::ErrorKind::ConnectionReset)
    );
}

#[tokio::test]
async fn a_client_dropped_as_too_slow_is_cut_off_even_if_it_never_reads() {
    let server = TestServer::start_with(Options {
        extra_toml: "[limits]\nsend_queue = 8\nclose_timeout_ms = 500\n".into(),
        ..Options::default()
    });
    let slow = subscriber_with_a_small_buffer(&server).await;
    // From here the client reads nothing.
    let padding = "x".repeat(64 * 1024);
    while !server.logs().iter().any(|line| line.contains("too slow")) {
        server.inject(json!({"source": "General", "type": "Custom", "data": {"padding": padding}}));
    }
    // Within the close timeout (and far less than the test's timeout) the server resets the
    // connection: the client sees the error without reading a byte.
    reset_within(slow.reader.half.as_ref(), TIMEOUT).await;
}

#[tokio::test]
async fn subscribe_is_capped_per_request_and_per_connection_and_never_holds_up_others() {
    let server = TestServer::start();
    let (mut attacker, _) = crate::support::Ws::streamerbot(&server).await;
    let (mut other, _) = crate::support::Ws::streamerbot(&server).await;
    let names = |from: usize, count: usize| -> Vec<String> {
        (from..from + count).map(|n| format!("Kind{n}")).collect()
    };
    // 20,000 names in one request (the old code took time growing with the square of it).
    attacker
        .send(json!({"request": "Subscribe", "id": "huge", "events": {"mygame": names(0, 20_000)}}))
        .await;
    let reply = other
        .request(json!({"request": "GetInfo", "id": "i"}))
        .await;
    assert_eq!(reply["status"], "ok");
    let reply = attacker.recv().await;
    assert_eq!(reply["id"], "huge");
    assert_eq!(
        reply["error"],
        "events lists too many names: at most 1000 per request"
    );
    // Up to 1,000 pairs.
    let events = json!({"mygame": names(0, 999)});
    let reply = attacker
        .request(json!({"request": "Subscribe", "id": "s", "events": events}))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let reply = attacker
        .request(json!({"request": "Subscribe", "id": "over", "events": {"other": names(0, 10)}}))
        .await;
    assert_eq!(
        reply["error"],
        "too many subscriptions: a connection may hold at most 1000 event types"
    );
    // Refused, the set is as it was (one source, 999 types) and events still flow.
    let reply = attacker
        .request(json!({"request": "UnSubscribe", "id": "u", "events": {"MyGame": names(0, 500)}}))
        .await;
    assert_eq!(reply["events"]["mygame"].as_array().unwrap().len(), 499);
    assert_eq!(reply["events"]["mygame"][0], "Kind500");
    let id = server.inject(json!({"source": "mygame", "type": "Kind993", "data": {}}));
    assert_eq!(attacker.recv().await["event"]["id"], json!(id));
}

#[tokio::test]
async fn the_socket_io_face_refuses_a_frame_over_its_payload_limit_from_its_header() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start_with(Options {
        socketio_toml: "api_keys = [\"key-1\"]\n".into(),
        ..Options::default()
    });
    let url = server.url("socketio").replace("http://", "ws://") + "?EIO=4&transport=websocket";
    let mut raw = RawWs::connect(&url, &[]).await;
    // Engine.IO's open packet; no API key is needed to get this far.
    assert!(matches!(raw.frame().await, ServerFrame::Text(open) if open.starts_with('0')));
    let before = server.rss_mib();
    // Under socketioxide's own frame limit (16 MiB), far over the face's (1,000,000 bytes).
    let announced = 15 * MIB;
    raw.writer
        .write_all(&RawWs::header(true, 0x1, announced))
        .await
        .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let writing = async {
        for _ in 0..announced / chunk.len() as u64 {
            if raw.writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    // The server ends the connection (a close frame or the end of the stream) without reading
    // the frame.
    let ended = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match raw.reader.half.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    let ended = tokio::select! {
        ended = tokio::time::timeout(TIMEOUT, ended) => ended,
        _ = writing => unreachable!(),
    };
    ended.expect("the connection ended in time");
    let grown = server.peak_rss_mib().saturating_sub(before);
    assert!(grown < 8, "the server grew by {grown} MiB");
}

#[tokio::test]
async fn the_socket_io_face_holds_at_most_max_connections_upgraded_or_not() {
    let server = TestServer::start_with(Options {
        socketio_toml: "api_keys = [\"key-1\"]\nmax_connections = 2\n".into(),
        ..Options::default()
    });
    let url = server.url("socketio").replace("http://", "ws://") + "?EIO=4&transport=websocket";
    let connect = || async {
        tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url.as_str()))
            .await
            .expect("an answer in time")
    };
    let first = connect().await.expect("the first connects");
    let _second = connect().await.expect("the second connects");
    // Upgraded connections keep their slots: the third is refused.
    assert!(connect().await.is_err(), "a third connection was served");
    server.wait_for_log("socketio.max_connections (2) are open");
    // A slot is free again once a connection has gone.
    drop(first);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while connect().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "no slot came free");
    }
}

#[tokio::test]
async fn a_session_whose_peer_stopped_reading_on_a_quiet_server_is_cut_off() {
    // Nothing more is published after the client stops reading, so its queue never fills: only
    // the unhandled heartbeats (two intervals) tell that the session is stalled.
    let server = TestServer::start_with(Options {
        extra_toml: "[limits]\nclose_timeout_ms = 500\n".into(),
        ..Options::default()
    });
    let slow = subscriber_with_a_small_buffer(&server).await;
    // Enough to fill the kernel's buffers and actix's, far less than the send queue (1024).
    let padding = "x".repeat(64 * 1024);
    for _ in 0..200 {
        server.inject(json!({"source": "General", "type": "Custom", "data": {"padding": padding}}));
    }
    reset_within(
        slow.reader.half.as_ref(),
        switchboard::registry::HEARTBEAT_INTERVAL * 3 + TIMEOUT,
    )
    .await;
    assert!(server.logs().iter().any(|line| line.contains("too slow")));
}

#[tokio::test]
async fn a_control_frame_announcing_over_125_bytes_is_closed_1002_unread() {
    let server = TestServer::start_with(Options {
        password: Some("secret".into()),
        ..Options::default()
    });
    let before = server.rss_mib();
    let mut raws = Vec::new();
    for _ in 0..16 {
        let mut raw = RawWs::connect(server.url("streamerbot"), &[]).await;
        // A ping announcing 3.9 MB (under the frame limit, far over 125), and all its payload
        // but the last byte, so that every connection holds its part at once.
        raw.writer
            .write_all(&RawWs::header(true, 0x9, 3_900_000))
            .await
            .unwrap();
        let _ = raw.writer.write_all(&vec![0; 3_899_999]).await;
        raws.push(raw);
    }
    for raw in &mut raws {
        let _ = raw.writer.write_all(&[0]).await;
    }
    for raw in &mut raws {
        let closed = loop {
            if let ServerFrame::Close(code, reason) = raw.frame().await {
                break (code, reason);
            }
        };
        assert_eq!(closed, (1002, "Protocol error".to_owned()));
    }
    let grown = server.peak_rss_mib().saturating_sub(before);
    assert!(grown < 16, "the server grew by {grown} MiB");
}

#[tokio::test]
async fn a_flood_of_small_frames_is_read_only_as_fast_as_it_is_handled() {
    let server = TestServer::start();
    let mut raw = RawWs::connect(server.url("streamerbot"), &[]).await;
    let before = server.rss_mib();
    // 32 MiB of pongs with 100-byte payloads, as fast as the socket takes them.
    let mut pong = RawWs::header(true, 0xA, 100);
    pong.extend_from_slice(&[b'p'; 100]);
    let burst: Vec<u8> = pong
        .iter()
        .copied()
        .cycle()
        .take(pong.len() * 10_000)
        .collect();
    for _ in 0..(32 * MIB as usize) / burst.len() {
        raw.writer.write_all(&burst).await.unwrap();
    }
    raw.sync().await;
    let grown = server.peak_rss_mib().saturating_sub(before);
    assert!(grown < 12, "the server grew by {grown} MiB");
}
