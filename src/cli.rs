//! The command line (docs/configuration.md): `switchboard [serve] [--config FILE] [--data-dir DIR]
//! [--rules-dir DIR]`, `switchboard rules check|test [DIR]` and `switchboard token [--regenerate]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Print the custom face's token (or replace the generated one)
    Token {
        /// Generate a new token, effective from the next start
        #[arg(long)]
        regenerate: bool,
    },
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
