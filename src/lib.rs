//! Switchboard: one self-hosted server that speaks the WebSocket protocols stream tools already
//! speak (Streamer.bot, VMSC custom WebSocket, StreamElements Astro, HoloBridge Socket.IO), with
//! one event bus and a rule engine behind them.
//!
//! # Layout
//! - [`config`], [`cli`]: configuration file, defaults and flags.
//! - [`app`]: opens the store, starts the actors and the faces, prints the banner.
//! - [`event`]: the internal `Event` and loose name matching.
//! - [`names`]: the event sources and types known by name (configured and seen at runtime).
//! - [`frame_header`]: a WebSocket frame's header, read before its payload.
//! - [`jsonpath`]: JSONPath expressions, compiled once and refused when they cannot run.
//! - [`metrics`]: the Prometheus metrics' names and recorder.
//! - [`log_limit`]: warnings a peer causes per request, limited to a burst a second.
//! - [`registry`]: who is subscribed to what; fan-out of encoded frames to outlets.
//! - [`engine`]: injects, calls, action runs, credits.
//! - [`outbound`]: the outbound custom WebSocket client connections.
//! - [`session`]: the generic WebSocket session actor.
//! - [`faces`]: one module per wire protocol.
//! - [`store`]: sled trees and migrations.
//! - [`tls`]: rustls configurations: faces' reloaded certificates, outbound trust.
//! - `mutate` (tests only): generated and mutated input for the property tests of every decoder.
//!
//! # Layers
//! Each module uses only modules of the layers below it, never one above (no import cycles):
//! 1. [`app`], [`cli`]: start everything.
//! 2. [`faces`]: the wire protocols; they use the session, the registry, the engine's messages,
//!    outbound and the store.
//! 3. [`session`]: the WebSocket session; it uses the registry.
//! 4. [`engine`]: it uses the registry, outbound, names and the store.
//! 5. [`registry`], [`outbound`]: they use event, config, names, jsonpath and the store. Outbound
//!    hands the events it receives to whoever [`outbound::Start`] names (the engine), without
//!    knowing it; faces and sessions plug into the registry through its traits.
//! 6. [`names`], [`jsonpath`], [`store`], [`config`], [`event`], [`metrics`], [`frame_header`],
//!    [`tls`], [`log_limit`]: use nothing above them.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod engine;
pub mod event;
pub mod faces;
pub mod frame_header;
pub mod jsonpath;
pub mod log_limit;
pub mod metrics;
#[cfg(test)]
mod mutate;
pub mod names;
pub mod outbound;
pub mod registry;
pub mod session;
pub mod store;
pub mod tls;
