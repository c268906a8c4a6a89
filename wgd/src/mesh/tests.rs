//! The mesh file's refusals, the layout's arithmetic, and the keys and
//! renders in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::file::{self, Reading};
use super::{Host, Mesh, check, init, layout, load, render};

const FILE: &str = "/meshes/mesh.toml";

fn read_text(text: &str) -> Reading {
    let mut reading = Reading {
        file: PathBuf::from(FILE),
        mesh: None,
        sites: Vec::new(),
        errors: Vec::new(),
    };
    file::parse(Path::new(FILE), text, &mut reading);
    reading
}

fn parsed(text: &str) -> Mesh {
    let reading = read_text(text);
    assert!(reading.errors.is_empty(), "{:#?}", reading.errors);
    reading.mesh.expect("a mesh without errors")
}

/// Every error for `text`, as printed.
fn errors(text: &str) -> Vec<String> {
    let reading = read_text(text);
    assert!(reading.mesh.is_none(), "accepted with errors?");
    let mut errors = reading.errors;
    errors.sort_by_key(|error| error.line);
    errors.iter().map(ToString::to_string).collect()
}

fn error(text: &str) -> String {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.remove(0)
}

/// `[[site]]` tables for sites 1..=n: endpoint 198.18.N.2, ASN 6500N,
/// LAN 192.168.N.0/24.
fn sites(n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "\n[[site]]\nname = \"site{i}\"\nendpoint = \"198.18.{i}.2\"\nasn = {}\nlans = [\"192.168.{i}.0/24\"]\n",
                65000 + i
            )
        })
        .collect()
}

fn mesh_text(pool: &str, n: usize) -> String {
    format!(
        "[mesh]\npool = \"{pool}\"\nlisten_port = 51820\n\n[bgp]\nhold_time = 9\n{}",
        sites(n)
    )
}

#[test]
fn pairs_are_numbered_so_that_appending_a_site_renumbers_nothing() {
    assert_eq!(layout::pair_index(0, 1), 0);
    assert_eq!(layout::pair_index(0, 2), 1);
    assert_eq!(layout::pair_index(2, 1), 2);
    assert_eq!(layout::pair_index(0, 3), 3);
    assert_eq!(layout::pair_index(18, 19), 189);
    assert_eq!(layout::pairs(20), 190);
    // Every pair of 20 sites has its own index, below the pair count.
    let mut seen = std::collections::HashSet::new();
    for j in 0..20 {
        for i in 0..j {
            let index = layout::pair_index(i, j);
            assert!(index < layout::pairs(j + 1), "({i}, {j})");
            assert!(seen.insert(index), "({i}, {j}) shares {index}");
        }
    }
    let pool = "10.255.0.0/24".parse().unwrap();
    assert_eq!(layout::address4(pool, 0, 1).to_string(), "10.255.0.0/31");
    assert_eq!(layout::address4(pool, 1, 0).to_string(), "10.255.0.1/31");
    assert_eq!(layout::address4(pool, 2, 1).to_string(), "10.255.0.5/31");
    let pool6 = "fd00:255::/112".parse().unwrap();
    assert_eq!(layout::address6(pool6, 2, 0).to_string(), "fd00:255::3/127");
    assert_eq!(layout::listen_port(51820, 0), 51821);
    assert_eq!(layout::capacity4(pool), 128);
    assert_eq!(layout::shortest_pool4(190), 23);
    assert_eq!(layout::shortest_pool4(128), 24);
    assert_eq!(layout::shortest_pool4(1), 31);
    assert!(layout::ports_fit(65532, 3));
    assert!(!layout::ports_fit(65533, 3));
}

#[test]
fn a_mesh_file_reads_into_sites_in_order() {
    let mesh = parsed(&format!(
        "[mesh]\npool = \"10.255.0.0/24\"\npool6 = \"fd00:255::/112\"\nmtu = 1420\n\
         persistent_keepalive = 25\n[bgp]\nhold_time = 9\ngraceful_restart = false\n{}\n\
         [[site]]\nname = \"roamer\"\nshort_name = \"r\"\nasn = 4200000000\n\
         [[site]]\nname = \"dns\"\nendpoint = \"VPN.example.net\"\nasn = 65010\n\
         [[site]]\nname = \"v6\"\nendpoint = \"[2001:db8::7]\"\nasn = 65011\n",
        sites(2)
    ));
    assert_eq!(mesh.listen_port, 51820);
    assert_eq!(mesh.mtu, Some(1420));
    assert_eq!(mesh.persistent_keepalive, Some(25));
    let bgp = mesh.bgp.as_ref().unwrap();
    assert_eq!(bgp.hold_time, Some(9));
    assert_eq!(bgp.graceful_restart, Some(false));
    assert_eq!(bgp.restart_time, None);
    let names: Vec<&str> = mesh.sites.iter().map(|site| site.name.as_str()).collect();
    assert_eq!(names, ["site1", "site2", "roamer", "dns", "v6"]);
    assert_eq!(mesh.sites[0].line, 10);
    assert_eq!(mesh.sites[2].short_name, "r");
    assert_eq!(mesh.sites[2].endpoint, None);
    assert_eq!(
        mesh.sites[3].endpoint,
        Some(Host::Name("vpn.example.net".into()))
    );
    let v6 = mesh.sites[4].endpoint.as_ref().unwrap();
    assert_eq!(v6.with_port(51821), "[2001:db8::7]:51821");
    assert_eq!(mesh.directory(), Path::new("/meshes"));
}

#[test]
fn syntax_and_unknown_keys_are_refused_with_their_line() {
    let text = mesh_text("10.255.0.0/24", 2).replace("lans =", "lan =");
    assert!(
        error(&text).starts_with("/meshes/mesh.toml:12: unknown key \"lan\""),
        "{}",
        error(&text)
    );
    assert_eq!(
        error("[mesh]\npool = 10\n"),
        "/meshes/mesh.toml:2: pool: expected a string, found integer `10`"
    );
}

#[test]
fn the_pool_must_hold_a_subnet_for_every_pair() {
    assert_eq!(
        error(&mesh_text("10.255.0.0/24", 20)),
        "/meshes/mesh.toml:1: pool 10.255.0.0/24 holds 128 /31s, 20 sites need 190 (one per pair of sites): use a /23 or shorter"
    );
    parsed(&mesh_text("10.255.0.0/23", 20));
    assert_eq!(
        error(&mesh_text("fd00::/64", 2)),
        "/meshes/mesh.toml:2: pool \"fd00::/64\": an IPv6 prefix; pool is IPv4, IPv6 goes in pool6"
    );
    assert_eq!(
        error(&mesh_text("10.255.0.1/24", 2)),
        "/meshes/mesh.toml:2: pool \"10.255.0.1/24\": host bits set (did you mean 10.255.0.0/24?)"
    );
    assert_eq!(
        error(&sites(2)),
        "/meshes/mesh.toml:1: missing [mesh] (with pool = \"10.255.0.0/24\", say)"
    );
    assert_eq!(
        error(&mesh_text("10.255.0.0/24", 1)),
        "/meshes/mesh.toml:1: a mesh needs at least two [[site]]s, this one has 1"
    );
}

#[test]
fn ports_stay_in_range() {
    let text = mesh_text("10.255.0.0/24", 3).replace("51820", "65533");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:3: listen_port 65533: with 3 sites the tunnels listen on 65534..=65536, past 65535"
    );
    let text = mesh_text("10.255.0.0/24", 3).replace("51820", "0");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:3: listen_port 0: port out of range"
    );
}

#[test]
fn names_are_unique_and_make_interface_names() {
    let text = mesh_text("10.255.0.0/24", 3).replace("\"site3\"", "\"site1\"");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:20: site \"site1\": the name is also the site's at line 8"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("\"site2\"", "\"../etc\"");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:15: site name \"../etc\": starts with '.' or '-'"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("\"site2\"", "\"frankfurt-dc2\"");
    let all = errors(&text);
    assert_eq!(
        all,
        [
            "/meshes/mesh.toml:8: site \"site1\": its tunnel to \"frankfurt-dc2\": tunnel name \"site1-frankfurt-dc2\" is 19 bytes, interface names have at most 15; give the sites shorter short_names",
            "/meshes/mesh.toml:14: site \"frankfurt-dc2\": its tunnel to \"site1\": tunnel name \"frankfurt-dc2-site1\" is 19 bytes, interface names have at most 15; give the sites shorter short_names",
        ]
    );
    let text = text.replace(
        "name = \"frankfurt-dc2\"",
        "name = \"frankfurt-dc2\"\nshort_name = \"fra2\"",
    );
    let mesh = parsed(&text);
    assert_eq!(
        layout::tunnel_name(&mesh.sites[0], &mesh.sites[1]),
        "site1-fra2"
    );
    // Short names with hyphens can make one name twice.
    let text = mesh_text("10.255.0.0/24", 4)
        .replace("name = \"site1\"", "name = \"site1\"\nshort_name = \"a-b\"")
        .replace("name = \"site2\"", "name = \"site2\"\nshort_name = \"c\"")
        .replace("name = \"site3\"", "name = \"site3\"\nshort_name = \"a\"")
        .replace("name = \"site4\"", "name = \"site4\"\nshort_name = \"b-c\"");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:22: site \"site3\": its tunnel to \"site4\" would be named \"a-b-c\", as site \"site1\"'s to \"site2\"; choose short_names that do not make the same names"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace(
        "name = \"site2\"",
        "name = \"site2\"\nshort_name = \"site1\"",
    );
    assert!(
        error(&text).contains("short name \"site1\" is also site \"site1\"'s (line 8)"),
        "{}",
        error(&text)
    );
}

#[test]
fn endpoints_are_unique_and_every_pair_can_meet() {
    let text = mesh_text("10.255.0.0/24", 3).replace("198.18.3.2", "198.18.1.2");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:22: site \"site3\": endpoint 198.18.1.2 is also site \"site1\"'s (line 10); their tunnels would listen on the same address and ports"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("198.18.2.2", "198.18.2.2:51820");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:16: site \"site2\": endpoint \"198.18.2.2:51820\": write the address without a port: each tunnel's port comes from listen_port"
    );
    // One site without an endpoint dials out; two cannot meet.
    parsed(&mesh_text("10.255.0.0/24", 3).replace("endpoint = \"198.18.1.2\"\n", ""));
    let text = mesh_text("10.255.0.0/24", 3)
        .replace("endpoint = \"198.18.1.2\"\n", "")
        .replace("endpoint = \"198.18.3.2\"\n", "");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:19: sites \"site1\" (line 8) and \"site3\" both have no endpoint: neither can reach the other; give one of them an endpoint"
    );
}

#[test]
fn lans_overlap_nothing_and_hold_no_endpoint() {
    let text = mesh_text("10.255.0.0/24", 3).replace("192.168.3.0/24", "192.168.1.0/25");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:24: site \"site3\": lan 192.168.1.0/25 overlaps site \"site1\"'s lan 192.168.1.0/24 (line 12)"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("192.168.2.0/24", "10.0.0.0/8");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:18: site \"site2\": lan 10.0.0.0/8 overlaps the tunnel pool 10.255.0.0/24"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("198.18.2.2", "192.168.1.9");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:16: site \"site2\": endpoint 192.168.1.9 is inside site \"site1\"'s lan 192.168.1.0/24 (line 12): the route to that LAN through a tunnel would carry the tunnels' own packets"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("198.18.2.2", "10.255.0.77");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:16: site \"site2\": endpoint 10.255.0.77 is inside the tunnel pool 10.255.0.0/24"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("\"192.168.2.0/24\"", "\"fd00:2::/64\"");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:18: site \"site2\": lan fd00:2::/64 is IPv6 and the tunnels have no IPv6 addresses to route it by: set [mesh] pool6"
    );
    parsed(&text.replace("[mesh]\n", "[mesh]\npool6 = \"fd00:255::/112\"\n"));
}

#[test]
fn bgp_is_everywhere_or_nowhere_with_valid_numbers() {
    let text = mesh_text("10.255.0.0/24", 2).replace("asn = 65002\n", "");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:14: site \"site2\": missing asn (other sites have one: every site speaks BGP or none does)"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("asn = 65002", "asn = 23456");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:17: site \"site2\": asn 23456: reserved (RFC 6793, RFC 7300)"
    );
    let text = mesh_text("10.255.0.0/24", 2).replace("hold_time = 9", "hold_time = 2");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:6: hold_time 2: must be 0 or 3..=65535 (seconds)"
    );
    let text = mesh_text("10.255.0.0/24", 2)
        .replace("asn = 65001\n", "")
        .replace("asn = 65002\n", "");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:5: [bgp]: no [[site]] has an asn"
    );
    // Tunnels only: no [bgp] anywhere.
    let mesh = parsed(&text.replace("[bgp]\nhold_time = 9\n", ""));
    assert_eq!(mesh.bgp, None);
}

#[test]
fn a_bfd_section_puts_bfd_on_every_bgp_session_of_every_site() {
    let (directory, path) = mesh_dir(3, "10.255.0.0/24");
    let text = fs::read_to_string(&path).unwrap().replace(
        "[bgp]\n",
        "[bfd]\ntransmit_interval = 100\nmultiplier = 4\n\n[bgp]\n",
    );
    fs::write(&path, text).unwrap();
    let mesh = load(&path).unwrap();
    init(&mesh).unwrap();
    let rendered = render(&mesh, "site1").unwrap();
    let config_path = directory.path().join("site1/wgd.toml");
    let config = crate::config::parse_str(&config_path, &rendered).unwrap();
    let bgp = config.daemon.bgp.unwrap();
    assert_eq!(bgp.neighbors.len(), 2);
    for neighbor in &bgp.neighbors {
        let bfd = neighbor.bfd.expect("bfd on every neighbor");
        assert_eq!(bfd.transmit_interval, std::time::Duration::from_millis(100));
        // Not given: wgd's default.
        assert_eq!(bfd.receive_interval, std::time::Duration::from_millis(300));
        assert_eq!(bfd.multiplier, 4);
    }
    // Without [bfd], no neighbor has BFD.
    let plain = parsed(&mesh_text("10.255.0.0/24", 2));
    assert_eq!(plain.bgp.unwrap().bfd, None);
}

#[test]
fn bfd_values_out_of_range_or_without_bgp_are_refused_with_their_line() {
    let text = mesh_text("10.255.0.0/24", 2).replace("[bgp]\n", "[bfd]\nmultiplier = 0\n[bgp]\n");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:6: multiplier 0: out of range (1..=255)"
    );
    let text =
        mesh_text("10.255.0.0/24", 2).replace("[bgp]\n", "[bfd]\ntransmit_interval = 5\n[bgp]\n");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:6: transmit_interval 5: out of range (10..=60000)"
    );
    let text = mesh_text("10.255.0.0/24", 2)
        .replace("[bgp]\nhold_time = 9\n", "[bfd]\n")
        .replace("asn = 65001\n", "")
        .replace("asn = 65002\n", "");
    assert_eq!(
        error(&text),
        "/meshes/mesh.toml:5: [bfd]: BFD runs beside BGP, and no [[site]] has an asn"
    );
}

/// A mesh of `n` sites written to a new temporary directory.
fn mesh_dir(n: usize, pool: &str) -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("mesh.toml");
    fs::write(&path, mesh_text(pool, n)).unwrap();
    (directory, path)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn init_makes_private_keys_once_and_never_replaces_them() {
    let (directory, path) = mesh_dir(3, "10.255.0.0/24");
    let mesh = load(&path).unwrap();
    let first: Vec<String> = init(&mesh)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(first[0], "created site1/private.key site1/public.key");
    let site1 = directory.path().join("site1");
    assert_eq!(mode(&site1), 0o700);
    assert_eq!(mode(&site1.join("private.key")), 0o600);
    let key = fs::read_to_string(site1.join("private.key")).unwrap();
    let again: Vec<String> = init(&mesh)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(again[2], "kept site3/private.key site3/public.key");
    assert_eq!(fs::read_to_string(site1.join("private.key")).unwrap(), key);
    // A lost public.key is made again from the private key.
    fs::remove_file(site1.join("public.key")).unwrap();
    let outcome = init(&mesh).unwrap()[0].to_string();
    assert_eq!(outcome, "created site1/public.key, kept site1/private.key");
    check(&path).unwrap();
}

#[test]
fn renders_are_deterministic_and_read_back_as_wgd_up_reads_them() {
    let (directory, path) = mesh_dir(3, "10.255.0.0/24");
    let mesh = load(&path).unwrap();
    init(&mesh).unwrap();
    let text = render(&mesh, "site2").unwrap();
    assert_eq!(render(&load(&path).unwrap(), "site2").unwrap(), text);
    let config_path = directory.path().join("site2/wgd.toml");
    let config = crate::config::parse_str(&config_path, &text).unwrap();
    let tunnels: Vec<(&str, Option<u16>, String)> = config
        .tunnels
        .iter()
        .map(|tunnel| {
            (
                tunnel.name.as_str(),
                tunnel.listen_port,
                tunnel.addresses[0].to_string(),
            )
        })
        .collect();
    assert_eq!(
        tunnels,
        [
            ("site2-site1", Some(51821), "10.255.0.1/31".to_owned()),
            ("site2-site3", Some(51823), "10.255.0.4/31".to_owned()),
        ]
    );
    let peer = &config.tunnels[1].peers[0];
    assert_eq!(peer.name.as_deref(), Some("site3"));
    assert_eq!(
        peer.endpoint.as_ref().unwrap().address.to_string(),
        "198.18.3.2:51822"
    );
    let public = fs::read_to_string(directory.path().join("site3/public.key")).unwrap();
    assert_eq!(peer.public_key.to_base64(), public.trim());
    let bgp = config.daemon.bgp.unwrap();
    assert_eq!(bgp.asn, 65002);
    assert_eq!(bgp.hold_time, 9);
    assert_eq!(bgp.networks, ["192.168.2.0/24".parse().unwrap()]);
    let neighbors: Vec<(String, u32)> = bgp
        .neighbors
        .iter()
        .map(|neighbor| (neighbor.address.to_string(), neighbor.remote_as))
        .collect();
    assert_eq!(
        neighbors,
        [
            ("10.255.0.0".to_owned(), 65001),
            ("10.255.0.5".to_owned(), 65003)
        ]
    );
    assert!(
        !text.contains(
            &fs::read_to_string(directory.path().join("site2/private.key"))
                .unwrap()
                .trim()
                .to_owned()
        )
    );
    let unknown = render(&mesh, "site9").unwrap_err().to_string();
    assert!(
        unknown
            .ends_with("mesh.toml: no site \"site9\" in the mesh (its sites: site1, site2, site3)"),
        "{unknown}"
    );
}

#[test]
fn a_site_without_endpoint_keeps_its_tunnels_open_and_is_not_dialled() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("mesh.toml");
    let text = mesh_text("10.255.0.0/24", 2).replace("endpoint = \"198.18.2.2\"\n", "");
    fs::write(&path, text).unwrap();
    let mesh = load(&path).unwrap();
    init(&mesh).unwrap();
    let site1 = render(&mesh, "site1").unwrap();
    assert!(!site1.contains("endpoint"), "{site1}");
    assert!(!site1.contains("persistent_keepalive"), "{site1}");
    let site2 = render(&mesh, "site2").unwrap();
    assert!(
        site2.contains("endpoint = \"198.18.1.2:51822\"\npersistent_keepalive = 25\n"),
        "{site2}"
    );
}

#[test]
fn shared_or_mismatched_keys_are_refused_by_check_and_render() {
    let (directory, path) = mesh_dir(3, "10.255.0.0/24");
    let mesh = load(&path).unwrap();
    init(&mesh).unwrap();
    for file in ["private.key", "public.key"] {
        fs::copy(
            directory.path().join("site1").join(file),
            directory.path().join("site3").join(file),
        )
        .unwrap();
    }
    let expected = format!(
        "{}:20: site \"site3\": its public key is also site \"site1\"'s (line 8): every site needs a key pair of its own (remove site3/*.key and run wgd mesh init again)",
        path.display()
    );
    assert_eq!(check(&path).unwrap_err().to_string(), expected);
    assert_eq!(render(&mesh, "site2").unwrap_err().to_string(), expected);

    let site3 = directory.path().join("site3");
    fs::remove_file(site3.join("private.key")).unwrap();
    fs::remove_file(site3.join("public.key")).unwrap();
    init(&mesh).unwrap();
    fs::copy(
        directory.path().join("site1/public.key"),
        site3.join("public.key"),
    )
    .unwrap();
    let message = check(&path).unwrap_err().to_string();
    assert!(
        message.ends_with(&format!(
            "site \"site3\": {}/public.key is not the public key of {}/private.key",
            site3.display(),
            site3.display()
        )),
        "{message}"
    );
    fs::remove_file(site3.join("public.key")).unwrap();
    init(&mesh).unwrap();
    fs::set_permissions(site3.join("private.key"), fs::Permissions::from_mode(0o644)).unwrap();
    let message = check(&path).unwrap_err().to_string();
    assert!(
        message.contains("is readable by group or others (mode 0644)"),
        "{message}"
    );
}

#[test]
fn a_site_that_keeps_its_private_key_is_checked_by_its_public_key() {
    let (directory, path) = mesh_dir(3, "10.255.0.0/24");
    let mesh = load(&path).unwrap();
    init(&mesh).unwrap();
    fs::remove_file(directory.path().join("site3/private.key")).unwrap();
    let summary = check(&path).unwrap();
    assert_eq!(summary.public_only, ["site3"]);
    assert!(
        summary
            .to_string()
            .ends_with("(not rendered here, holding only public.key: site3)"),
        "{summary}"
    );
    render(&mesh, "site1").unwrap();
    let refused = render(&mesh, "site3").unwrap_err().to_string();
    assert!(
        refused.contains("site \"site3\": no private.key in"),
        "{refused}"
    );
    // init makes no private key beside a public.key.
    assert_eq!(init(&mesh).unwrap()[2].to_string(), "kept site3/public.key");
}

#[test]
fn check_reports_the_files_problems_and_the_keys_together() {
    let (_directory, path) = mesh_dir(2, "10.255.0.0/24");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("192.168.2.0/24", "192.168.1.0/24");
    fs::write(&path, text).unwrap();
    let message = check(&path).unwrap_err().to_string();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 3, "{message}");
    assert!(
        lines[0].contains(":8: site \"site1\": no private.key or public.key in"),
        "{message}"
    );
    assert!(
        lines[1].contains(":14: site \"site2\": no private.key"),
        "{message}"
    );
    assert!(
        lines[2].contains(":18: site \"site2\": lan 192.168.1.0/24 overlaps site \"site1\"'s"),
        "{message}"
    );
}

#[test]
fn twenty_sites_render_and_check() {
    let (_directory, path) = mesh_dir(20, "10.255.0.0/23");
    let mesh = load(&path).unwrap();
    init(&mesh).unwrap();
    let summary = check(&path).unwrap();
    assert_eq!(summary.pairs, 190);
    let last = render(&mesh, "site20").unwrap();
    // Site 20's tunnel to site 19 is pair 189: 10.255.1.122/31, the higher end.
    assert!(last.contains("name = \"site20-site19\"\nprivate_key_file = \"private.key\"\nlisten_port = 51839\naddress = [\"10.255.1.123/31\"]\n"), "{last}");
}

#[test]
fn endpoints_are_addresses_or_host_names_without_ports() {
    let endpoint = |text: &str| {
        let mesh_text = mesh_text("10.255.0.0/24", 2).replace("198.18.2.2", text);
        let reading = read_text(&mesh_text);
        match reading.mesh {
            Some(mesh) => Ok(mesh.sites[1].endpoint.clone().unwrap().with_port(51821)),
            None => Err(reading.errors[0].message.clone()),
        }
    };
    assert_eq!(endpoint("2001:db8::2"), Ok("[2001:db8::2]:51821".into()));
    assert_eq!(endpoint("[2001:db8::2]"), Ok("[2001:db8::2]:51821".into()));
    assert_eq!(endpoint("Site2.Example."), Ok("site2.example:51821".into()));
    assert_eq!(
        endpoint("site_2.example"),
        Err(
            "site \"site2\": endpoint \"site_2.example\": expected an IP address or a host name"
                .into()
        )
    );
    assert_eq!(
        endpoint("0.0.0.0"),
        Err("site \"site2\": endpoint \"0.0.0.0\": not an address a peer can send to".into())
    );
}
