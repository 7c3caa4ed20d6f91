//! `qc check` end to end: exit statuses, the summary line, diagnostics on stderr, JSON output.

use std::process::Command;

fn qc_check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qc")).arg("check").args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_valid_model_prints_a_summary_and_exits_0() {
    let (code, stdout, stderr) = qc_check(&["examples/mlp.qnn"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: model mlp — 3 layers, 26,122 parameters"), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn an_invalid_model_prints_diagnostics_on_stderr_and_exits_1() {
    let (code, stdout, stderr) = qc_check(&["lang/tests/errors/E0030_several_errors_in_one_run.qnn"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.matches("Error:").count(), 3, "{stderr}");
    assert!(stderr.contains("[E0021]") && stderr.contains("did you mean `nearest`?"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour when stderr is not a terminal");
}

#[test]
fn warnings_do_not_fail_the_check() {
    let (code, stdout, stderr) = qc_check(&["lang/tests/errors/W0003_ineffective_chunk.qnn"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(1 warning)"), "{stdout}");
    assert!(stderr.contains("[W0003] Warning"), "{stderr}");
}

#[test]
fn an_unreadable_file_exits_2() {
    let (code, _, stderr) = qc_check(&["no/such/model.qnn"]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: cannot read no/such/model.qnn"), "{stderr}");
}

#[test]
fn json_messages_carry_code_spans_and_hint() {
    let (code, stdout, _) = qc_check(&["--message-format", "json", "lang/tests/errors/E0020_unknown_format.qnn"]);
    assert_eq!(code, 1);
    let line = stdout.lines().next().unwrap();
    for needle in [r#""code":"E0020""#, r#""severity":"error""#, r#""begin":{"line":2,"column":19}"#, r#""hint":"did you mean `e4m3`?""#] {
        assert!(line.contains(needle), "{needle} in {line}");
    }
}
