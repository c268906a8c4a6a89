//! The routes modes of the README's "Routes by mode" table, on a real host.
//!
//! - `full-tunnel` does what wg-quick does for a default route (a table of
//!   its own, the two `ip rule`s per family, the fwmark on the device,
//!   `src_valid_mark`), carries traffic to an address behind the peer while
//!   the tunnel's own packets escape by their mark, and `wgd down` leaves
//!   the rules, routes and sysctl exactly as they were.
//! - wg-quick `Table = N` routes every AllowedIP, `/0` included, in table N
//!   and touches no rule.
//! - wg-quick without `Table` routes the AllowedIPs in main, never the `/0`
//!   (it says so on stderr), follows edits of the file route by route, and
//!   leaves routes someone else added through the tunnel alone.
//! - `PreUp`/`PostUp`/`PreDown`/`PostDown` run around the interface's life,
//!   and a failing `PreUp` stops `wgd up` before anything is created.

use std::time::Duration;

use tempfile::TempDir;
use wgd_labs::{Namespace, unique_name, wait_for};
use wgd_tests::routing::{Change, RoutingState, describe};
use wgd_tests::{KeyPair, Wgd, rewrite_config, underlay};

const PORT: u16 = 51820;
/// wg-quick's first table and fwmark for a default route.
const FIRST_FULL_TUNNEL_TABLE: u32 = 51820;
const NOTHING_TO_DO: &str = "nothing to do: the host matches the config";
const SRC_VALID_MARK: &str = "net.ipv4.conf.all.src_valid_mark";

fn sysctl(namespace: &Namespace, key: &str) -> anyhow::Result<String> {
    Ok(namespace.check(&["sysctl", "-n", key])?.trim().to_owned())
}

/// The priority of `rule` (an `ip rule` line after its `N: `) in `listing`.
fn rule_priority(state: &RoutingState, listing: &str, rule: &str) -> Option<u32> {
    state.lines(listing).find_map(|line| {
        let (priority, text) = line.split_once(": ")?;
        (text == rule).then(|| priority.parse().ok())?
    })
}

/// The tables `state` has routes in, as `ip route show table all` names them.
fn tables_in_use(state: &RoutingState) -> Vec<u32> {
    ["ip -4 route show table all", "ip -6 route show table all"]
        .into_iter()
        .flat_map(|listing| state.lines(listing))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let table = words.windows(2).find(|pair| pair[0] == "table")?[1];
            table.parse().ok()
        })
        .collect()
}

/// Whether `change` added a route whose line starts with `start` (the
/// destination, device and table as `ip route` prints them).
fn added_route(change: &Change, family: &str, start: &str) -> bool {
    change.added
        && change.listing == format!("ip {family} route show table all")
        && change.line.starts_with(start)
}

/// A namespace on its own with a config directory: tunnels whose peer
/// never answers (no endpoint: no packet leaves), for what wgd programs.
struct Node {
    namespace: Namespace,
    tunnel: String,
    dir: TempDir,
}

impl Node {
    fn new(prefix: &str) -> anyhow::Result<Self> {
        let namespace = Namespace::new(prefix)?;
        // Rules and routes compared before and after must be settled.
        namespace.settle(Duration::from_secs(10))?;
        Ok(Self {
            namespace,
            tunnel: unique_name("wg"),
            dir: tempfile::tempdir()?,
        })
    }

    /// A wg-quick file for this node's tunnel: `interface` lines go after
    /// the key and address, and one peer allows `allowed_ips`.
    fn wg_quick(&self, interface: &str, allowed_ips: &str) -> anyhow::Result<String> {
        let (own, peer) = (KeyPair::generate()?, KeyPair::generate()?);
        self.wg_quick_with(&own, &peer, interface, allowed_ips)
    }

    /// The same with given keys: a file rewritten with other AllowedIPs
    /// stays the same tunnel and peer.
    fn wg_quick_with(
        &self,
        own: &KeyPair,
        peer: &KeyPair,
        interface: &str,
        allowed_ips: &str,
    ) -> anyhow::Result<String> {
        let contents = wg_quick_text(own, peer, interface, allowed_ips);
        rewrite_config(self.dir.path(), &format!("{}.conf", self.tunnel), &contents)
    }

    fn has_tunnel(&self) -> anyhow::Result<bool> {
        Ok(self.namespace.interfaces()?.contains(&self.tunnel))
    }

    /// `wgd down <config>` must take the tunnel away and leave the rules
    /// and routes as they were `before` it went up.
    fn assert_down_restores(
        &self,
        wgd: &Wgd,
        config: &str,
        before: &RoutingState,
    ) -> anyhow::Result<()> {
        wgd.run(&self.namespace, &["down", config])?;
        let after = RoutingState::capture(&self.namespace)?;
        assert_eq!(
            describe(&before.changes(&after)),
            "",
            "`wgd down` left routes or rules behind"
        );
        assert!(!self.has_tunnel()?, "`wgd down` left {}", self.tunnel);
        Ok(())
    }
}

fn wg_quick_text(own: &KeyPair, peer: &KeyPair, interface: &str, allowed_ips: &str) -> String {
    format!(
        "[Interface]\n\
         PrivateKey = {}\n\
         Address = 10.0.12.1/24\n\
         {interface}\n\
         \n\
         [Peer]\n\
         PublicKey = {}\n\
         AllowedIPs = {allowed_ips}\n",
        own.private, peer.public
    )
}

/// Site A (full tunnel) and site B (a plain tunnel) over a veth. B's
/// endpoint and the host behind it are on B's `lo`: A reaches them only
/// through its default route, which full-tunnel mode overrides.
struct FullTunnelLab {
    a: Namespace,
    b: Namespace,
    a_tunnel: String,
    b_tunnel: String,
    a_keys: KeyPair,
    b_keys: KeyPair,
    /// A's end of the veth.
    a_underlay: String,
    dir: TempDir,
}

const A_UNDERLAY: &str = "198.18.72.1";
const B_UNDERLAY: &str = "198.18.72.2";
/// B's WireGuard endpoint, on B's `lo`.
const B_ENDPOINT: &str = "203.0.113.2";
/// A host behind B (on B's `lo`), reachable from A only through the tunnel.
const BEHIND_B: &str = "192.0.2.77";
const A_TUNNEL_ADDRESS: &str = "10.255.1.1";
const B_TUNNEL_ADDRESS: &str = "10.255.1.2";

impl FullTunnelLab {
    fn new() -> anyhow::Result<Self> {
        let a = Namespace::new("fulla")?;
        let b = Namespace::new("fullb")?;
        let (a_underlay, _) = underlay(
            &a,
            &format!("{A_UNDERLAY}/24"),
            &b,
            &format!("{B_UNDERLAY}/24"),
        )?;
        b.add_address("lo", &format!("{B_ENDPOINT}/32"))?;
        b.add_address("lo", &format!("{BEHIND_B}/32"))?;
        a.add_route(&format!("default via {B_UNDERLAY}"))?;
        a.settle(Duration::from_secs(10))?;
        Ok(Self {
            a,
            b,
            a_tunnel: unique_name("wgfa"),
            b_tunnel: unique_name("wgfb"),
            a_keys: KeyPair::generate()?,
            b_keys: KeyPair::generate()?,
            a_underlay,
            dir: tempfile::tempdir()?,
        })
    }

    /// A's wgd.toml: full tunnel to B, AllowedIPs left at their default.
    fn a_config(&self) -> String {
        format!(
            "[[tunnel]]\n\
             name = \"{}\"\n\
             private_key = \"{}\"\n\
             listen_port = {PORT}\n\
             address = [\"{A_TUNNEL_ADDRESS}/24\"]\n\
             routes = \"full-tunnel\"\n\
             \n\
             [[tunnel.peer]]\n\
             public_key = \"{}\"\n\
             endpoint = \"{B_ENDPOINT}:{PORT}\"\n",
            self.a_tunnel, self.a_keys.private, self.b_keys.public
        )
    }

    /// B's wgd.toml: no routes; A's endpoint is learnt from its handshake.
    fn b_config(&self) -> String {
        format!(
            "[[tunnel]]\n\
             name = \"{}\"\n\
             private_key = \"{}\"\n\
             listen_port = {PORT}\n\
             address = [\"{B_TUNNEL_ADDRESS}/24\"]\n\
             \n\
             [[tunnel.peer]]\n\
             public_key = \"{}\"\n",
            self.b_tunnel, self.b_keys.private, self.a_keys.public
        )
    }
}

#[test]
fn full_tunnel_sends_everything_through_the_tunnel_and_down_undoes_it_exactly() -> anyhow::Result<()>
{
    // Fail first, and plainly, when there is no binary to test.
    let wgd = Wgd::new()?;
    let lab = FullTunnelLab::new()?;
    let (a, tunnel) = (&lab.a, lab.a_tunnel.as_str());
    assert!(
        a.pings(B_ENDPOINT)?,
        "the lab is broken: A does not reach B's endpoint through its default route"
    );
    let before = RoutingState::capture(a)?;
    let src_valid_mark_before = sysctl(a, SRC_VALID_MARK)?;
    // As wg-quick: 51820, or the first table after it that holds no route.
    let used = tables_in_use(&before);
    let table = (FIRST_FULL_TUNNEL_TABLE..)
        .find(|table| !used.contains(table))
        .expect("a free table");
    let mark = format!("{table:#x}");

    let b_config = rewrite_config(lab.dir.path(), "b.toml", &lab.b_config())?;
    wgd.run(&lab.b, &["up", &b_config])?;
    let a_config = rewrite_config(lab.dir.path(), "a.toml", &lab.a_config())?;
    let printed = wgd.run(a, &["up", &a_config])?;
    assert!(
        printed.contains(&format!("fwmark {table}")),
        "`wgd up` printed no fwmark {table}:\n{printed}"
    );

    let during = RoutingState::capture(a)?;
    let fwmark_rule = format!("not from all fwmark {mark} lookup {table}");
    let suppress_rule = "from all lookup main suppress_prefixlength 0";
    for family in ["-4", "-6"] {
        let listing = format!("ip {family} rule");
        let fwmark = rule_priority(&during, &listing, &fwmark_rule);
        let suppress = rule_priority(&during, &listing, suppress_rule);
        let rules = during.lines(&listing).collect::<Vec<_>>().join("\n");
        let (Some(fwmark), Some(suppress)) = (fwmark, suppress) else {
            panic!("`{listing}` lacks `{fwmark_rule}` or `{suppress_rule}`:\n{rules}");
        };
        // Main without its default route must be asked before the tunnel's table.
        assert!(
            suppress < fwmark,
            "`{suppress_rule}` comes after `{fwmark_rule}`:\n{rules}"
        );
    }
    let changes = before.changes_beyond(&during, tunnel);
    let default_route = format!("default dev {tunnel} table {table} ");
    for family in ["-4", "-6"] {
        assert!(
            changes
                .iter()
                .any(|change| added_route(change, family, &default_route)),
            "no `ip {family} route` `{default_route}…`; the changes:\n{}",
            describe(&changes)
        );
    }
    // Two default routes and two rules per family, nothing else.
    assert_eq!(
        changes.len(),
        6,
        "full-tunnel changed more than wg-quick would:\n{}",
        describe(&changes)
    );
    assert!(
        changes.iter().all(|change| change.added),
        "{}",
        describe(&changes)
    );

    assert_eq!(a.check(&["wg", "show", tunnel, "fwmark"])?.trim(), mark);
    assert_eq!(sysctl(a, SRC_VALID_MARK)?, "1");

    // The first packet starts the handshake; it may itself be lost.
    a.run(&["ping", "-n", "-q", "-c", "1", "-W", "1", B_TUNNEL_ADDRESS])?;
    wait_for(
        Duration::from_secs(20),
        "a handshake with site B in site A's `wgd status --json`",
        || {
            wgd.status(a).ok().is_some_and(|status| {
                status
                    .tunnel(tunnel)
                    .and_then(|tunnel| tunnel.peer(&lab.b_keys.public))
                    .is_some_and(|peer| peer.latest_handshake_age_seconds.is_some())
            })
        },
    )?;
    assert!(
        a.pings(B_TUNNEL_ADDRESS)?,
        "no ping from A to B's tunnel address"
    );

    let through_tunnel = a.check(&["ip", "route", "get", BEHIND_B])?;
    assert!(
        through_tunnel.contains(&format!("dev {tunnel} table {table}")),
        "{BEHIND_B} is not routed into the tunnel: {through_tunnel}"
    );
    // B's tunnel counts the ping, so it did not go over the underlay.
    let received = || -> anyhow::Result<u64> {
        let status = wgd.status(&lab.b)?;
        let peer = status
            .tunnel(&lab.b_tunnel)
            .and_then(|tunnel| tunnel.peer(&lab.a_keys.public))
            .cloned();
        Ok(peer.map_or(0, |peer| peer.rx_bytes))
    };
    let received_before = received()?;
    assert!(
        a.pings(BEHIND_B)?,
        "no ping from A to {BEHIND_B} behind B through the full tunnel"
    );
    assert!(
        received()? > received_before,
        "the ping to {BEHIND_B} did not cross the tunnel"
    );
    // Unmarked, even B's endpoint goes into the tunnel; marked (the tunnel's
    // own packets), it goes out over the underlay.
    let unmarked = a.check(&["ip", "route", "get", B_ENDPOINT])?;
    assert!(
        unmarked.contains(&format!("dev {tunnel} table {table}")),
        "unmarked packets to {B_ENDPOINT} escape the tunnel: {unmarked}"
    );
    let marked = a.check(&["ip", "route", "get", B_ENDPOINT, "mark", &mark])?;
    assert!(
        marked.contains(&format!("via {B_UNDERLAY} dev {}", lab.a_underlay)),
        "the tunnel's own packets to {B_ENDPOINT} do not go over the underlay: {marked}"
    );

    let again = wgd.run(a, &["up", &a_config])?;
    assert_eq!(again.trim(), NOTHING_TO_DO);

    wgd.run(a, &["down", &a_config])?;
    let after = RoutingState::capture(a)?;
    assert_eq!(
        describe(&before.changes(&after)),
        "",
        "`wgd down` did not put the rules and routes back as they were"
    );
    assert_eq!(
        sysctl(a, SRC_VALID_MARK)?,
        src_valid_mark_before,
        "`wgd down` did not restore {SRC_VALID_MARK}"
    );
    assert!(
        !a.interfaces()?.contains(&lab.a_tunnel),
        "`wgd down` left {tunnel}"
    );
    wgd.run(&lab.b, &["down", &b_config])?;
    Ok(())
}

#[test]
fn allowed_ips_in_a_table_of_its_own() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let node = Node::new("table")?;
    let tunnel = node.tunnel.as_str();
    let config = node.wg_quick("Table = 1234", "0.0.0.0/0, 10.9.0.0/16")?;
    let before = RoutingState::capture(&node.namespace)?;

    let output = wgd.output(&node.namespace, &["up", &config])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "`wgd up` failed:\n{stderr}");
    assert!(
        !stderr.contains("wgd routes no default route"),
        "a /0 in a table of its own is routed, yet wgd says it is not:\n{stderr}"
    );

    let during = RoutingState::capture(&node.namespace)?;
    let changes = before.changes_beyond(&during, tunnel);
    for start in [
        format!("default dev {tunnel} table 1234 "),
        format!("10.9.0.0/16 dev {tunnel} table 1234 "),
    ] {
        assert!(
            changes
                .iter()
                .any(|change| added_route(change, "-4", &start)),
            "no route `{start}…`; the changes:\n{}",
            describe(&changes)
        );
    }
    // No rule, nothing in main beyond the connected route (allowed above).
    assert_eq!(changes.len(), 2, "{}", describe(&changes));
    let table = node
        .namespace
        .check(&["ip", "-4", "route", "show", "table", "1234"])?;
    assert_eq!(table.lines().count(), 2, "table 1234:\n{table}");

    node.assert_down_restores(&wgd, &config, &before)
}

#[test]
fn table_auto_routes_allowed_ips_in_main_but_never_the_default() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let node = Node::new("auto")?;
    let (ns, tunnel) = (&node.namespace, node.tunnel.as_str());
    let (own, peer) = (KeyPair::generate()?, KeyPair::generate()?);
    let write = |allowed_ips| node.wg_quick_with(&own, &peer, "ListenPort = 51820", allowed_ips);
    let config = write("0.0.0.0/0, 10.9.0.0/16, fd00:9::/48")?;
    let before = RoutingState::capture(ns)?;

    let output = wgd.output(ns, &["up", &config])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "`wgd up` failed:\n{stderr}");
    assert!(
        stderr.contains("wgd routes no default route"),
        "no default-route notice on stderr:\n{stderr}"
    );

    let during = RoutingState::capture(ns)?;
    let changes = before.changes_beyond(&during, tunnel);
    let v4 = format!("10.9.0.0/16 dev {tunnel} ");
    let v6 = format!("fd00:9::/48 dev {tunnel} ");
    assert!(
        changes.iter().any(|change| added_route(change, "-4", &v4))
            && changes.iter().any(|change| added_route(change, "-6", &v6)),
        "no route `{v4}…` or `{v6}…` in main; the changes:\n{}",
        describe(&changes)
    );
    // Neither a default route nor a rule, in any table or family.
    assert_eq!(changes.len(), 2, "{}", describe(&changes));
    let defaults: Vec<&str> = ["ip -4 route show table all", "ip -6 route show table all"]
        .into_iter()
        .flat_map(|listing| during.lines(listing))
        .filter(|line| line.starts_with(&format!("default dev {tunnel}")))
        .collect();
    assert!(defaults.is_empty(), "default routes: {defaults:?}");

    // A route an operator adds through the tunnel is theirs, not wgd's.
    ns.add_route(&format!("172.16.5.0/24 dev {tunnel}"))?;
    let by_hand = RoutingState::capture(ns)?;
    assert_eq!(wgd.run(ns, &["up", &config])?.trim(), NOTHING_TO_DO);
    assert_eq!(
        describe(&by_hand.changes(&RoutingState::capture(ns)?)),
        "",
        "a second `wgd up` changed the routing"
    );

    let config = write("0.0.0.0/0, fd00:9::/48")?;
    let printed = wgd.run(ns, &["up", &config])?;
    let route_lines: Vec<&str> = printed
        .lines()
        .filter(|line| line.contains(" route "))
        .collect();
    assert_eq!(
        route_lines,
        [format!(
            "[#] {tunnel}: remove route 10.9.0.0/16 dev {tunnel} table main"
        )],
        "`wgd up` printed:\n{printed}"
    );
    // Besides the route, only the peer's AllowedIPs on the device change.
    let others: Vec<&str> = printed
        .lines()
        .filter(|line| !line.contains(" route ") && !line.contains("(changed: allowed-ips)"))
        .collect();
    assert!(others.is_empty(), "`wgd up` printed:\n{printed}");
    let edited = RoutingState::capture(ns)?;
    let changes = by_hand.changes(&edited);
    assert_eq!(
        changes.len(),
        1,
        "dropping 10.9.0.0/16 changed:\n{}",
        describe(&changes)
    );
    assert!(
        !changes[0].added && changes[0].line.starts_with(&v4),
        "dropping 10.9.0.0/16 changed:\n{}",
        describe(&changes)
    );

    // Taking the interface away takes every route through it, the
    // operator's included: the host is as it was.
    node.assert_down_restores(&wgd, &config, &before)
}

/// A route of the bridge's protocol (what `wgd run` installs for learned
/// prefixes: proto 200, metric 20) through the tunnel is not the tunnel's
/// own route of the same prefix: `wgd up` adds its own beside it, and the
/// bridge's stays. (The planner once read every route on the host, the
/// bridge's full table included, and took such a route for its own.)
#[test]
fn a_bridge_route_of_the_same_prefix_is_not_taken_for_the_tunnels_own() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let node = Node::new("brsame")?;
    let (ns, tunnel) = (&node.namespace, node.tunnel.as_str());
    let (own, peer) = (KeyPair::generate()?, KeyPair::generate()?);
    let write = |allowed_ips| node.wg_quick_with(&own, &peer, "ListenPort = 51820", allowed_ips);
    let before = RoutingState::capture(ns)?;
    let config = write("10.9.0.0/16")?;
    wgd.run(ns, &["up", &config])?;
    ns.add_route(&format!("10.8.0.0/16 dev {tunnel} proto 200 metric 20"))?;

    let config = write("10.9.0.0/16, 10.8.0.0/16")?;
    let printed = wgd.run(ns, &["up", &config])?;
    assert!(
        printed.contains(&format!("add route 10.8.0.0/16 dev {tunnel} table main")),
        "`wgd up` printed:\n{printed}"
    );
    let routes = ns.check(&["ip", "-4", "route", "show", "10.8.0.0/16"])?;
    // iproute2 names protocol 200 `wgd` where wgd's package installed its name.
    let bridge = routes
        .lines()
        .filter(|line| line.contains("proto 200") || line.contains("proto wgd"))
        .count();
    let own = routes
        .lines()
        .filter(|line| line.contains("proto static"))
        .count();
    assert_eq!((bridge, own), (1, 1), "routes to 10.8.0.0/16:\n{routes}");
    assert_eq!(wgd.run(ns, &["up", &config])?.trim(), NOTHING_TO_DO);

    node.assert_down_restores(&wgd, &config, &before)
}

#[test]
fn hooks_run_around_up_and_down() -> anyhow::Result<()> {
    let wgd = Wgd::new()?;
    let node = Node::new("hooks")?;
    let (ns, tunnel) = (&node.namespace, node.tunnel.as_str());
    let log = node.dir.path().join("hooks.log");
    let log = log.to_str().expect("a UTF-8 temporary path");
    // Each hook also says whether the interface exists as it runs.
    let hook = |stage: &str| {
        format!(
            "echo {stage} %i $(ip link show dev %i >/dev/null 2>&1 && echo present || echo absent) >> {log}"
        )
    };
    let interface = format!(
        "Table = off\nPreUp = {}\nPostUp = {}\nPreDown = {}\nPostDown = {}",
        hook("pre-up"),
        hook("post-up"),
        hook("pre-down"),
        hook("post-down")
    );
    let config = node.wg_quick(&interface, "10.14.0.0/16")?;
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();

    wgd.run(ns, &["up", &config])?;
    assert_eq!(
        read_log(),
        format!("pre-up {tunnel} absent\npost-up {tunnel} present\n")
    );

    // By name: the down hooks come from wgd's record, not the file.
    wgd.run(ns, &["down", tunnel])?;
    assert_eq!(
        read_log(),
        format!(
            "pre-up {tunnel} absent\npost-up {tunnel} present\n\
             pre-down {tunnel} present\npost-down {tunnel} absent\n"
        )
    );
    assert!(!node.has_tunnel()?, "`wgd down {tunnel}` left it");

    // A failing PreUp stops everything after it.
    let failing = unique_name("wgpre");
    let (own, peer) = (KeyPair::generate()?, KeyPair::generate()?);
    let contents = wg_quick_text(
        &own,
        &peer,
        &format!("PreUp = false\nPostUp = {}", hook("post-up")),
        "10.14.0.0/16",
    );
    let failing_config = rewrite_config(node.dir.path(), &format!("{failing}.conf"), &contents)?;
    let output = wgd.output(ns, &["up", &failing_config])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "`wgd up` succeeded with `PreUp = false`:\n{stderr}"
    );
    assert!(
        stderr.contains("PreUp") && stderr.contains("\"false\""),
        "the error does not name the hook:\n{stderr}"
    );
    assert!(
        !ns.interfaces()?.contains(&failing),
        "{failing} was created although its PreUp failed"
    );
    assert!(
        !read_log().contains(&failing),
        "later hooks ran after PreUp failed:\n{}",
        read_log()
    );
    let error = wgd
        .run(ns, &["down", &failing])
        .expect_err("wgd recorded a tunnel it never created");
    assert!(
        error
            .to_string()
            .contains("no tunnel that wgd created here matches"),
        "{error}"
    );
    Ok(())
}
