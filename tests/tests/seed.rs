//! The seed issue: `AllowedIPs = 0.0.0.0/0` must not pull the host's traffic
//! into the tunnel.
//!
//! A host namespace has one uplink to an "internet" namespace and a default
//! route through it; the internet host sits behind that default route (as
//! 8.8.8.8 did in the write-up: an address on the uplink's own subnet would
//! still be reached through wg-quick's `suppress_prefixlength 0` rule). The
//! write-up's wg0.conf (its peer's endpoint does not answer) goes up once with
//! `wg-quick`, which hijacks the host, and once with `wgd up`, which must
//! leave the host's rules and routes as they were.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use wgd_labs::{Namespace, unique_name};
use wgd_tests::routing::{RoutingState, describe};
use wgd_tests::{KeyPair, Wgd, underlay, write_config};

/// The internet host: behind the host's default route.
const INTERNET_HOST: &str = "198.51.100.1";
/// The internet namespace's end of the uplink, the host's default gateway.
const GATEWAY: &str = "192.0.2.1";
/// The tunnel's peer: on the uplink's subnet, where nobody answers.
const SILENT_ENDPOINT: &str = "192.0.2.99:51820";

/// The two namespaces and the wg0.conf of the write-up, under a unique name.
struct Seed {
    host: Namespace,
    _internet: Namespace,
    /// The interface the config brings up: the file's stem.
    tunnel: String,
    config: PathBuf,
    _dir: TempDir,
}

impl Seed {
    fn new() -> anyhow::Result<Self> {
        let host = Namespace::new("seedhost")?;
        let internet = Namespace::new("seednet")?;
        underlay(&host, "192.0.2.2/24", &internet, &format!("{GATEWAY}/24"))?;
        internet.add_address("lo", &format!("{INTERNET_HOST}/32"))?;
        host.add_route(&format!("default via {GATEWAY}"))?;
        // Routes compared before and after must not still be in the making.
        host.settle(Duration::from_secs(10))?;

        let tunnel = unique_name("wg");
        let dir = tempfile::tempdir()?;
        let config = write_config(dir.path(), &format!("{tunnel}.conf"), &write_up_config()?)?;
        Ok(Self {
            host,
            _internet: internet,
            tunnel,
            config,
            _dir: dir,
        })
    }

    fn config(&self) -> &str {
        self.config.to_str().expect("a UTF-8 temporary path")
    }

    fn reaches_the_internet(&self) -> anyhow::Result<bool> {
        Ok(self.host.pings(INTERNET_HOST)?)
    }
}

/// The write-up's wg0.conf with fresh keys.
fn write_up_config() -> anyhow::Result<String> {
    let (own, peer) = (KeyPair::generate()?, KeyPair::generate()?);
    Ok(format!(
        "[Interface]\n\
         Address = 10.0.0.1/24\n\
         SaveConfig = true\n\
         ListenPort = 51820\n\
         PrivateKey = {}\n\
         \n\
         [Peer]\n\
         PublicKey = {}\n\
         AllowedIPs = 0.0.0.0/0\n\
         Endpoint = {SILENT_ENDPOINT}\n",
        own.private, peer.public
    ))
}

#[test]
fn wg_quick_hijacks_the_host() -> anyhow::Result<()> {
    let seed = Seed::new()?;
    assert!(
        seed.reaches_the_internet()?,
        "the lab is broken: no ping before any tunnel"
    );
    let before = RoutingState::capture(&seed.host)?;

    seed.host.check(&[
        "env",
        "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go",
        "wg-quick",
        "up",
        seed.config(),
    ])?;
    let during = RoutingState::capture(&seed.host)?;
    let changes = before.changes_beyond(&during, &seed.tunnel);
    eprintln!("wg-quick changed the host:\n{}", describe(&changes));
    assert!(
        changes.iter().any(|change| change.listing == "ip -4 rule"),
        "wg-quick left `ip rule` unchanged; all changes:\n{}",
        describe(&changes)
    );
    assert!(
        changes
            .iter()
            .any(|change| change.line.contains("table 51820")),
        "wg-quick added no route in table 51820; all changes:\n{}",
        describe(&changes)
    );
    assert!(
        !seed.reaches_the_internet()?,
        "the internet host still answers under wg-quick: the seed issue did not reproduce"
    );

    seed.host.check(&["wg-quick", "down", seed.config()])?;
    assert!(
        seed.reaches_the_internet()?,
        "no ping after `wg-quick down`"
    );
    let after = RoutingState::capture(&seed.host)?;
    assert_eq!(
        before.changes(&after),
        [],
        "`wg-quick down` did not restore the rules and routes"
    );
    Ok(())
}

#[test]
fn wgd_leaves_the_host_alone() -> anyhow::Result<()> {
    // Fail first, and plainly, when there is no binary to test.
    let wgd = Wgd::new()?;
    let seed = Seed::new()?;
    let tunnel = seed.tunnel.as_str();
    assert!(
        seed.reaches_the_internet()?,
        "the lab is broken: no ping before any tunnel"
    );
    let before = RoutingState::capture(&seed.host)?;

    wgd.run(&seed.host, &["up", seed.config()])?;
    let link = seed
        .host
        .check(&["ip", "-o", "link", "show", "dev", tunnel]);
    let link = link.map_err(|error| {
        anyhow::anyhow!("`wgd up` exited 0 but the tunnel {tunnel} does not exist: {error}")
    })?;
    assert!(
        link.split_once('<')
            .and_then(|(_, flags)| flags.split_once('>'))
            .is_some_and(|(flags, _)| flags.split(',').any(|flag| flag == "UP")),
        "`wgd up` left {tunnel} down: {link}"
    );
    let allowed = seed.host.check(&["wg", "show", tunnel, "allowed-ips"])?;
    assert!(
        allowed.contains("0.0.0.0/0"),
        "the peer's AllowedIPs are not 0.0.0.0/0, so this does not test the issue: {allowed}"
    );

    let after = RoutingState::capture(&seed.host)?;
    assert!(
        after
            .lines("ip -4 route show table all")
            .any(|route| route.starts_with(&format!("10.0.0.0/24 dev {tunnel} proto kernel"))),
        "no connected route for 10.0.0.1/24 on {tunnel}: is the address there?"
    );
    let changes = before.changes_beyond(&after, tunnel);
    assert!(
        changes.is_empty(),
        "`wgd up` changed the host's routing beyond the tunnel's connected routes:\n{}",
        describe(&changes)
    );
    assert!(
        seed.reaches_the_internet()?,
        "no ping to the internet host with the tunnel up: its traffic went into the tunnel"
    );

    wgd.run(&seed.host, &["down", seed.config()])?;
    let interfaces = seed.host.interfaces()?;
    assert!(
        !interfaces.iter().any(|name| name == tunnel),
        "`wgd down` left {tunnel} in place"
    );
    assert!(seed.reaches_the_internet()?, "no ping after `wgd down`");
    Ok(())
}
