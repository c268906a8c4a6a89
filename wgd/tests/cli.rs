//! The `wgd` binary's commands that touch no interface, run as an operator
//! would: `--version`, and `check -c FILE` on good and broken configs.
//! No root needed: `check` only reads.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEY_A: &str = "GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=";
const PUBLIC_B: &str = "uKjZpzBmrsp7YGqhpTLajsk2XiKj0HHYoRMkLVOaE2c=";

/// Runs `wgd <args>` with its state folder pointed at `state` (which a
/// command that changes nothing must not create).
fn wgd(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgd"))
        .args(args)
        .env("WGD_STATE_DIR", state)
        .env_remove("WGD_LOG")
        .output()
        .expect("wgd runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `contents` as `name` in `dir`, readable by its owner only.
fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn tunnel(name: &str, port: u16) -> String {
    format!(
        "[[tunnel]]\nname = \"{name}\"\nprivate_key = \"{KEY_A}\"\nlisten_port = {port}\n\
         address = [\"10.9.0.1/24\"]\n\n[[tunnel.peer]]\npublic_key = \"{PUBLIC_B}\"\n"
    )
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let dir = tempfile::tempdir().unwrap();
    let output = wgd(&dir.path().join("state"), &["--version"]);
    assert!(output.status.success());
    let commit = std::env::var("WGD_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(|| {
            let output = Command::new("git")
                .args([
                    "-C",
                    env!("CARGO_MANIFEST_DIR"),
                    "rev-parse",
                    "--short",
                    "HEAD",
                ])
                .output()
                .ok()?;
            output
                .status
                .success()
                .then(|| text(&output.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        text(&output.stdout).trim(),
        format!("wgd {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_passes_a_good_config_and_says_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let text_config = format!("{}\n{}", tunnel("wg-ca", 51820), tunnel("wg-cb", 51821));
    let path = write(dir.path(), "wgd.toml", &text_config);
    let state = dir.path().join("state");
    let output = wgd(&state, &["check", "-c", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        format!("{}: ok: 2 tunnels (wg-ca, wg-cb)\n", path.display())
    );
    assert_eq!(text(&output.stderr), "");
    assert!(!state.exists(), "check made wgd's state folder");
}

#[test]
fn check_prints_every_error_at_its_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    // Line 4: a port out of range; line 14: a bad address.
    let broken = format!(
        "{}\n{}",
        tunnel("wg-ca", 51820).replace("51820", "99999"),
        tunnel("wg-cb", 51821).replace("10.9.0.1/24", "10.9.0.1/99")
    );
    let path = write(dir.path(), "wgd.toml", &broken);
    let state = dir.path().join("state");
    let output = wgd(&state, &["check", "-c", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let file = path.display().to_string();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with(&format!("{file}:4: ")), "{stderr}");
    assert!(lines[1].starts_with(&format!("{file}:14: ")), "{stderr}");
    assert_eq!(
        lines[2],
        format!("{file}: 2 errors: `wgd run` would refuse this config")
    );
    assert_eq!(text(&output.stdout), "");
    assert!(!state.exists(), "check made wgd's state folder");
}

#[test]
fn check_reads_wg_quick_files_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "[Interface]\nPrivateKey = {KEY_A}\nListenPort = 51820\n\n[Peer]\nPublicKey = {PUBLIC_B}\nAllowedIPs = 10.0.0.2/32\n"
    );
    let path = write(dir.path(), "wg-cq.conf", &good);
    let output = wgd(dir.path(), &["check", "-c", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        format!("{}: ok: 1 tunnel (wg-cq)\n", path.display())
    );

    let path = write(
        dir.path(),
        "wg-cr.conf",
        &good.replace("ListenPort = 51820", "ListenPort = x"),
    );
    let output = wgd(dir.path(), &["check", "-c", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("{}:3: ", path.display())),
        "{stderr}"
    );
    // Key material never appears, even in an error about its line.
    assert!(!stderr.contains(KEY_A), "{stderr}");
}

#[test]
fn check_counts_a_broken_included_file_that_run_would_leave_out() {
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "[daemon]\ninclude = [\"peers/*.conf\"]\n\n{}",
        tunnel("wg-ca", 51820)
    );
    let path = write(dir.path(), "wgd.toml", &main);
    fs::create_dir(dir.path().join("peers")).unwrap();
    let included = write(
        &dir.path().join("peers"),
        "wg-ci.conf",
        &format!("[Interface]\nPrivateKey = {KEY_A}\nMTU = lots\n"),
    );
    let output = wgd(dir.path(), &["check", "-c", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{}:3: ", included.display())),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        format!(
            "{}: 1 error: `wgd run` would leave out {}",
            path.display(),
            included.display()
        )
    );
}

#[test]
fn check_refuses_a_source_address_the_host_lacks() {
    let dir = tempfile::tempdir().unwrap();
    // 192.0.2.0/24 is for documentation: no host has it.
    let main = format!(
        "[bridge]\nsource = [\"192.0.2.201\"]\n\n{}",
        tunnel("wg-ca", 51820)
    );
    let path = write(dir.path(), "wgd.toml", &main);
    let output = wgd(dir.path(), &["check", "-c", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:2: [bridge] source 192.0.2.201 is not an address of this host",
            path.display()
        )),
        "{stderr}"
    );
    // The tunnel's own address counts: the reconcile at start brings it.
    let path = write(
        dir.path(),
        "wgd.toml",
        &main.replace("192.0.2.201", "10.9.0.1"),
    );
    let output = wgd(dir.path(), &["check", "-c", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn completions_cover_every_command_and_load_in_bash() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let output = wgd(dir.path(), &["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", text(&output.stderr));
        let script = text(&output.stdout);
        for word in ["run", "check", "down-on-exit", "userspace"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    // The bash script registers itself when sourced.
    let script = write(
        dir.path(),
        "wgd.bash",
        &text(&wgd(dir.path(), &["completions", "bash"]).stdout),
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p wgd", script.display()))
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("wgd"));
    let output = wgd(dir.path(), &["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn man_writes_the_command_pages_and_wgd_toml_5() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("pages");
    let output = wgd(dir.path(), &["man", "--dir", pages.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for name in [
        "wgd.8",
        "wgd-run.8",
        "wgd-check.8",
        "wgd-route-add.8",
        "wgd.toml.5",
    ] {
        let page =
            fs::read_to_string(pages.join(name)).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(page.contains("\n.SH NAME\n"), "{name}:\n{page}");
        assert!(page.contains(".SH \"SEE ALSO\"\n"), "{name}:\n{page}");
    }
    let run = fs::read_to_string(pages.join("wgd-run.8")).unwrap();
    assert!(run.contains("\\-\\-down\\-on\\-exit"), "{run}");
    let format = fs::read_to_string(pages.join("wgd.toml.5")).unwrap();
    assert!(format.starts_with(".TH WGD.TOML 5 "), "{format}");
    assert!(format.contains("\n.SH [[tunnel.peer]]\n"), "{format}");
    // Every page written is named on stdout.
    let listed = text(&output.stdout);
    let written = fs::read_dir(&pages).unwrap().count();
    assert_eq!(listed.lines().count(), written, "{listed}");
}
