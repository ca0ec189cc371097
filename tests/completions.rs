//! `waybill completions SHELL`: the scripts name every verb and complete
//! them in a real bash.

mod common;

use common::{run, stderr, stdout};

#[test]
fn completion_scripts_cover_the_verbs() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for verb in [
            "record-verification",
            "approve-freight",
            "verify-export",
            "status",
        ] {
            assert!(script.contains(verb), "{shell} script lacks {verb}");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));
}

#[test]
fn bash_completes_verbs_and_flags() {
    let script = stdout(&run(&["completions", "bash"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("waybill.bash");
    std::fs::write(&path, script).expect("write script");
    // Completes `waybill prom<TAB>`, then `waybill promote --st<TAB>`.
    let complete = |words: &str, current: usize| {
        let program = format!(
            "source {path:?}; COMP_WORDS=({words}); COMP_CWORD={current}; \
             COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; \
             _waybill waybill \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &program])
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut said: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        said.sort();
        said
    };
    assert_eq!(complete("waybill prom", 1), ["promote", "promotions"]);
    assert_eq!(complete("waybill promote --st", 2), ["--stage"]);
}
