//! `wgd mesh` as an operator runs it: a mesh file in a directory, `init`
//! for the keys, `check`, `render` for every site, and each rendered
//! config accepted by `wgd up --dry-run` in a fresh namespace. Meshes of 3
//! and 20 sites round-trip; meshes with an address or a key used twice are
//! refused by `check` and by `render`, with the reason. Last, a rendered
//! 3-site mesh comes up for real: sites joined by a `wan` router, BGP over
//! the tunnels, every LAN reaching the others.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use wgd_labs::{Daemon, Namespace, link, unique_name, wait_for};
use wgd_tests::Wgd;
use wgd_tests::bgp::{ping, summary};

/// `[[site]]` N of a mesh: underlay 198.18.N.2, AS 6500N, LAN 192.168.N.0/24.
fn site(n: usize) -> String {
    format!(
        "\n[[site]]\nname = \"site{n}\"\nendpoint = \"198.18.{n}.2\"\nasn = {}\nlans = [\"192.168.{n}.0/24\"]\n",
        65000 + n
    )
}

fn mesh_text(pool: &str, sites: usize) -> String {
    let mut text = format!(
        "[mesh]\npool = \"{pool}\"\nlisten_port = 51820\n\n[bgp]\nhold_time = 9\ngraceful_restart = false\n"
    );
    text.extend((1..=sites).map(site));
    text
}

/// A mesh file in a directory of its own, removed when dropped.
struct MeshDir {
    dir: tempfile::TempDir,
    file: String,
}

impl MeshDir {
    fn new(text: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("wgd-mesh-").tempdir()?;
        let file = dir.path().join("mesh.toml");
        fs::write(&file, text)?;
        let file = file.to_str().unwrap_or_default().to_owned();
        Ok(Self { dir, file })
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `wgd mesh <command> <mesh file> [args]` on the host: it touches no
    /// interface.
    fn wgd(&self, wgd: &Wgd, command: &str, args: &[&str]) -> anyhow::Result<Output> {
        let mut argv = vec!["mesh", command, self.file.as_str()];
        argv.extend_from_slice(args);
        wgd.output_with_stdin(&argv, "")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Asserts `output` is a refusal (exit 2, nothing on stdout) whose lines
/// all name the mesh file and one of them holds `reason`.
fn assert_refused(what: &str, output: &Output, mesh: &MeshDir, reason: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{what}: {text}");
    assert!(
        stdout(output).is_empty(),
        "{what} printed {}",
        stdout(output)
    );
    assert!(
        text.lines()
            .all(|line| line.starts_with(&format!("{}:", mesh.file))),
        "{what}: a line without file:line:\n{text}"
    );
    assert!(text.contains(reason), "{what}: no \"{reason}\" in:\n{text}");
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .map(|meta| meta.permissions().mode() & 0o7777)
        .unwrap_or_default()
}

/// init, check, render every site twice, and `wgd up --dry-run` each
/// rendered config in a fresh namespace.
fn round_trip(sites: usize, pool: &str) -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let mesh = MeshDir::new(&mesh_text(pool, sites))?;
    let before = mesh.wgd(&wgd, "check", &[])?;
    assert_refused("check before init", &before, &mesh, "(run wgd mesh init)");

    let init = mesh.wgd(&wgd, "init", &[])?;
    assert_success("init", &init);
    let created: Vec<String> = (1..=sites)
        .map(|n| format!("created site{n}/private.key site{n}/public.key"))
        .collect();
    assert_eq!(stdout(&init).lines().collect::<Vec<_>>(), created);
    let mut keys = Vec::new();
    for n in 1..=sites {
        let private = mesh.path(&format!("site{n}/private.key"));
        assert_eq!(mode(&private), 0o600, "{}", private.display());
        assert_eq!(mode(&mesh.path(&format!("site{n}"))), 0o700);
        keys.push(fs::read(&private)?);
    }
    let again = mesh.wgd(&wgd, "init", &[])?;
    assert_success("init again", &again);
    assert!(
        stdout(&again).lines().all(|line| line.starts_with("kept ")),
        "{}",
        stdout(&again)
    );
    for (n, key) in (1..=sites).zip(&keys) {
        assert_eq!(&fs::read(mesh.path(&format!("site{n}/private.key")))?, key);
    }

    let check = mesh.wgd(&wgd, "check", &[])?;
    assert_success("check", &check);
    assert_eq!(stdout(&check).lines().count(), 1, "{}", stdout(&check));
    assert!(
        stdout(&check).contains(&format!("ok: {sites} sites")),
        "{}",
        stdout(&check)
    );

    for n in 1..=sites {
        let name = format!("site{n}");
        let rendered = mesh.wgd(&wgd, "render", &[&name])?;
        assert_success("render", &rendered);
        let path = mesh.path(&format!("site{n}/wgd.toml"));
        let first = fs::read(&path)?;
        let again = mesh.wgd(&wgd, "render", &[&name])?;
        assert_success("render again", &again);
        assert_eq!(fs::read(&path)?, first, "{name}: a second render differs");
        let printed = mesh.wgd(&wgd, "render", &[&name, "-o", "-"])?;
        assert_eq!(
            printed.stdout, first,
            "{name}: `-o -` differs from the file"
        );

        let namespace = Namespace::new("mesh")?;
        let config = path.to_str().unwrap_or_default();
        let dry = wgd.run(&namespace, &["up", config, "--dry-run"])?;
        let created = dry
            .lines()
            .filter(|line| line.contains(": create interface"))
            .count();
        assert_eq!(created, sites - 1, "{name}: `up --dry-run` printed:\n{dry}");
        assert!(
            dry.lines().all(|line| line.starts_with("[dry-run] ")),
            "{dry}"
        );
        assert!(
            namespace
                .interfaces()?
                .iter()
                .all(|interface| interface == "lo"),
            "--dry-run made interfaces"
        );
    }
    Ok(())
}

#[test]
fn a_three_site_mesh_round_trips() -> anyhow::Result<()> {
    round_trip(3, "10.255.0.0/24")
}

#[test]
fn a_twenty_site_mesh_round_trips() -> anyhow::Result<()> {
    // 190 pairs: more /31s than a /24 has.
    let wgd = Wgd::new()?;
    let small = MeshDir::new(&mesh_text("10.255.0.0/24", 20))?;
    let refused = small.wgd(&wgd, "init", &[])?;
    assert_refused(
        "init with a pool too small",
        &refused,
        &small,
        "pool 10.255.0.0/24 holds 128 /31s, 20 sites need 190 (one per pair of sites): use a /23 or shorter",
    );
    round_trip(20, "10.255.0.0/23")
}

#[test]
fn a_mesh_with_an_address_used_twice_is_refused_with_the_reason() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let valid = mesh_text("10.255.0.0/24", 3);
    let cases = [
        (
            "a LAN twice",
            valid.replace("192.168.3.0/24", "192.168.1.0/24"),
            "site \"site3\": lan 192.168.1.0/24 overlaps site \"site1\"'s lan 192.168.1.0/24",
        ),
        (
            "an endpoint twice",
            valid.replace("198.18.3.2", "198.18.2.2"),
            "site \"site3\": endpoint 198.18.2.2 is also site \"site2\"'s",
        ),
        (
            "a pool over a LAN",
            valid.replace("10.255.0.0/24", "192.168.0.0/16"),
            "site \"site1\": lan 192.168.1.0/24 overlaps the tunnel pool 192.168.0.0/16",
        ),
    ];
    for (what, text, reason) in cases {
        // Keys made for the valid mesh: only the address is wrong.
        let mesh = MeshDir::new(&valid)?;
        assert_success("init", &mesh.wgd(&wgd, "init", &[])?);
        fs::write(&mesh.file, &text)?;
        assert_refused(what, &mesh.wgd(&wgd, "check", &[])?, &mesh, reason);
        let render = mesh.wgd(&wgd, "render", &["site1"])?;
        assert_refused(what, &render, &mesh, reason);
        assert!(!mesh.path("site1/wgd.toml").exists(), "{what}: rendered");
    }
    Ok(())
}

#[test]
fn a_mesh_with_a_key_used_twice_is_refused_with_the_reason() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let mesh = MeshDir::new(&mesh_text("10.255.0.0/24", 3))?;
    assert_success("init", &mesh.wgd(&wgd, "init", &[])?);
    for file in ["private.key", "public.key"] {
        fs::copy(
            mesh.path(&format!("site1/{file}")),
            mesh.path(&format!("site2/{file}")),
        )?;
    }
    let reason = "site \"site2\": its public key is also site \"site1\"'s";
    assert_refused("check", &mesh.wgd(&wgd, "check", &[])?, &mesh, reason);
    for site in ["site1", "site2", "site3"] {
        let render = mesh.wgd(&wgd, "render", &[site])?;
        assert_refused("render", &render, &mesh, reason);
    }
    // init keeps the copied keys: replacing a key is the operator's call.
    let init = mesh.wgd(&wgd, "init", &[])?;
    assert!(
        stdout(&init).contains("kept site2/private.key site2/public.key"),
        "{}",
        stdout(&init)
    );
    // Removing them and running init again fixes the mesh.
    fs::remove_file(mesh.path("site2/private.key"))?;
    fs::remove_file(mesh.path("site2/public.key"))?;
    assert_success("init after removing", &mesh.wgd(&wgd, "init", &[])?);
    assert_success("check after init", &mesh.wgd(&wgd, "check", &[])?);
    Ok(())
}

/// `m` and `pid` in base 36: with a digit, a short name that no other
/// process's tunnels have, and short enough that two make a tunnel name
/// (`m2n9c1-m2n9c2`: 13 bytes of the 15 an interface name has).
fn short_tag(pid: u32) -> String {
    let mut digits = Vec::new();
    let mut rest = pid;
    loop {
        digits.push(char::from_digit(rest % 36, 36).unwrap_or('0'));
        rest /= 36;
        if rest == 0 {
            break;
        }
    }
    digits.push('m');
    digits.into_iter().rev().collect()
}

/// One site of the live mesh.
struct LiveSite {
    namespace: Namespace,
    socket: String,
}

/// Runs the rendered configs of a 3-site mesh: each site's underlay address
/// 198.18.N.2/24 towards a `wan` namespace that routes between them. Site
/// and short names carry this process's id, so that the tunnels' names
/// (which wireguard-go's sockets share with every namespace) are unique on
/// the machine.
#[test]
fn a_rendered_three_site_mesh_comes_up_and_routes_between_lans() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let tag = short_tag(std::process::id());
    let mut text = mesh_text("10.255.0.0/24", 3);
    for n in 1..=3 {
        text = text.replace(
            &format!("name = \"site{n}\""),
            &format!("name = \"site{n}\"\nshort_name = \"{tag}{n}\""),
        );
    }
    let mesh = MeshDir::new(&text)?;
    assert_success("init", &mesh.wgd(&wgd, "init", &[])?);
    assert_success("check", &mesh.wgd(&wgd, "check", &[])?);

    let wan = Namespace::new("wan")?;
    wan.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    let mut sites = Vec::new();
    let mut daemons: Vec<Daemon> = Vec::new();
    for n in 1..=3 {
        let namespace = Namespace::new(&format!("site{n}"))?;
        namespace.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        namespace.add_address("lo", &format!("192.168.{n}.1/24"))?;
        let (wan_if, site_if) = (unique_name("w"), unique_name("s"));
        link(&wan, &wan_if, &namespace, &site_if)?;
        wan.add_address(&wan_if, &format!("198.18.{n}.1/24"))?;
        namespace.add_address(&site_if, &format!("198.18.{n}.2/24"))?;
        namespace.add_route(&format!("198.18.0.0/16 via 198.18.{n}.1"))?;

        let name = format!("site{n}");
        assert_success("render", &mesh.wgd(&wgd, "render", &[&name])?);
        // Each namespace's daemon needs a socket of its own: they share a
        // file system (test-only: a deployed site has /run/wgd to itself).
        let socket = namespace.dir().join("wgd.sock");
        let socket = socket.to_str().unwrap_or_default().to_owned();
        let path = mesh.path(&format!("{name}/wgd.toml"));
        let rendered = fs::read_to_string(&path)?;
        let config = format!("[daemon]\napi = \"{socket}\"\n\n{rendered}");
        fs::write(&path, config)?;
        let path = path.to_str().unwrap_or_default().to_owned();
        daemons.push(wgd.spawn(&namespace, &["run", "-c", &path])?);
        sites.push(LiveSite { namespace, socket });
    }
    let logs = |daemons: &[Daemon]| {
        daemons
            .iter()
            .enumerate()
            .map(|(i, daemon)| format!("--- site{}:\n{}", i + 1, daemon.log()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_for(
        Duration::from_secs(40),
        "every BGP session established",
        || {
            sites.iter().all(|site| {
                let summary = summary(&wgd, &site.namespace, &site.socket);
                summary["neighbors"].as_array().is_some_and(|neighbors| {
                    neighbors.len() == 2
                        && neighbors
                            .iter()
                            .all(|neighbor| neighbor["state"] == "established")
                })
            })
        },
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", logs(&daemons)))?;
    wait_for(
        Duration::from_secs(20),
        "every LAN reaching the other two",
        || {
            (0..3).all(|i| {
                (0..3).filter(|j| *j != i).all(|j| {
                    ping(
                        sites[i].namespace.name(),
                        &format!("192.168.{}.1", i + 1),
                        &format!("192.168.{}.1", j + 1),
                    )
                })
            })
        },
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", logs(&daemons)))?;
    // Site 1 reaches site 2's LAN over their own tunnel, learned by BGP.
    let route = sites[0]
        .namespace
        .check(&["ip", "route", "show", "192.168.2.0/24"])?;
    assert!(
        route.contains(&format!("dev {tag}1-{tag}2")),
        "site1's route to site2's LAN: {route}"
    );
    Ok(())
}
