//! Who may use what: the HTTP API's admin token on every route, on a loopback bind and on every
//! interface; requests from pages of other sites; faces that would listen beyond loopback with
//! no credential; the WebSocket faces' `allowed_origins`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::support::{Dirs, Options, TestServer, TIMEOUT};

const RULE_ID: &str = "01JE0000000000000000000ACR";
const ACTION_ID: &str = "01JE0000000000000000000ACA";

/// Every route of the HTTP API but the open ones: (method, path, JSON body).
fn routes() -> Vec<(&'static str, String, String)> {
    let rule = json!({"kind": "rule", "schemaVersion": 1, "id": RULE_ID, "name": "Access",
        "triggers": [{"id": "t", "on": "access_probe"}],
        "steps": [{"id": "l", "kind": "log", "message": "probe"}]});
    let action = json!({"kind": "action", "schemaVersion": 1, "id": ACTION_ID, "name": "Access",
        "steps": [{"id": "l", "kind": "log", "message": "probe"}]});
    let event = json!({"source": "test", "type": "access_probe", "data": {}}).to_string();
    let mut routes = vec![
        ("GET", "/metrics".into(), String::new()),
        ("GET", "/GetActions".into(), String::new()),
        (
            "POST",
            "/DoAction".into(),
            json!({"action": {"name": "Access"}}).to_string(),
        ),
        ("POST", "/events".into(), event.clone()),
        ("GET", "/connections".into(), String::new()),
        (
            "PUT",
            "/connections/probe".into(),
            json!({"url": "ws://127.0.0.1:9/", "enabled": false}).to_string(),
        ),
        ("GET", "/connections/probe".into(), String::new()),
        ("POST", "/connections/probe/reconnect".into(), String::new()),
        ("DELETE", "/connections/probe".into(), String::new()),
        ("GET", "/sessions".into(), String::new()),
        ("GET", "/credits".into(), String::new()),
        ("GET", "/variables".into(), String::new()),
        ("GET", "/dashboard/feed".into(), String::new()),
    ];
    for (kind, id, document) in [("rules", RULE_ID, rule), ("actions", ACTION_ID, action)] {
        routes.extend([
            ("GET", format!("/{kind}"), String::new()),
            ("PUT", format!("/{kind}/{id}"), document.to_string()),
            ("GET", format!("/{kind}/{id}"), String::new()),
            ("GET", format!("/{kind}/{id}/traces"), String::new()),
            (
                "POST",
                format!("/{kind}/{id}/test"),
                json!({"event": {"source": "test", "type": "access_probe"}}).to_string(),
            ),
            ("POST", format!("/{kind}/{id}/tests"), String::new()),
            ("DELETE", format!("/{kind}/{id}"), String::new()),
        ]);
    }
    routes
}

/// Every (method, path template) the HTTP face mounts, read from its source: the document routes
/// (after `fn documents`) under both `/rules` and `/actions`.
fn mounted_routes() -> Vec<(String, String)> {
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]*)",\s*web::(\w+)\(\)"#).unwrap();
    let mut mounted = Vec::new();
    for file in ["src/faces/http/mod.rs", "src/faces/dashboard/mod.rs"] {
        let text = std::fs::read_to_string(crate::support::project_dir().join(file)).unwrap();
        let (top, documents) = text.split_once("fn documents").unwrap_or((&text, ""));
        for (part, prefixes) in [(top, vec![""]), (documents, vec!["/rules", "/actions"])] {
            for found in route.captures_iter(part) {
                for prefix in &prefixes {
                    let method = found[2].to_ascii_uppercase();
                    mounted.push((method, format!("{prefix}{}", &found[1])));
                }
            }
        }
    }
    mounted
}

#[test]
fn the_route_tests_cover_every_route_the_face_mounts() {
    let mut tried: Vec<(String, String)> = routes()
        .into_iter()
        .map(|(method, path, _)| (method.to_owned(), path))
        .collect();
    tried.extend(OPEN.iter().map(|path| ("GET".to_owned(), path.to_string())));
    let mounted = mounted_routes();
    assert!(mounted.len() > 20, "only {} routes found", mounted.len());
    let parameter = regex::Regex::new(r"\{[^}]+\}").unwrap();
    for (method, template) in mounted {
        let pattern = format!("^{}$", parameter.replace_all(&template, "[^/]+"));
        let pattern = regex::Regex::new(&pattern).unwrap();
        assert!(
            tried
                .iter()
                .any(|(tried, path)| *tried == method && pattern.is_match(path)),
            "{method} {template} is mounted but not in the route tests"
        );
    }
}

/// What anyone may fetch: health, and the dashboard's page and scripts.
const OPEN: [&str; 3] = ["/health", "/", "/dashboard/app.js"];

/// Sends one HTTP/1.1 request with exactly `headers` (a `Host` of its own replaces the real
/// one); answers the status and the body.
fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let answer = exchange(server, method, path, headers, body);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, body.to_owned())
}

/// The same request; answers the whole answer, head and body.
fn exchange(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let address = server
        .url("http")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = TcpStream::connect(&address).expect("connected");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    answer
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn every_route_asks_for_the_admin_token_as_its_bind_requires() {
    for everywhere in [false, true] {
        let options = Options {
            http_toml: if everywhere {
                "bind = \"0.0.0.0:0\"\n".into()
            } else {
                String::new()
            },
            ..Options::default()
        };
        let server = TestServer::start_with(options);
        let right = server.authorization();
        let tried = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
            let (status, answer) = call(&server, method, path, headers, body);
            (
                status,
                format!(
                    "{method} {path} {headers:?} (everywhere: {everywhere}): {status} {answer}"
                ),
            )
        };
        for path in OPEN {
            for headers in [vec![], vec![("Authorization", "Bearer wrong")]] {
                let (status, said) = tried("GET", path, &headers, "");
                assert_eq!(status, 200, "{said}");
            }
        }
        for (method, path, body) in routes() {
            let changes = method != "GET";
            let (status, said) = tried(method, &path, &[JSON], &body);
            assert_eq!(status == 401, everywhere || changes, "{said}");
            if status == 401 {
                assert!(
                    said.contains("need") && said.contains("the admin token"),
                    "{said}"
                );
            }
            let (status, said) = tried(
                method,
                &path,
                &[JSON, ("Authorization", "Bearer wrong")],
                &body,
            );
            assert_eq!(status, 401, "{said}");
            assert!(said.contains("the admin token is wrong"), "{said}");
            let (status, said) = tried(method, &path, &[JSON, ("Authorization", &right)], &body);
            assert!(![401, 403, 415].contains(&status), "{said}");
        }
        // Encoded, a route is still that route (the router decodes it).
        let (status, said) = tried("GET", "/dashboard/%66eed", &[], "");
        assert_eq!(status == 401, everywhere, "{said}");
        let (status, said) = tried("POST", "/%65vents", &[JSON], "{}");
        assert_eq!(status, 401, "{said}");
        // The dashboard's own page changes things without the token on loopback only.
        let own = server.url("http").trim_end_matches('/').to_owned();
        let event = json!({"source": "test", "type": "same_origin"}).to_string();
        for headers in [
            [JSON, ("Origin", own.as_str())],
            [JSON, ("Sec-Fetch-Site", "same-origin")],
        ] {
            let (status, said) = tried("POST", "/events", &headers, &event);
            assert_eq!(status, if everywhere { 401 } else { 200 }, "{said}");
        }
        let logs = server.logs().join("\n");
        assert!(
            !logs.contains(server.admin_token()),
            "the admin token is in the log"
        );
    }
}

#[test]
fn pages_of_other_sites_cannot_change_anything() {
    let server = TestServer::start_with(Options {
        http_toml: "allowed_origins = [\"https://overlay.example\"]\n".into(),
        ..Options::default()
    });
    let right = server.authorization();
    let event = json!({"source": "evil", "type": "forged"}).to_string();
    let own = server.url("http").trim_end_matches('/').to_owned();
    let evil = ("Origin", "http://evil.example");
    let plain = ("Content-Type", "text/plain");
    let cases: [(&[(&str, &str)], u16); 7] = [
        // The simple request any page may send, with or without the token.
        (&[evil, plain], 403),
        (&[evil, plain, ("Authorization", &right)], 403),
        (&[evil, JSON, ("Authorization", &right)], 403),
        // No page, or this server's own page, but not JSON.
        (&[plain, ("Authorization", &right)], 415),
        (&[("Origin", &own), plain], 415),
        // An allowed site's page, with the token; without it, it is not the dashboard.
        (
            &[
                ("Origin", "https://overlay.example"),
                JSON,
                ("Authorization", &right),
            ],
            200,
        ),
        (&[("Origin", "https://overlay.example"), JSON], 401),
    ];
    for (headers, expected) in cases {
        let (status, answer) = call(&server, "POST", "/events", headers, &event);
        assert_eq!(status, expected, "{headers:?}: {answer}");
    }
    // Two Content-Types, or two Origins, are believed in neither.
    let (status, _) = call(
        &server,
        "POST",
        "/events",
        &[JSON, plain, ("Authorization", &right)],
        &event,
    );
    assert_eq!(status, 415);
    let (status, _) = call(
        &server,
        "POST",
        "/events",
        &[("Origin", &own), ("Origin", "http://evil.example"), JSON],
        &event,
    );
    assert_eq!(status, 403);
    // Without Origin, Sec-Fetch-Site speaks; with one, Origin does.
    let (status, _) = call(
        &server,
        "POST",
        "/events",
        &[evil, ("Sec-Fetch-Site", "same-origin"), JSON],
        &event,
    );
    assert_eq!(status, 403);
    // Forwarded to loopback by a proxy or a tunnel: the network's rules.
    for forwarded in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("Forwarded", "for=203.0.113.7"),
    ] {
        let (status, answer) = call(&server, "GET", "/rules", &[forwarded], "");
        assert_eq!(status, 401, "{forwarded:?}: {answer}");
    }
    // An allowed site's page reads with the token only, and its browser may ask first.
    let overlay = ("Origin", "https://overlay.example");
    let (status, _) = call(&server, "GET", "/rules", &[overlay], "");
    assert_eq!(status, 401);
    let preflight = |origin: &str| {
        let headers = [
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ];
        exchange(&server, "OPTIONS", "/events", &headers, "").to_ascii_lowercase()
    };
    let answer = preflight("https://overlay.example");
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("access-control-allow-origin: https://overlay.example"),
        "{answer}"
    );
    assert!(answer.contains("authorization"), "{answer}");
    assert!(!preflight("http://evil.example").contains("access-control-allow-origin"));
    // A page that rebinds its own name to 127.0.0.1 is same-origin to itself, not to this server.
    let port = own.rsplit(':').next().unwrap();
    let rebound = format!("evil.example:{port}");
    let (status, answer) = call(&server, "GET", "/rules", &[("Host", &rebound)], "");
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains("the Host header does not name this computer"),
        "{answer}"
    );
    let (status, _) = call(
        &server,
        "GET",
        "/rules",
        &[("Host", &rebound), ("Authorization", &right)],
        "",
    );
    assert_eq!(status, 200);
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let (status, answer) = call(&server, "GET", "/rules", &[("Host", &host)], "");
        assert_eq!(status, 200, "{host}: {answer}");
    }
    // The feed shows every event: another site's page may not open it.
    let (status, _) = call(&server, "GET", "/dashboard/feed", &[evil], "");
    assert_eq!(status, 403);
}

/// The configuration file for a face on every interface with no credential.
fn unguarded_config(dirs: &Dirs, streamerbot: &str) -> std::path::PathBuf {
    let config = dirs.rules.path().join("exposed.toml");
    let mut toml = String::new();
    for face in ["http", "custom", "astro", "socketio"] {
        toml.push_str(&format!("[{face}]\nbind = \"127.0.0.1:0\"\n"));
    }
    toml.push_str(&format!("[streamerbot]\n{streamerbot}"));
    std::fs::write(&config, toml).expect("config written");
    config
}

#[test]
fn a_face_beyond_loopback_with_no_credential_stops_the_start_with_exit_code_2() {
    let dirs = Dirs::new();
    let config = unguarded_config(&dirs, "bind = \"0.0.0.0:0\"\n");
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dirs.data.path())
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for said in [
        "streamerbot listens on 0.0.0.0:0 (beyond this computer) with no streamerbot.password",
        "Set streamerbot.password (not the samples' change-me), or bind it to 127.0.0.1, or set `allow_unauthenticated = true` in [streamerbot]",
    ] {
        assert!(stderr.contains(said), "{stderr}");
    }
}

#[tokio::test]
async fn allow_unauthenticated_starts_it_with_a_warning_in_the_banner() {
    let server = TestServer::start_with(Options {
        streamerbot_toml: "bind = \"0.0.0.0:0\"\nallow_unauthenticated = true\n".into(),
        ..Options::default()
    });
    let warning = server
        .banner()
        .iter()
        .find(|line| line.contains("WARNING"))
        .expect("a warning in the banner");
    assert!(
        warning.contains("streamerbot listens on ws://0.0.0.0:")
            && !warning.contains("0.0.0.0:0/")
            && warning.contains("anyone on your network can connect to it"),
        "{warning}"
    );
    let (mut ws, _) = crate::support::Ws::streamerbot(&server).await;
    let info = ws.request(json!({"request": "GetInfo", "id": "i"})).await;
    assert_eq!(info["status"], "ok");
}

fn token_command(args: &[&str], data: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("the binary runs")
}

#[cfg(unix)]
#[test]
fn the_token_copy_is_its_owners_alone_and_replaces_what_was_there() {
    use std::os::unix::fs::PermissionsExt;
    let dirs = Dirs::new();
    let victim = dirs.rules.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let copy = dirs.data.path().join("http.token");
    std::os::unix::fs::symlink(&victim, &copy).unwrap();
    let server = TestServer::start_in(dirs, Options::default());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let metadata = std::fs::symlink_metadata(&copy).unwrap();
    assert!(metadata.is_file(), "the link was replaced by a file");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        server.admin_token()
    );
}

#[test]
fn the_token_command_prints_the_tokens_of_the_banner_while_it_runs_and_after() {
    let server = TestServer::start();
    let (admin, custom) = (server.admin_token().to_owned(), server.token().to_owned());
    let printed = |args: &[&str], data: &std::path::Path| {
        let output = token_command(args, data);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(printed(&["token", "http"], server.dirs.data.path()), admin);
    assert_eq!(printed(&["token"], server.dirs.data.path()), custom);
    let running = token_command(&["token", "http", "--regenerate"], server.dirs.data.path());
    assert_eq!(running.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&running.stderr).contains("Stop it before regenerating"));
    let (dirs, _) = server.killed();
    assert_eq!(printed(&["token", "http"], dirs.data.path()), admin);
    let regenerated = printed(&["token", "http", "--regenerate"], dirs.data.path());
    assert_ne!(regenerated, admin);
    assert_eq!(printed(&["token", "http"], dirs.data.path()), regenerated);
}

/// The status of a WebSocket upgrade to `url` with `origin`: 101, or the refusal's status.
async fn upgrade(url: &str, origin: Option<&str>) -> u16 {
    let mut request = url.into_client_request().expect("a request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().expect("a header value"));
    }
    match tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("answered in time")
    {
        Ok((_, response)) => response.status().as_u16(),
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{url}: {other}"),
    }
}

#[tokio::test]
async fn websocket_faces_accept_only_their_allowed_origins() {
    let allowed = "allowed_origins = [\"null\", \"https://overlay.example\"]\n".to_owned();
    let server = TestServer::start_with(Options {
        streamerbot_toml: allowed.clone(),
        custom_toml: allowed.clone(),
        astro_toml: allowed.clone(),
        socketio_toml: allowed,
        ..Options::default()
    });
    let open = TestServer::start();
    let custom = format!("{}?token={}", server.url("custom"), server.token());
    for url in [server.url("streamerbot"), &custom, server.url("astro")] {
        assert_eq!(
            upgrade(url, Some("https://evil.example")).await,
            403,
            "{url}"
        );
        for origin in [None, Some("null"), Some("https://overlay.example")] {
            assert_eq!(upgrade(url, origin).await, 101, "{url} {origin:?}");
        }
    }
    assert_eq!(
        upgrade(open.url("streamerbot"), Some("https://evil.example")).await,
        101
    );

    let polling = format!("{}?EIO=4&transport=polling", server.url("socketio"));
    let polled = |origin: &str| {
        ureq::get(&polling)
            .set("Origin", origin)
            .timeout(TIMEOUT)
            .call()
            .map_err(Box::new)
    };
    match polled("https://evil.example").map_err(|error| *error) {
        Err(ureq::Error::Status(403, _)) => {}
        other => panic!("expected 403, got {other:?}"),
    }
    let allowed = polled("https://overlay.example").expect("200 for an allowed page");
    assert_eq!(
        allowed.header("Access-Control-Allow-Origin"),
        Some("https://overlay.example")
    );
}

#[tokio::test]
async fn a_flood_of_refused_requests_does_not_flood_the_log() {
    let server = TestServer::start();
    let started = std::time::Instant::now();
    for _ in 0..200 {
        let (status, _) = call(&server, "POST", "/events", &[JSON], "{}");
        assert_eq!(status, 401);
    }
    let seconds = started.elapsed().as_secs() + 1;
    // Each refusal's line is written before its answer; a line of another kind, written after
    // them all, says the log has been read that far.
    let wrong = format!("{}?token=wrong", server.url("custom"));
    assert_eq!(upgrade(&wrong, None).await, 101);
    server.wait_for_log("custom: refused a connection");
    let logged = server
        .logs()
        .iter()
        .filter(|line| line.contains("http: refused POST /events"))
        .count() as u64;
    assert!(
        (1..=10 * seconds).contains(&logged) && logged < 200,
        "{logged} refusals logged in {seconds} s"
    );
}
