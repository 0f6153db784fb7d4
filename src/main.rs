//! The `switchboard` binary: parses the command line, loads the configuration and hands over to
//! [`switchboard::app`]. Errors are printed with their causes; exit code 2 for an unusable
//! configuration or start, 1 for invalid rule files.

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use switchboard::cli::{Cli, Command, RulesCommand};
use switchboard::config::{Config, Overrides};

/// Every delivery's mailbox envelope is allocated on the registry's thread and freed on a
/// session's: jemalloc's thread caches take such frees in batches, glibc's do not.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        rules_dir: cli.rules_dir.clone(),
    };
    let loaded = Config::load(cli.config.as_deref(), overrides)
        .and_then(|config| switchboard::outbound::check(&config).map(|()| config));
    let config = match loaded {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    match cli.command {
        None | Some(Command::Serve) => {
            match actix_rt::System::new().block_on(switchboard::app::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error),
            }
        }
        Some(Command::Token { regenerate }) => match token(&config, regenerate) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
        Some(Command::Rules(RulesCommand::Check { dir })) => {
            let dir = dir.unwrap_or(config.rules_dir);
            let loaded = switchboard::engine::loader::check(&dir);
            for line in &loaded.errors {
                println!("{line}");
            }
            if loaded.errors.is_empty() {
                let count = loaded.documents.documents.len();
                println!("{}: {count} documents, all valid", dir.display());
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Some(Command::Rules(RulesCommand::Test { dir })) => {
            let dir = dir.unwrap_or(config.rules_dir);
            let (lines, passed, failed, invalid) = switchboard::engine::dryrun::test_dir(&dir);
            for line in lines {
                println!("{line}");
            }
            println!("{passed} passed, {failed} failed");
            if failed > 0 || invalid {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// `switchboard token [--regenerate]`: the configured token, else the generated one.
fn token(config: &Config, regenerate: bool) -> Result<(), switchboard::store::StoreError> {
    use switchboard::faces::custom::{generate_token, TOKEN_KEY};
    if !config.custom.token.is_empty() {
        println!("{}", config.custom.token.expose());
        if regenerate {
            eprintln!(
                "custom.token is set in the configuration, so it stays in use; nothing regenerated"
            );
        }
        return Ok(());
    }
    std::fs::create_dir_all(&config.data_dir).ok();
    let store = switchboard::store::Store::open(&config.data_dir)?;
    let runtime = actix_rt::System::new();
    let token = runtime.block_on(async {
        if regenerate {
            let token = generate_token();
            store
                .meta()
                .put(TOKEN_KEY, &serde_json::Value::String(token.clone()))
                .await?;
            eprintln!("a new token is stored; it takes effect at the next start");
            Ok(token)
        } else {
            store.meta_string_or_insert(TOKEN_KEY, generate_token).await
        }
    })?;
    println!("{token}");
    Ok(())
}

fn fail(error: &dyn Error) -> ExitCode {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    ExitCode::from(2)
}
