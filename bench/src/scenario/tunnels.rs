//! `tunnels`: T tunnels brought up from one config with `wgd up`, then a
//! second `wgd up` of the same config (the no-change reconcile, what every
//! periodic reconcile of `wgd run` costs), then `wgd down`. Beside it, the
//! same tunnels by hand as a script would make them: `wireguard-go`, `wg
//! set`, `ip address`, `ip link set up` per tunnel (the anchor).
//!
//! The tunnels have one peer each and no endpoint, so nothing is ever
//! sent: the namespace has no other interface than `lo`.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context;
use wgd_labs::{Namespace, unique_name};

use crate::lab::{Keys, Wgd, write_private};
use crate::report::Report;
use crate::{Common, check_interrupted, progress};

const SCENARIO: &str = "tunnels";

pub fn run(wgd: &Wgd, common: &Common, sizes: &[usize], report: &mut Report) -> anyhow::Result<()> {
    let namespace = Namespace::new("bt")?;
    let peer = Keys::generate()?;
    for &size in sizes {
        anyhow::ensure!(size <= 10_000, "at most 10000 tunnels");
        let keys: Vec<Keys> = (0..size)
            .map(|_| Keys::generate())
            .collect::<anyhow::Result<_>>()?;
        let (mut up, mut again, mut down, mut script, mut script_down) =
            (vec![], vec![], vec![], vec![], vec![]);
        for run in 1..=common.runs {
            check_interrupted()?;
            progress(format!(
                "tunnels: {size} tunnels, run {run}/{}",
                common.runs
            ));
            let names: Vec<String> = (0..size).map(|_| unique_name("bt")).collect();
            let config = config(&names, &keys, &peer);
            let path = namespace.dir().join(format!("tunnels-{run}-{size}.toml"));
            write_private(&path, &config)?;
            let path = path.to_str().context("a UTF-8 path")?.to_owned();

            let started = Instant::now();
            wgd.run(&namespace, &["up", &path])?;
            up.push(started.elapsed().as_secs_f64());
            let links = namespace.interfaces()?;
            anyhow::ensure!(
                names.iter().all(|name| links.contains(name)),
                "wgd up did not make every tunnel"
            );
            let started = Instant::now();
            wgd.run(&namespace, &["up", &path])?;
            again.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            wgd.run(&namespace, &["down", &path])?;
            down.push(started.elapsed().as_secs_f64());

            let names: Vec<String> = (0..size).map(|_| unique_name("bs")).collect();
            let (make, remove) = shell(&namespace, &names, &keys, &peer)?;
            let started = Instant::now();
            namespace.sh(&make)?;
            script.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            namespace.sh(&remove)?;
            script_down.push(started.elapsed().as_secs_f64());
        }
        report.add(SCENARIO, "wgd", "up", size, "s", up);
        report.add(
            SCENARIO,
            "shell (wireguard-go, wg, ip)",
            "up",
            size,
            "s",
            script,
        );
        report.add(SCENARIO, "wgd", "no-change reconcile", size, "s", again);
        report.add(SCENARIO, "wgd", "down", size, "s", down);
        report.add(
            SCENARIO,
            "shell (wireguard-go, wg, ip)",
            "down",
            size,
            "s",
            script_down,
        );
    }
    report.note("tunnels: userspace WireGuard (wireguard-go), one process per tunnel");
    Ok(())
}

fn config(names: &[String], keys: &[Keys], peer: &Keys) -> String {
    let mut text = String::new();
    for (index, (name, keys)) in names.iter().zip(keys).enumerate() {
        let _ = write!(
            text,
            "[[tunnel]]\nname = \"{name}\"\nprivate_key = \"{}\"\nlisten_port = {}\n\
             address = [\"{}/31\"]\n\n[[tunnel.peer]]\npublic_key = \"{}\"\n\n",
            keys.private,
            40_000 + index,
            address(index),
            peer.public,
        );
    }
    text
}

/// 10.128.0.0/31, 10.128.0.2/31, ...
fn address(index: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(0x0a80_0000 + 2 * index as u32)
}

/// The shell anchor's scripts: make the tunnels, and remove them.
fn shell(
    namespace: &Namespace,
    names: &[String],
    keys: &[Keys],
    peer: &Keys,
) -> anyhow::Result<(String, String)> {
    let (mut make, mut remove) = (String::from("set -e\n"), String::from("set -e\n"));
    for (index, (name, keys)) in names.iter().zip(keys).enumerate() {
        let key_file = namespace.dir().join(format!("{name}.key"));
        write_private(&key_file, &keys.private)?;
        let _ = writeln!(
            make,
            "wireguard-go {name} >/dev/null 2>&1\n\
             wg set {name} private-key {} listen-port {} peer {} allowed-ips 0.0.0.0/0,::/0\n\
             ip address add {}/31 dev {name}\nip link set {name} up",
            key_file.display(),
            40_000 + index,
            peer.public,
            address(index),
        );
        let _ = writeln!(remove, "ip link del {name}");
    }
    Ok((make, remove))
}
