//! Switchboard: one self-hosted server that speaks the WebSocket protocols stream tools already
//! speak (Streamer.bot, VMSC custom WebSocket, StreamElements Astro, HoloBridge Socket.IO), with
//! one event bus and a rule engine behind them.
//!
//! # Layout
//! - [`config`], [`cli`]: configuration file, defaults and flags.
//! - [`app`]: opens the store, starts the actors, binds the faces, prints the banner.
//! - [`event`]: the internal `Event` and loose name matching.
//! - [`registry`]: who is subscribed to what; fan-out of encoded frames.
//! - [`engine`]: injects, calls, action runs, credits.
//! - [`outbound`]: the outbound custom WebSocket client connections.
//! - [`session`]: the generic WebSocket session actor.
//! - [`faces`]: one module per wire protocol.
//! - [`store`]: sled trees and migrations.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod engine;
pub mod event;
pub mod faces;
pub mod outbound;
pub mod registry;
pub mod session;
pub mod store;
