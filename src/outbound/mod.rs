//! The outbound-client manager: Switchboard's custom WebSocket client connections (docs/custom.md,
//! part 2), one [`connection::Connection`] child actor per connection.
//!
//! Connections come from `[[outbound]]` in the file and from the store's `connections` tree
//! (written over the HTTP API); the file wins on a name clash. The manager starts, replaces and
//! stops the children, answers status, and routes `ws.send` frames ([`SendText`]) to them. A
//! child that is deleted or shut down is stopped for good ([`connection::Stop`]); dropping its
//! address alone would not end it (its heartbeat and reader keep an actor alive).

pub mod connection;
mod frames;
pub mod mapping;

use std::collections::BTreeMap;

use actix::prelude::*;
use awc::ws::CloseCode;
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{Map, Value};

use self::connection::{Connection, GetStatus, Reconfigure, Redial, Settings, Status, Stop, Trust};
use self::mapping::Mapping;
use crate::config::{Config, ConfigError, Limits, OutboundAuth, RawOutbound};
use crate::event::Event;
use crate::store::{StoreError, Table};
use crate::tls;

/// Why a frame could not be sent, or a connection could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("no outbound connection named '{0}'")]
    NotFound(String),
    #[error("connection '{0}' is not connected (status: {1})")]
    NotConnected(String, &'static str),
    /// The server is not reading fast enough: the link's write queue has no room for the frame.
    #[error(
        "connection '{name}' has {queued} bytes waiting to be sent (the server is not reading \
         them): a frame of {frame} bytes would take it over limits.outbound_queue_bytes \
         ({limit}); not sent"
    )]
    QueueFull {
        name: String,
        queued: usize,
        frame: usize,
        limit: usize,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("connection '{0}' is defined in the configuration file; change it there")]
    FromFile(String),
    #[error("the store failed: {0}")]
    Store(String),
}

impl From<StoreError> for OutboundError {
    fn from(error: StoreError) -> OutboundError {
        OutboundError::Store(error.to_string())
    }
}

/// Sends one text frame on the named connection.
#[derive(Message)]
#[rtype(result = "Result<(), OutboundError>")]
pub struct SendText {
    pub connection: String,
    pub text: String,
}

/// The status of every connection, by name.
#[derive(Message)]
#[rtype(result = "Vec<Status>")]
pub struct ListConnections;

/// Creates or replaces a runtime connection (persisted in the store) from its JSON settings.
#[derive(Message)]
#[rtype(result = "Result<(), OutboundError>")]
pub struct PutConnection {
    pub name: String,
    pub settings: Value,
}

/// Removes a runtime connection.
#[derive(Message)]
#[rtype(result = "Result<(), OutboundError>")]
pub struct DeleteConnection {
    pub name: String,
}

/// Dials a connection again now, without waiting for its next retry.
#[derive(Message)]
#[rtype(result = "Result<(), OutboundError>")]
pub struct ReconnectConnection {
    pub name: String,
}

/// Turns configured settings into a connection's, checking the URL and compiling the mapping;
/// errors name the key (`mapping."user.id": invalid JSONPath: …`).
pub fn settings(raw: &RawOutbound, limits: &Limits) -> Result<Settings, (String, String)> {
    if raw.name.trim().is_empty() {
        return Err(("name".into(), "must not be empty".into()));
    }
    let secure = raw.url.starts_with("wss://");
    if !secure && !raw.url.starts_with("ws://") {
        return Err(("url".into(), "must be a ws:// or wss:// URL".into()));
    }
    if !secure && raw.ca_file.is_some() {
        return Err(("ca_file".into(), "is only used with a wss:// URL".into()));
    }
    let tls = if secure {
        tls::client::config(raw.ca_file.as_deref())
            .map(Trust::Ready)
            .map_err(|error| ("ca_file".to_owned(), error.with_causes()))?
    } else {
        Trust::Plain
    };
    if raw
        .auth
        .as_ref()
        .is_some_and(|auth: &OutboundAuth| auth.token.is_empty())
    {
        return Err(("auth.token".into(), "must not be empty".into()));
    }
    let mapping = Mapping::compile(&raw.mapping)
        .map_err(|error| (format!("mapping.{:?}", error.target), error.reason))?;
    Ok(Settings {
        name: raw.name.clone(),
        url: raw.url.clone(),
        enabled: raw.enabled,
        source: raw.source.clone().unwrap_or_else(|| raw.name.clone()),
        auth: raw.auth.clone(),
        mapping,
        default_type: raw
            .default_type
            .clone()
            .unwrap_or_else(|| "custom".to_owned()),
        max_frame_bytes: limits.max_frame_bytes,
        max_queue_bytes: limits.outbound_queue_bytes,
        ca_file: raw.ca_file.clone(),
        tls,
    })
}

/// The settings of a connection kept in the store, which started with Switchboard: like
/// [`settings`], but a `ca_file` that does not load (gone since it was PUT) leaves the connection
/// listed, failing each dial with why, rather than gone.
fn stored_settings(raw: &RawOutbound, limits: &Limits) -> Result<Settings, String> {
    match settings(raw, limits) {
        Err((key, reason)) if key == "ca_file" && raw.ca_file.is_some() => {
            let without = RawOutbound {
                ca_file: None,
                ..raw.clone()
            };
            let mut settings =
                settings(&without, limits).map_err(|(key, reason)| format!("{key}: {reason}"))?;
            settings.ca_file = raw.ca_file.clone();
            settings.tls = Trust::Unloaded(format!("ca_file: {reason}"));
            Ok(settings)
        }
        other => other.map_err(|(key, reason)| format!("{key}: {reason}")),
    }
}

struct Child {
    from_file: bool,
    address: Addr<Connection>,
}

/// The manager actor.
pub struct OutboundManager {
    events: Option<Recipient<Received>>,
    configured: Vec<RawOutbound>,
    stored: Table<Value>,
    limits: Limits,
    children: BTreeMap<String, Child>,
}

impl OutboundManager {
    /// A manager for the file's connections and those in `stored`; it dials once it has the
    /// engine ([`Start`]).
    pub fn new(
        configured: Vec<RawOutbound>,
        stored: Table<Value>,
        limits: Limits,
    ) -> OutboundManager {
        OutboundManager {
            events: None,
            configured,
            stored,
            limits,
            children: BTreeMap::new(),
        }
    }

    fn spawn(&mut self, settings: Settings, from_file: bool) {
        let Some(events) = self.events.clone() else {
            return;
        };
        let name = settings.name.clone();
        if let Some(child) = self.children.get(&name) {
            child.address.do_send(Reconfigure(Box::new(settings)));
            return;
        }
        let address = Connection::new(settings, events).start();
        self.children.insert(name, Child { from_file, address });
    }
}

/// Closes every connection with 1001 (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShutDown;

impl Handler<ShutDown> for OutboundManager {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: ShutDown, _: &mut Context<Self>) -> Self::Result {
        let closes: Vec<_> = std::mem::take(&mut self.children)
            .into_values()
            .map(|child| child.address.send(Stop(CloseCode::Away)))
            .collect();
        Box::pin(async move {
            join_all(closes).await;
        })
    }
}

/// Hands the manager where events go (the engine) and dials every connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Start(pub Recipient<Received>);

/// An event a connection received and mapped, for the engine.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Received(pub Event);

/// Checks the file's `[[outbound]]` connections as the manager will, so that a bad one stops
/// the start with `file: outbound[i].key: reason`.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    for (index, raw) in config.outbound.iter().enumerate() {
        if let Err((key, reason)) = settings(raw, &config.limits) {
            return Err(ConfigError::Invalid {
                path: config.origin.clone(),
                key: format!("outbound[{index}].{key}"),
                reason,
            });
        }
    }
    Ok(())
}

impl Actor for OutboundManager {
    type Context = Context<Self>;
}

impl Supervised for OutboundManager {
    fn restarting(&mut self, _: &mut Context<Self>) {
        log::warn!("outbound: the manager restarted");
        self.children.clear();
    }
}

impl Handler<Start> for OutboundManager {
    type Result = ();

    fn handle(&mut self, Start(events): Start, _: &mut Context<Self>) {
        self.events = Some(events);
        for raw in self.configured.clone() {
            match settings(&raw, &self.limits) {
                Ok(settings) => self.spawn(settings, true),
                Err((key, reason)) => log::error!("outbound {}: {key}: {reason}", raw.name),
            }
        }
        let stored = self.stored.scan("").unwrap_or_else(|error| {
            log::error!("outbound: cannot read the stored connections: {error}");
            Vec::new()
        });
        for (name, value) in stored {
            if self.children.contains_key(&name) {
                log::warn!("outbound {name}: defined in the file and in the store; the file's entry is used");
                continue;
            }
            match parse_stored(&name, &value).and_then(|raw| stored_settings(&raw, &self.limits)) {
                Ok(settings) => self.spawn(settings, false),
                Err(reason) => {
                    log::error!("outbound {name}: the stored connection is invalid: {reason}")
                }
            }
        }
    }
}

/// A stored or PUT connection: the `[[outbound]]` keys as JSON; `name` comes from the key.
fn parse_stored(name: &str, value: &Value) -> Result<RawOutbound, String> {
    let mut object: Map<String, Value> = value
        .as_object()
        .cloned()
        .ok_or("a connection is a JSON object")?;
    object.insert("name".into(), Value::String(name.to_owned()));
    RawOutbound::deserialize(Value::Object(object)).map_err(|error| error.to_string())
}

impl Handler<SendText> for OutboundManager {
    type Result = ResponseFuture<Result<(), OutboundError>>;

    fn handle(&mut self, message: SendText, _: &mut Context<Self>) -> Self::Result {
        let Some(child) = self.children.get(&message.connection) else {
            return Box::pin(async move { Err(OutboundError::NotFound(message.connection)) });
        };
        let address = child.address.clone();
        let name = message.connection;
        Box::pin(async move {
            address
                .send(connection::Send(message.text))
                .await
                .unwrap_or(Err(OutboundError::NotConnected(name, "error")))
        })
    }
}

impl Handler<ListConnections> for OutboundManager {
    type Result = ResponseFuture<Vec<Status>>;

    fn handle(&mut self, _: ListConnections, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = self
            .children
            .values()
            .map(|child| child.address.send(GetStatus))
            .collect();
        Box::pin(async move {
            join_all(asks)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect()
        })
    }
}

impl Handler<PutConnection> for OutboundManager {
    type Result = ResponseFuture<Result<(), OutboundError>>;

    fn handle(&mut self, message: PutConnection, _: &mut Context<Self>) -> Self::Result {
        if self
            .children
            .get(&message.name)
            .is_some_and(|child| child.from_file)
        {
            return Box::pin(async move { Err(OutboundError::FromFile(message.name)) });
        }
        let parsed = parse_stored(&message.name, &message.settings).and_then(|raw| {
            settings(&raw, &self.limits).map_err(|(key, reason)| format!("{key}: {reason}"))
        });
        let settings = match parsed {
            Ok(settings) => settings,
            Err(reason) => return Box::pin(async move { Err(OutboundError::Invalid(reason)) }),
        };
        let mut value = message.settings;
        if let Some(object) = value.as_object_mut() {
            object.remove("name");
        }
        let stored = self.stored.clone();
        let name = message.name;
        let written = stored.insert(&name, &value);
        self.spawn(settings, false);
        Box::pin(async move {
            written?;
            stored.flush().await?;
            Ok(())
        })
    }
}

impl Handler<ReconnectConnection> for OutboundManager {
    type Result = Result<(), OutboundError>;

    fn handle(&mut self, message: ReconnectConnection, _: &mut Context<Self>) -> Self::Result {
        let child = self
            .children
            .get(&message.name)
            .ok_or(OutboundError::NotFound(message.name))?;
        child.address.do_send(Redial);
        Ok(())
    }
}

impl Handler<DeleteConnection> for OutboundManager {
    type Result = ResponseFuture<Result<(), OutboundError>>;

    fn handle(&mut self, message: DeleteConnection, _: &mut Context<Self>) -> Self::Result {
        match self.children.get(&message.name) {
            None => return Box::pin(async move { Err(OutboundError::NotFound(message.name)) }),
            Some(child) if child.from_file => {
                return Box::pin(async move { Err(OutboundError::FromFile(message.name)) })
            }
            Some(_) => {}
        }
        // Answered once the link is closed: nothing it carries after the answer becomes an event.
        let stopped = self
            .children
            .remove(&message.name)
            .map(|child| child.address.send(Stop(CloseCode::Normal)));
        let stored = self.stored.clone();
        Box::pin(async move {
            if let Some(stopped) = stopped {
                // An error means the actor has ended already.
                let _ = stopped.await;
            }
            stored.delete(&message.name).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError, Overrides, RawConfig};

    fn checked(text: &str) -> Result<(), String> {
        let raw: RawConfig = toml::from_str(text).unwrap();
        let config = Config::resolve(raw, Overrides::default(), "test.toml").unwrap();
        check(&config).map_err(|error| error.to_string())
    }

    #[test]
    fn an_invalid_outbound_mapping_names_its_target() {
        let text = "[[outbound]]\nname = \"g\"\nurl = \"ws://127.0.0.1:9/\"\nmapping = { \"user.id\" = \"$.a[?(@.b == $.c)]\" }\n";
        let error = checked(text).unwrap_err();
        assert!(
            error.starts_with("test.toml: outbound[0].mapping.\"user.id\": invalid JSONPath"),
            "{error}"
        );
        let nested = "[[outbound]]\nname = \"g\"\nurl = \"ws://127.0.0.1:9/\"\n[outbound.mapping]\nuser.id = \"$.x\"\n";
        assert!(checked(nested).is_ok());
        let tls = "[[outbound]]\nname = \"g\"\nurl = \"wss://example.invalid/\"\n";
        assert!(checked(tls).is_ok());
        let http = "[[outbound]]\nname = \"g\"\nurl = \"https://example.invalid/\"\n";
        assert!(checked(http).unwrap_err().contains("outbound[0].url"));
        let plain = "[[outbound]]\nname = \"g\"\nurl = \"ws://h/\"\nca_file = \"ca.pem\"\n";
        let error = checked(plain).unwrap_err();
        assert!(
            error.contains("outbound[0].ca_file: is only used with a wss:// URL"),
            "{error}"
        );
        let missing =
            "[[outbound]]\nname = \"g\"\nurl = \"wss://h/\"\nca_file = \"/nowhere/ca.pem\"\n";
        let error = checked(missing).unwrap_err();
        assert!(
            error.contains("outbound[0].ca_file: /nowhere/ca.pem: cannot read the file"),
            "{error}"
        );
    }

    proptest::proptest! {
        /// Any `[[outbound]]` table is accepted or refused as `file: outbound[i].key: reason`,
        /// as the start checks it.
        #[test]
        fn every_outbound_table_is_accepted_or_names_its_key(
            table in crate::mutate::mutated_json(vec![serde_json::json!({"outbound": [{
                "name": "mygame", "url": "ws://127.0.0.1:9/", "enabled": false, "source": "mygame",
                "auth": {"token": "abc", "mode": "query"}, "default_type": "custom",
                "mapping": {"type": "$.kind", "room": "$.channel", "user": {"id": "$.player.id"},
                    "data.message": "$.text", "data": {"stats": {"hp": "$.player.hp"}}}}]})]),
        ) {
            let text = crate::mutate::toml_text(&table);
            let Ok(raw) = crate::config::parse(&text, "test.toml") else {
                return Ok(());
            };
            let Ok(config) = Config::resolve(raw, Overrides::default(), "test.toml") else {
                return Ok(());
            };
            if let Err(error) = check(&config) {
                let ConfigError::Invalid { path, key, reason } = error else {
                    return Err(proptest::test_runner::TestCaseError::fail("not an Invalid"));
                };
                proptest::prop_assert_eq!(path.as_str(), "test.toml");
                proptest::prop_assert!(key.starts_with("outbound["), "{}", key);
                proptest::prop_assert!(!reason.is_empty());
            }
        }
    }
}
