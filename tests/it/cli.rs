//! The command line: `rules check`, configuration errors and the shipped samples.

use std::process::Command;

use crate::support::{project_dir, Dirs};

fn switchboard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn rules_check_accepts_the_shipped_samples() {
    let rules = project_dir().join("rules");
    let files = std::fs::read_dir(&rules).expect("rules/ exists").count();
    assert!(files > 0, "rules/ ships no samples");
    let output = switchboard(&["rules", "check", rules.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn rules_check_reports_path_pointer_and_reason_and_exits_1() {
    let dirs = Dirs::new();
    dirs.write_rule("broken.action.json", r#"{"kind":"action","schemaVersion":1,"id":"01JC1XMWCEJZ05XHT5GMEJ146S","name":"B","steps":[{"kind":"log"}]}"#);
    let output = switchboard(&["rules", "check", dirs.rules.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("broken.action.json: /steps/0: missing field `message`"),
        "{stdout}"
    );
}

#[test]
fn an_invalid_config_file_stops_the_start_with_exit_code_2() {
    let dirs = Dirs::new();
    let config = dirs.rules.path().join("bad.toml");
    std::fs::write(&config, "[custom]\nbnd = \"127.0.0.1:1\"\n").unwrap();
    let output = switchboard(&["--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("custom.bnd: unknown field `bnd`"),
        "{stderr}"
    );
}
