//! The command line (docs/configuration.md): `switchboard [serve] [--config FILE] [--data-dir DIR]
//! [--rules-dir DIR]`, `switchboard rules check|test [DIR]` and `switchboard token [custom|http]
//! [--regenerate]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "One server for the Streamer.bot, VMSC, Astro and HoloBridge WebSocket protocols, with a rule engine behind them."
)]
pub struct Cli {
    /// Configuration file (default: ./switchboard.toml when it exists)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the sled database lives (beats the file's data_dir)
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the rule and action files live (beats the file's rules_dir)
    #[arg(long, global = true, value_name = "DIR")]
    pub rules_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default)
    Serve,
    /// Work with rule and action files
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print a token (or replace the generated one)
    Token {
        /// Whose: the custom face's, or the HTTP API's and dashboard's admin token
        #[arg(value_enum, default_value_t = TokenOf::Custom)]
        of: TokenOf,
        /// Generate a new token, effective from the next start
        #[arg(long)]
        regenerate: bool,
    },
}

/// The faces with a token Switchboard can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenOf {
    /// The custom face's (`custom.token`)
    Custom,
    /// The HTTP API's and the dashboard's admin token (`http.token`)
    Http,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate the files; prints `path: pointer: reason` lines and exits 1 on error
    Check {
        /// The folder (default: the configured rules_dir)
        dir: Option<PathBuf>,
    },
    /// Run the tests embedded in the files (dry runs on a virtual clock); exits 1 on failure
    Test {
        /// The folder (default: the configured rules_dir)
        dir: Option<PathBuf>,
    },
}
