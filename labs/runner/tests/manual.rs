//! `wgd-lab man --dir DIR` and `wgd-lab completions SHELL`, as a packager
//! or an operator runs them (no root needed).

use std::process::Command;

fn wgd_lab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgd-lab"))
        .args(args)
        .output()
        .expect("wgd-lab runs")
}

#[test]
fn man_writes_wgd_lab_8_and_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let output = wgd_lab(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lab = std::fs::read_to_string(dir.path().join("wgd-lab.8")).unwrap();
    assert!(lab.contains("\n.TH WGD-LAB 8 "), "{lab}");
    assert!(lab.contains("wgd\\-lab\\-up(8)"), "{lab}");
    let up = std::fs::read_to_string(dir.path().join("wgd-lab-up.8")).unwrap();
    assert!(up.contains("\\-\\-no\\-check"), "{up}");
    assert!(up.contains("wgd\\-lab(8), wgd(8)"), "{up}");
}

#[test]
fn completions_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let output = wgd_lab(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for word in ["up", "down", "exec", "no-check"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
}
