//! The real client suites: installs the npm and pip packages under `tests/clients` once per test
//! run (failing, never skipping, when that is impossible) and runs client scripts with a deadline.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::project_dir;

/// How long one client script may run.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn clients_dir() -> PathBuf {
    project_dir().join("tests").join("clients")
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|error| format!("{what}: cannot run: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The folder with `node_modules` installed from `package-lock.json`.
pub fn node_dir() -> PathBuf {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = clients_dir();
    let installed = INSTALLED.get_or_init(|| {
        if dir
            .join("node_modules/@streamerbot/client/package.json")
            .is_file()
            && dir.join("node_modules/ws/package.json").is_file()
            && dir
                .join("node_modules/socket.io-client/package.json")
                .is_file()
            && dir
                .join("node_modules/playwright-core/package.json")
                .is_file()
        {
            return Ok(());
        }
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "npm ci in tests/clients",
        )
    });
    if let Err(error) = installed {
        panic!("the Node client suite cannot be installed: {error}");
    }
    dir
}

/// Where Debian's Chromium is; the browser tests drive it with playwright-core.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Makes sure Debian's `chromium` package is installed (installing it with apt-get when it is
/// not), failing, never skipping, when that is impossible.
pub fn chromium() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        if std::path::Path::new(CHROMIUM).is_file() {
            return Ok(());
        }
        let install = || {
            run(
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "chromium"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
                "apt-get install chromium",
            )
        };
        // A fresh machine's package lists may be empty or old: update them once and retry.
        install().or_else(|_| {
            run(
                Command::new("apt-get").args(["update", "-q"]),
                "apt-get update",
            )?;
            install()
        })
    });
    if let Err(error) = installed {
        panic!("Chromium cannot be installed for the browser tests: {error}");
    }
}

/// The Python interpreter of `tests/clients/.venv`, with `requirements.txt` installed.
pub fn python() -> PathBuf {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = clients_dir();
    let python = dir.join(".venv/bin/python");
    let installed = INSTALLED.get_or_init(|| {
        let ready = python.is_file()
            && Command::new(&python)
                .args([
                    "-c",
                    "import pystreamerbot, websockets, socketio, aiohttp, prometheus_client",
                ])
                .output()
                .is_ok_and(|output| output.status.success());
        if ready {
            return Ok(());
        }
        run(
            Command::new("python3")
                .args(["-m", "venv", ".venv"])
                .current_dir(&dir),
            "python3 -m venv tests/clients/.venv",
        )?;
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "-r", "requirements.txt"])
                .current_dir(&dir),
            "pip install -r tests/clients/requirements.txt",
        )
    });
    if let Err(error) = installed {
        panic!("the Python client suite cannot be installed: {error}");
    }
    python
}

/// What a client script printed.
pub struct ScriptOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptOutput {
    /// The lines the script printed on stdout.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Fails the test, showing everything the script printed, unless it succeeded.
    pub fn assert_success(&self) {
        assert!(
            self.success,
            "the client script failed.\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
    }
}

/// Runs `program args…` in `tests/clients` with more environment variables, killed after
/// [`SCRIPT_TIMEOUT`].
pub async fn run_script(
    program: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> ScriptOutput {
    let child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(clients_dir())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} {args:?} did not finish within {SCRIPT_TIMEOUT:?}",
                program.display()
            )
        })
        .expect("the client script starts");
    ScriptOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A client script still running, read line by line.
pub struct Streaming {
    _child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Streaming {
    /// Starts a Node (`node`) or Python (otherwise) script of `tests/clients`.
    pub fn start(script: &str, args: &[&str]) -> Streaming {
        Streaming::start_with(script, args, &[])
    }

    /// The same, with more environment variables (`NODE_PATH` is set to the installed modules).
    pub fn start_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> Streaming {
        use tokio::io::AsyncBufReadExt;
        let program = if script.ends_with(".mjs") || script.ends_with(".js") {
            node_dir();
            PathBuf::from("node")
        } else {
            python()
        };
        let mut child = tokio::process::Command::new(program)
            .arg(script)
            .args(args)
            .current_dir(clients_dir())
            .env("NODE_PATH", clients_dir().join("node_modules"))
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the client script starts");
        let stdout = child.stdout.take().expect("piped stdout");
        Streaming {
            _child: child,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    /// The script's next line on stdout, within [`SCRIPT_TIMEOUT`].
    pub async fn line(&mut self) -> String {
        tokio::time::timeout(SCRIPT_TIMEOUT, self.lines.next_line())
            .await
            .expect("a line within the script timeout")
            .expect("stdout is readable")
            .expect("the script printed another line before it ended")
    }
}

/// Runs a Node script of `tests/clients`.
pub async fn node(script: &str, args: &[&str]) -> ScriptOutput {
    node_with(script, args, &[]).await
}

/// Runs a Node script of `tests/clients` with more environment variables.
pub async fn node_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> ScriptOutput {
    node_dir();
    let mut all = vec![script];
    all.extend_from_slice(args);
    run_script(std::path::Path::new("node"), &all, env).await
}

/// Runs a Python script of `tests/clients`.
pub async fn python_script(script: &str, args: &[&str]) -> ScriptOutput {
    let python = python();
    let mut all = vec![script];
    all.extend_from_slice(args);
    run_script(&python, &all, &[]).await
}
