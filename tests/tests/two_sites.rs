//! Two sites joined by wgd tunnels over a veth underlay.
//!
//! Site A and site B each run `wgd up` on their own wgd.toml. The tunnels
//! come up, a ping triggers the handshake (awaited in `wgd status --json`),
//! and ping crosses between the tunnel addresses. wgd adds no routes, so site
//! B's LAN (192.168.71.0/24) is out of A's reach until an operator adds a
//! static route through the tunnel by hand; then A reaches it.

use std::path::Path;
use std::time::Duration;

use wgd_labs::{Namespace, unique_name, wait_for};
use wgd_tests::status::Backend;
use wgd_tests::{KeyPair, Wgd, underlay, write_config};

const PORT: u16 = 51820;
const KEEPALIVE: u16 = 25;
const LAN_HOST: &str = "192.168.71.1";

/// One site: its namespace, tunnel and keys.
struct Site {
    namespace: Namespace,
    tunnel: String,
    keys: KeyPair,
    /// The site's address on the underlay.
    underlay: &'static str,
    /// The site's tunnel address, without its prefix length.
    tunnel_address: &'static str,
}

impl Site {
    fn new(
        prefix: &str,
        underlay: &'static str,
        tunnel_address: &'static str,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            namespace: Namespace::new(prefix)?,
            tunnel: unique_name("wg"),
            keys: KeyPair::generate()?,
            underlay,
            tunnel_address,
        })
    }

    /// A wgd.toml with this site's tunnel to `peer`.
    fn config(&self, peer: &Site) -> String {
        format!(
            "[[tunnel]]\n\
             name = \"{}\"\n\
             private_key = \"{}\"\n\
             listen_port = {PORT}\n\
             address = [\"{}/31\"]\n\
             \n\
             [[tunnel.peer]]\n\
             public_key = \"{}\"\n\
             endpoint = \"{}:{PORT}\"\n\
             persistent_keepalive = {KEEPALIVE}\n",
            self.tunnel, self.keys.private, self.tunnel_address, peer.keys.public, peer.underlay
        )
    }

    fn up(&self, wgd: &Wgd, dir: &Path, peer: &Site) -> anyhow::Result<String> {
        let file = format!("{}.toml", self.tunnel);
        let path = write_config(dir, &file, &self.config(peer))?;
        let path = path.to_str().expect("a UTF-8 temporary path").to_owned();
        wgd.run(&self.namespace, &["up", &path])?;
        Ok(path)
    }

    fn has_tunnel(&self) -> anyhow::Result<bool> {
        Ok(self.namespace.interfaces()?.contains(&self.tunnel))
    }
}

#[test]
fn two_sites_carry_a_static_route_through_the_tunnel() -> anyhow::Result<()> {
    // Fail first, and plainly, when there is no binary to test.
    let wgd = Wgd::new()?;
    let a = Site::new("sitea", "198.18.71.1", "10.255.0.0")?;
    let b = Site::new("siteb", "198.18.71.2", "10.255.0.1")?;
    let (a_underlay, b_underlay) = (format!("{}/24", a.underlay), format!("{}/24", b.underlay));
    underlay(&a.namespace, &a_underlay, &b.namespace, &b_underlay)?;
    let lan = unique_name("lan");
    b.namespace.add_stub(&lan)?;
    b.namespace.add_address(&lan, &format!("{LAN_HOST}/24"))?;

    let dir = tempfile::tempdir()?;
    let a_config = a.up(&wgd, dir.path(), &b)?;
    let b_config = b.up(&wgd, dir.path(), &a)?;
    assert!(
        a.has_tunnel()?,
        "`wgd up` exited 0 but site A has no {}",
        a.tunnel
    );
    assert!(
        b.has_tunnel()?,
        "`wgd up` exited 0 but site B has no {}",
        b.tunnel
    );

    // The first packet starts the handshake; it may itself be lost.
    a.namespace
        .run(&["ping", "-n", "-q", "-c", "1", "-W", "1", b.tunnel_address])?;
    wait_for(
        Duration::from_secs(20),
        "a handshake with site B in site A's `wgd status --json`",
        || {
            let status = wgd
                .status(&a.namespace)
                .expect("`wgd status --json` in site A");
            status
                .tunnel(&a.tunnel)
                .and_then(|tunnel| tunnel.peer(&b.keys.public))
                .is_some_and(|peer| peer.latest_handshake_age_seconds.is_some())
        },
    )?;
    assert!(
        a.namespace.pings(b.tunnel_address)?,
        "no ping from site A to site B's tunnel address"
    );
    assert!(
        b.namespace.pings(a.tunnel_address)?,
        "no ping from site B to site A's tunnel address"
    );

    let printed = wgd.run(&a.namespace, &["status", "--json"])?;
    assert!(
        !printed.contains(&a.keys.private),
        "`wgd status --json` shows the private key"
    );
    let status = wgd.status(&a.namespace)?;
    let tunnel = status
        .tunnel(&a.tunnel)
        .unwrap_or_else(|| panic!("{} missing from `wgd status --json`: {status:#?}", a.tunnel));
    assert!(tunnel.up, "{} reported down: {tunnel:#?}", a.tunnel);
    assert!(
        matches!(tunnel.backend, Some(Backend::Userspace | Backend::Kernel)),
        "{tunnel:#?}"
    );
    assert_eq!(tunnel.public_key.as_deref(), Some(a.keys.public.as_str()));
    assert_eq!(tunnel.listen_port, Some(PORT));
    assert!(tunnel.mtu.is_some_and(|mtu| mtu >= 1280), "{tunnel:#?}");
    assert_eq!(tunnel.addresses, [format!("{}/31", a.tunnel_address)]);
    assert_eq!(tunnel.peers.len(), 1, "{tunnel:#?}");
    let peer = &tunnel.peers[0];
    assert_eq!(peer.public_key, b.keys.public);
    assert_eq!(
        peer.endpoint.as_deref(),
        Some(format!("{}:{PORT}", b.underlay).as_str())
    );
    for default in ["0.0.0.0/0", "::/0"] {
        assert!(
            peer.allowed_ips.iter().any(|ip| ip == default),
            "allowed_ips lack the default {default}: {peer:#?}"
        );
    }
    assert_eq!(peer.persistent_keepalive, Some(KEEPALIVE));
    assert!(
        peer.alive,
        "peer not alive right after a handshake: {peer:#?}"
    );
    assert!(
        peer.rx_bytes > 0 && peer.tx_bytes > 0,
        "no traffic counted: {peer:#?}"
    );

    // wgd added no route to B's LAN: A cannot reach it yet.
    assert!(
        !a.namespace.pings(LAN_HOST)?,
        "site B's LAN answers before any route to it was added: wgd installed routes"
    );
    a.namespace.add_route(&format!(
        "192.168.71.0/24 via {} dev {}",
        b.tunnel_address, a.tunnel
    ))?;
    assert!(
        a.namespace.pings(LAN_HOST)?,
        "no ping to site B's LAN through the static route on {}",
        a.tunnel
    );

    wgd.run(&a.namespace, &["down", &a_config])?;
    wgd.run(&b.namespace, &["down", &b_config])?;
    assert!(!a.has_tunnel()?, "`wgd down` left {} in site A", a.tunnel);
    assert!(!b.has_tunnel()?, "`wgd down` left {} in site B", b.tunnel);
    Ok(())
}
