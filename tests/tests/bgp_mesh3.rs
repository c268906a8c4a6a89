//! Three sites in a full mesh of wgd tunnels, each running `wgd run` with
//! the built-in BGP speaker and originating its LAN: they converge so that
//! each LAN reaches the other two, and cutting one tunnel's underlay
//! reroutes its traffic through the third site.

use std::time::Duration;

use wgd_labs::{Daemon, Namespace, unique_name, wait_for};
use wgd_tests::bgp::{ping, summary};
use wgd_tests::{KeyPair, Wgd, underlay, write_config};

const PORT: u16 = 51820;

struct Site {
    index: usize,
    namespace: Namespace,
    keys: KeyPair,
    socket: String,
    config: String,
}

impl Site {
    fn lan_host(&self) -> String {
        format!("192.168.{}.1", self.index + 1)
    }

    fn lan(&self) -> String {
        format!("192.168.{}.0/24", self.index + 1)
    }
}

/// The link between sites `i` < `j`: its underlay /30 and tunnel /31.
fn underlay_address(i: usize, j: usize, side: usize) -> String {
    format!("198.18.{}{}.{}", i + 1, j + 1, side + 1)
}

fn tunnel_address(i: usize, j: usize, side: usize) -> String {
    format!("10.25{}.{}.{}", i + 1, j + 1, side)
}

fn tunnel_name(names: &[[String; 3]; 3], i: usize, j: usize) -> &str {
    &names[i][j]
}

fn route_dev(site: &Site, prefix: &str) -> String {
    site.namespace
        .check(&["ip", "route", "show", prefix])
        .unwrap_or_default()
}

/// Whether `from`'s LAN host gets an answer from `to`'s.
fn pings(from: &Site, to: &Site) -> bool {
    ping(from.namespace.name(), &from.lan_host(), &to.lan_host())
}

#[test]
fn a_three_site_mesh_converges_and_reroutes_around_a_cut_tunnel() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let mut sites = Vec::new();
    for index in 0..3 {
        let namespace = Namespace::new(&format!("mesh{}", index + 1))?;
        namespace.add_address("lo", &format!("192.168.{}.1/24", index + 1))?;
        // Each site is a router: it carries the others' traffic when a tunnel is cut.
        namespace.check(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let socket = namespace
            .dir()
            .join("wgd.sock")
            .to_str()
            .unwrap_or_default()
            .to_owned();
        sites.push(Site {
            index,
            namespace,
            keys: KeyPair::generate()?,
            socket,
            config: String::new(),
        });
    }
    // Tunnel names, machine-wide unique; names[i][j] is i's tunnel to j.
    let names: [[String; 3]; 3] =
        std::array::from_fn(|_| std::array::from_fn(|_| unique_name("wm")));
    let mut underlays = Vec::new();
    for i in 0..3 {
        for j in i + 1..3 {
            let (a_if, _) = underlay(
                &sites[i].namespace,
                &format!("{}/30", underlay_address(i, j, 0)),
                &sites[j].namespace,
                &format!("{}/30", underlay_address(i, j, 1)),
            )?;
            underlays.push(((i, j), a_if));
        }
    }
    let mut daemons: Vec<Daemon> = Vec::new();
    for i in 0..3 {
        let mut config = format!(
            "[daemon]\napi = \"{}\"\n\n\
             [bgp]\nasn = {}\nnetworks = [\"{}\"]\nhold_time = 9\ngraceful_restart = false\n",
            sites[i].socket,
            65001 + i,
            sites[i].lan()
        );
        for j in (0..3).filter(|j| *j != i) {
            config.push_str(&format!(
                "\n[[bgp.neighbor]]\ntunnel = \"{}\"\nremote_as = {}\n",
                tunnel_name(&names, i, j),
                65001 + j
            ));
        }
        for j in (0..3).filter(|j| *j != i) {
            let (low, high) = (i.min(j), i.max(j));
            let side = usize::from(i > j);
            config.push_str(&format!(
                "\n[[tunnel]]\nname = \"{}\"\nprivate_key = \"{}\"\nlisten_port = {}\naddress = [\"{}/31\"]\n\
                 [[tunnel.peer]]\npublic_key = \"{}\"\nendpoint = \"{}:{}\"\npersistent_keepalive = 1\n",
                tunnel_name(&names, i, j),
                sites[i].keys.private,
                PORT + j as u16,
                tunnel_address(low, high, side),
                sites[j].keys.public,
                underlay_address(low, high, 1 - side),
                PORT + i as u16,
            ));
        }
        let path = write_config(sites[i].namespace.dir(), "wgd.toml", &config)?;
        sites[i].config = path.to_str().unwrap_or_default().to_owned();
        daemons.push(wgd.spawn(&sites[i].namespace, &["run", "-c", &sites[i].config])?);
    }
    let logs = |daemons: &[Daemon]| {
        daemons
            .iter()
            .enumerate()
            .map(|(i, d)| format!("--- site {}:\n{}", i + 1, d.log()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    wait_for(Duration::from_secs(40), "every session established", || {
        sites.iter().all(|site| {
            let summary = summary(&wgd, &site.namespace, &site.socket);
            summary["neighbors"]
                .as_array()
                .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["state"] == "established"))
        })
    })
    .map_err(|error| anyhow::anyhow!("{error}\n{}", logs(&daemons)))?;
    wait_for(
        Duration::from_secs(20),
        "every LAN reaching the other two",
        || {
            (0..3).all(|i| {
                (0..3)
                    .filter(|j| *j != i)
                    .all(|j| pings(&sites[i], &sites[j]))
            })
        },
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", logs(&daemons)))?;
    // Site 1 reaches site 2's LAN directly.
    let direct = route_dev(&sites[0], &sites[1].lan());
    assert!(direct.contains(&format!("dev {}", names[0][1])), "{direct}");

    // Cut the underlay between sites 1 and 2: their tunnel dies.
    let cut = &underlays
        .iter()
        .find(|((i, j), _)| (*i, *j) == (0, 1))
        .expect("link 1-2")
        .1;
    sites[0]
        .namespace
        .check(&["ip", "link", "set", cut, "down"])?;
    wait_for(
        Duration::from_secs(30),
        "site 1 to reroute site 2's LAN through site 3",
        || route_dev(&sites[0], &sites[1].lan()).contains(&format!("dev {}", names[0][2])),
    )
    .map_err(|error| {
        let paths = wgd
            .run(
                &sites[0].namespace,
                &["bgp", "routes", "--api", &sites[0].socket],
            )
            .unwrap_or_default();
        let routes = wgd
            .run(&sites[0].namespace, &["routes", "--api", &sites[0].socket])
            .unwrap_or_default();
        anyhow::anyhow!(
            "{error}\nsite 1's paths:\n{paths}\nsite 1's routes:\n{routes}\n{}",
            logs(&daemons)
        )
    })?;
    wait_for(
        Duration::from_secs(20),
        "site 1 and site 2 reaching each other through site 3",
        || pings(&sites[0], &sites[1]) && pings(&sites[1], &sites[0]),
    )
    .map_err(|error| anyhow::anyhow!("{error}\n{}", logs(&daemons)))?;
    let routes = route_dev(&sites[1], &sites[0].lan());
    assert!(
        routes.contains(&format!("dev {}", names[1][2])),
        "site 2 did not reroute: {routes}"
    );
    Ok(())
}
