//! The `switchboard` binary: parses the command line, loads the configuration and hands over to
//! [`switchboard::app`]. Errors are printed with their causes; exit code 2 for an unusable
//! configuration or start, 1 for invalid rule files.

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use switchboard::cli::{Cli, Command, RulesCommand, TokenOf};
use switchboard::config::Secret;
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
    if matches!(cli.command, None | Some(Command::Serve)) {
        if let Err(refused) = switchboard::faces::exposure::check(&config) {
            return fail(&refused);
        }
    }
    match cli.command {
        None | Some(Command::Serve) => {
            match actix_rt::System::new().block_on(switchboard::app::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error),
            }
        }
        Some(Command::Token { of, regenerate }) => match token(&config, of, regenerate) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error.as_ref()),
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

/// `switchboard token [custom|http] [--regenerate]`: the configured token, else the generated
/// one (from the store, or from its copy in the data dir while Switchboard runs and holds it).
fn token(config: &Config, of: TokenOf, regenerate: bool) -> Result<(), Box<dyn Error>> {
    use switchboard::faces::{custom, http, tokens};
    let (configured, setting, key): (&Secret, _, _) = match of {
        TokenOf::Custom => (&config.custom.token, "custom.token", custom::TOKEN_KEY),
        TokenOf::Http => (&config.http.token, "http.token", http::TOKEN_KEY),
    };
    if !configured.is_empty() {
        println!("{}", configured.expose());
        if regenerate {
            eprintln!(
                "{setting} is set in the configuration, so it stays in use; nothing regenerated"
            );
        }
        return Ok(());
    }
    switchboard::store::create_dir(&config.data_dir)?;
    let store = match switchboard::store::Store::open(&config.data_dir) {
        Ok(store) => store,
        Err(locked) => {
            // Switchboard runs on this data dir: the copy it wrote at start is current.
            let copy = config.data_dir.join(key);
            return match std::fs::read_to_string(&copy) {
                _ if regenerate => Err(format!(
                    "{locked} (is Switchboard running on it? Stop it before regenerating a token)"
                )
                .into()),
                Ok(token) => {
                    println!("{}", token.trim());
                    Ok(())
                }
                Err(_) => Err(Box::new(locked)),
            };
        }
    };
    let runtime = actix_rt::System::new();
    let token = runtime.block_on(async {
        if regenerate {
            let token = tokens::generate();
            store
                .meta()
                .put(key, &serde_json::Value::String(token.clone()))
                .await?;
            tokens::write_copy(&config.data_dir.join(key), &token)?;
            eprintln!("a new token is stored; it takes effect at the next start");
            Ok::<_, Box<dyn Error>>(token)
        } else {
            let (token, _) = tokens::kept(&store, key, configured, setting).await?;
            Ok(token.expose().to_owned())
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
