//! The one integration-test binary: every test boots the real server (see `support`) and talks
//! to it over real sockets, with raw clients and with the real npm and PyPI clients.

mod access;
mod astro;
mod budgets;
mod cli;
mod clients;
mod crash;
mod custom;
mod dashboard;
mod engine;
mod examples;
mod fuzz;
mod http;
mod limits;
mod outbound;
mod socketio;
mod store;
mod streamerbot;
mod support;
mod tls;
