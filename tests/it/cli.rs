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

#[test]
fn a_config_syntax_error_names_its_line_and_column() {
    let dirs = Dirs::new();
    let config = dirs.rules.path().join("bad.toml");
    std::fs::write(&config, "[custom]\nenabled =").unwrap();
    let output = switchboard(&["--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml: line 2, column 10: invalid TOML syntax"),
        "{stderr}"
    );
}

#[test]
fn rules_test_passes_the_shipped_samples() {
    let rules = project_dir().join("rules");
    let output = switchboard(&["rules", "test", rules.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let passed = stdout
        .lines()
        .filter(|line| line.starts_with("ok "))
        .count();
    assert!(
        passed >= 3,
        "expected the spec's three examples to run: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .ends_with(" passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn rules_test_fails_and_names_the_test_when_an_expectation_changes() {
    let dirs = Dirs::new();
    for entry in std::fs::read_dir(project_dir().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace(
            "\"globals\": { \"shoutouts\": 2 }",
            "\"globals\": { \"shoutouts\": 3 }",
        );
        dirs.write_rule(path.file_name().unwrap().to_str().unwrap(), &text);
    }
    let output = switchboard(&["rules", "test", dirs.rules.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL cmd-shoutout.rule.json: a second !so by the same moderator within 60 s is refused; after 61 s it runs again: /expect/globals/shoutouts: expected 3, got 2"),
        "{stdout}"
    );
    assert!(stdout.contains(" passed, 1 failed"), "{stdout}");
}

#[test]
fn modes_limits_and_variables_behave_as_the_spec_says() {
    // Each fixture states the behaviour in its in-file test: single/restart/queued/parallel,
    // global rate limits with their ruleDenied event, per-user cooldowns, set and if.
    let fixtures = project_dir().join("tests/it/fixtures/modes");
    let output = switchboard(&["rules", "test", fixtures.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("7 passed, 0 failed"),
        "{stdout}"
    );
}
