//! The kernel FIB programmer against a real kernel (root): each test makes a
//! network namespace whose veth pairs stand for tunnels, drives a
//! `KernelFib` opened inside it, and checks the tables the way an operator
//! would, with `ip route show … proto 200`. Nothing leaves the namespaces.

use std::fs::File;
use std::net::IpAddr;
use std::time::Instant;

use bgp_bridge::fib::{FibError, KernelFib, KernelNexthop, KernelRoute, MAIN_TABLE};
use bgp_bridge::{FibNexthop, FibOp, RTPROT_WGD};
use nix::sched::{CloneFlags, setns};
use wgd_labs::Namespace;

/// wgd's kernel priority in these tests.
const PRIORITY: u32 = 50;

/// One namespace and its stand-in tunnels.
struct Lab {
    ns: Namespace,
}

impl Lab {
    fn new() -> Self {
        Lab {
            ns: Namespace::new("fib").expect("a namespace"),
        }
    }

    /// A veth pair `name`/`name`p, both ends up, with `addresses` on
    /// `name`; its ifindex.
    fn tunnel(&self, name: &str, addresses: &[&str]) -> u32 {
        let peer = format!("{name}p");
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]);
        self.ip(&["link", "set", &peer, "up"]);
        self.ip(&["link", "set", name, "up"]);
        for address in addresses {
            // No duplicate address detection: usable at once.
            self.ip(&["address", "add", address, "dev", name, "nodad"]);
        }
        let link = self.ip(&["-o", "link", "show", name]);
        link.split(':').next().unwrap().trim().parse().unwrap()
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut argv = vec!["ip"];
        argv.extend_from_slice(args);
        self.ns.check(&argv).unwrap()
    }

    /// `ip <args>` as lines, without trailing blanks. Protocol 200 reads
    /// the same whether or not `wgd run` has named it in rt_protos.d yet.
    fn lines(&self, args: &[&str]) -> Vec<String> {
        self.ip(args)
            .lines()
            .map(|line| line.trim_end().replace(" proto wgd ", " proto 200 "))
            .collect()
    }

    /// wgd's IPv4 routes in all tables, as `ip -4 route show table all
    /// proto 200` prints them.
    fn ours_v4(&self) -> Vec<String> {
        self.lines(&["-4", "route", "show", "table", "all", "proto", "200"])
    }

    fn ours_v6(&self) -> Vec<String> {
        self.lines(&["-6", "route", "show", "table", "all", "proto", "200"])
    }

    /// Runs `body` with a `KernelFib` opened inside the namespace, on a
    /// thread of its own that entered the namespace first (as the daemon
    /// gives the FIB a thread).
    fn with_fib<R: Send>(
        &self,
        table: u32,
        priority: u32,
        body: impl FnOnce(&mut KernelFib) -> R + Send,
    ) -> R {
        let path = format!("/run/netns/{}", self.ns.name());
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                let namespace = File::open(&path).expect("the namespace's file");
                setns(&namespace, CloneFlags::CLONE_NEWNET).expect("setns");
                let mut fib = KernelFib::open(table, priority).expect("open the FIB");
                body(&mut fib)
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

fn via(gateway: &str, tunnel: &str, ifindex: u32) -> FibNexthop {
    FibNexthop {
        tunnel: tunnel.to_owned(),
        ifindex,
        gateway: Some(gateway.parse().unwrap()),
        peer: None,
    }
}

fn dev(tunnel: &str, ifindex: u32) -> FibNexthop {
    FibNexthop {
        tunnel: tunnel.to_owned(),
        ifindex,
        gateway: None,
        peer: None,
    }
}

fn add(prefix: &str, nexthops: Vec<FibNexthop>) -> FibOp {
    FibOp::Add {
        prefix: prefix.parse().unwrap(),
        nexthops,
        source: None,
    }
}

fn replace(prefix: &str, nexthops: Vec<FibNexthop>) -> FibOp {
    FibOp::Replace {
        prefix: prefix.parse().unwrap(),
        nexthops,
        source: None,
    }
}

fn remove(prefix: &str) -> FibOp {
    FibOp::Remove {
        prefix: prefix.parse().unwrap(),
    }
}

/// Applies `ops` and asserts that every one succeeded.
fn apply_all(fib: &mut KernelFib, ops: &[FibOp]) {
    let results = fib.apply(ops);
    assert_eq!(results.len(), ops.len());
    for (op, result) in ops.iter().zip(&results) {
        if let Err(error) = result {
            panic!("{op:?}: {error}");
        }
    }
}

fn kernel_nexthop(ifindex: u32, gateway: Option<&str>) -> KernelNexthop {
    KernelNexthop {
        ifindex,
        gateway: gateway.map(|gateway| gateway.parse().unwrap()),
    }
}

#[test]
fn ipv4_routes_are_added_replaced_in_place_and_removed() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["10.77.0.1/24"]);
    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        apply_all(
            fib,
            &[
                // The gateway is outside tun0's subnet: on-link makes it work.
                add("10.1.0.0/24", vec![via("10.77.5.5", "tun0", tun0)]),
                add("10.2.0.0/24", vec![dev("tun0", tun0)]),
                add("10.2.3.4/32", vec![dev("tun0", tun0)]),
            ],
        );
        assert_eq!(
            lab.ours_v4(),
            [
                "10.1.0.0/24 via 10.77.5.5 dev tun0 metric 50 onlink",
                "10.2.0.0/24 dev tun0 scope link metric 50",
                "10.2.3.4 dev tun0 scope link metric 50",
            ]
        );

        apply_all(
            fib,
            &[replace("10.1.0.0/24", vec![via("10.77.0.9", "tun0", tun0)])],
        );
        assert_eq!(
            lab.lines(&["-4", "route", "show", "10.1.0.0/24"]),
            ["10.1.0.0/24 via 10.77.0.9 dev tun0 proto 200 metric 50 onlink"],
            "replaced in place, still one route"
        );

        // A Replace of a prefix that has no route yet creates it.
        apply_all(fib, &[replace("10.4.0.0/16", vec![dev("tun0", tun0)])]);
        assert_eq!(fib.count_ours().unwrap(), 4);

        apply_all(
            fib,
            &[
                remove("10.1.0.0/24"),
                remove("10.2.0.0/24"),
                remove("10.2.3.4/32"),
                remove("10.4.0.0/16"),
            ],
        );
        assert_eq!(lab.ours_v4(), Vec::<String>::new());
        // Already gone is not an error.
        apply_all(fib, &[remove("10.1.0.0/24")]);
        assert_eq!(fib.count_ours().unwrap(), 0);
    });
}

#[test]
fn ipv6_routes_are_added_replaced_in_place_and_removed() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["fd77::1/64"]);
    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        apply_all(
            fib,
            &[
                add("fd00:1::/64", vec![via("fe80::2", "tun0", tun0)]),
                add("fd00:2::/48", vec![dev("tun0", tun0)]),
                add("2001:db8:9::/64", vec![via("fd99::1", "tun0", tun0)]),
            ],
        );
        assert_eq!(
            lab.ours_v6(),
            [
                "2001:db8:9::/64 via fd99::1 dev tun0 metric 50 onlink pref medium",
                "fd00:1::/64 via fe80::2 dev tun0 metric 50 onlink pref medium",
                "fd00:2::/48 dev tun0 metric 50 pref medium",
            ]
        );

        apply_all(
            fib,
            &[replace("fd00:1::/64", vec![via("fd77::9", "tun0", tun0)])],
        );
        assert_eq!(
            lab.lines(&["-6", "route", "show", "fd00:1::/64"]),
            ["fd00:1::/64 via fd77::9 dev tun0 proto 200 metric 50 onlink pref medium"],
            "replaced in place, still one route"
        );

        apply_all(
            fib,
            &[
                remove("fd00:1::/64"),
                remove("fd00:2::/48"),
                remove("2001:db8:9::/64"),
                remove("2001:db8:9::/64"),
            ],
        );
        assert_eq!(lab.ours_v6(), Vec::<String>::new());
    });
}

#[test]
fn ecmp_routes_spread_over_two_tunnels() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["10.77.0.1/24", "fd77::1/64"]);
    let tun1 = lab.tunnel("tun1", &["10.78.0.1/24", "fd78::1/64"]);
    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        let both_v4 = vec![
            via("10.77.0.2", "tun0", tun0),
            via("10.78.0.2", "tun1", tun1),
        ];
        let both_v6 = vec![via("fe80::2", "tun0", tun0), via("fe80::3", "tun1", tun1)];
        apply_all(
            fib,
            &[
                add("10.3.0.0/24", both_v4.clone()),
                add("fd00:3::/64", both_v6.clone()),
                add("10.6.0.0/24", vec![dev("tun0", tun0), dev("tun1", tun1)]),
            ],
        );
        assert_eq!(
            lab.ours_v4(),
            [
                "10.3.0.0/24 metric 50",
                "\tnexthop via 10.77.0.2 dev tun0 weight 1 onlink",
                "\tnexthop via 10.78.0.2 dev tun1 weight 1 onlink",
                "10.6.0.0/24 scope link metric 50",
                "\tnexthop dev tun0 weight 1",
                "\tnexthop dev tun1 weight 1",
            ]
        );
        assert_eq!(
            lab.ours_v6(),
            [
                "fd00:3::/64 metric 50 pref medium",
                "\tnexthop via fe80::2 dev tun0 weight 1 onlink",
                "\tnexthop via fe80::3 dev tun1 weight 1 onlink",
            ]
        );

        let mut routes = fib.dump_ours().unwrap();
        routes.sort_by_key(|route| route.prefix);
        assert_eq!(
            routes[0],
            KernelRoute {
                prefix: "10.3.0.0/24".parse().unwrap(),
                nexthops: vec![
                    kernel_nexthop(tun0, Some("10.77.0.2")),
                    kernel_nexthop(tun1, Some("10.78.0.2")),
                ],
                priority: PRIORITY,
                protocol: RTPROT_WGD,
                source: None,
            }
        );
        assert_eq!(
            routes[2].nexthops,
            [
                kernel_nexthop(tun0, Some("fe80::2")),
                kernel_nexthop(tun1, Some("fe80::3")),
            ]
        );

        // Down to one path and back, in place.
        apply_all(
            fib,
            &[
                replace("10.3.0.0/24", vec![via("10.78.0.2", "tun1", tun1)]),
                replace("fd00:3::/64", vec![via("fe80::3", "tun1", tun1)]),
            ],
        );
        assert_eq!(
            lab.lines(&["-4", "route", "show", "10.3.0.0/24"]),
            ["10.3.0.0/24 via 10.78.0.2 dev tun1 proto 200 metric 50 onlink"]
        );
        assert_eq!(
            lab.lines(&["-6", "route", "show", "fd00:3::/64"]),
            ["fd00:3::/64 via fe80::3 dev tun1 proto 200 metric 50 onlink pref medium"]
        );
        apply_all(
            fib,
            &[
                replace("10.3.0.0/24", both_v4),
                replace("fd00:3::/64", both_v6),
            ],
        );
        assert_eq!(lab.lines(&["-4", "route", "show", "10.3.0.0/24"]).len(), 3);
        assert_eq!(
            lab.lines(&["-6", "route", "show", "fd00:3::/64"]),
            [
                "fd00:3::/64 proto 200 metric 50 pref medium",
                "\tnexthop via fe80::2 dev tun0 weight 1 onlink",
                "\tnexthop via fe80::3 dev tun1 weight 1 onlink",
            ]
        );
        assert_eq!(fib.count_ours().unwrap(), 3);

        apply_all(
            fib,
            &[
                remove("10.3.0.0/24"),
                remove("fd00:3::/64"),
                remove("10.6.0.0/24"),
            ],
        );
        assert_eq!(fib.count_ours().unwrap(), 0);
    });
}

#[test]
fn a_foreign_route_is_never_overwritten_or_removed() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["10.77.0.1/24", "fd77::1/64"]);
    // Someone else's routes, in the very places wgd wants.
    lab.ip(&[
        "route",
        "add",
        "10.5.0.0/24",
        "via",
        "10.77.0.7",
        "metric",
        "50",
    ]);
    lab.ip(&[
        "-6",
        "route",
        "add",
        "fd00:5::/64",
        "via",
        "fd77::7",
        "metric",
        "50",
    ]);
    let foreign_v4 = lab.lines(&["-4", "route", "show", "10.5.0.0/24"]);
    let foreign_v6 = lab.lines(&["-6", "route", "show", "fd00:5::/64"]);
    assert_eq!(foreign_v4, ["10.5.0.0/24 via 10.77.0.7 dev tun0 metric 50"]);

    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        let results = fib.apply(&[
            add("10.5.0.0/24", vec![via("10.77.0.2", "tun0", tun0)]),
            add("fd00:5::/64", vec![via("fd77::2", "tun0", tun0)]),
        ]);
        for result in &results {
            let error = result.as_ref().unwrap_err();
            assert_eq!(error.errno(), Some(libc::EEXIST), "{error}");
            assert!(
                error.to_string().starts_with("kernel refused: File exists"),
                "{error}"
            );
        }
        assert_eq!(
            lab.lines(&["-4", "route", "show", "10.5.0.0/24"]),
            foreign_v4
        );
        assert_eq!(
            lab.lines(&["-6", "route", "show", "fd00:5::/64"]),
            foreign_v6
        );

        // A remove matches wgd's routes only: nothing of ours is there.
        apply_all(fib, &[remove("10.5.0.0/24"), remove("fd00:5::/64")]);
        assert_eq!(
            lab.lines(&["-4", "route", "show", "10.5.0.0/24"]),
            foreign_v4
        );
        assert_eq!(
            lab.lines(&["-6", "route", "show", "fd00:5::/64"]),
            foreign_v6
        );

        // Beside a foreign route of another priority, ours lives and goes
        // alone.
        lab.ip(&[
            "route",
            "add",
            "10.8.0.0/24",
            "via",
            "10.77.0.7",
            "metric",
            "10",
        ]);
        apply_all(fib, &[add("10.8.0.0/24", vec![dev("tun0", tun0)])]);
        assert_eq!(lab.lines(&["-4", "route", "show", "10.8.0.0/24"]).len(), 2);
        apply_all(fib, &[remove("10.8.0.0/24")]);
        assert_eq!(
            lab.lines(&["-4", "route", "show", "10.8.0.0/24"]),
            ["10.8.0.0/24 via 10.77.0.7 dev tun0 metric 10"]
        );
        assert_eq!(fib.count_ours().unwrap(), 0);
    });
}

#[test]
fn refusals_name_their_cause_and_fail_alone() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["10.77.0.1/24"]);
    let down = lab.tunnel("down0", &[]);
    lab.ip(&["link", "set", "down0", "down"]);
    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        let results = fib.apply(&[
            add("10.10.0.0/24", vec![dev("tun0", tun0)]),
            add("10.11.0.0/24", vec![via("10.77.0.2", "down0", down)]),
            add("10.12.0.0/24", Vec::new()),
            add("10.13.0.0/24", vec![via("10.77.0.2", "nowhere", 999_999)]),
            add("10.14.0.0/24", vec![dev("tun0", tun0)]),
        ]);
        assert!(results[0].is_ok() && results[4].is_ok(), "{results:?}");
        let down_error = results[1].as_ref().unwrap_err();
        assert_eq!(down_error.errno(), Some(libc::ENETDOWN));
        // The kernel's own words come with the errno (extended ack).
        assert!(
            matches!(
                down_error,
                FibError::Kernel {
                    detail: Some(_),
                    ..
                }
            ),
            "{down_error:?}"
        );
        eprintln!("a route through a down tunnel: {down_error}");
        assert!(matches!(results[2], Err(FibError::NoNexthop)));
        assert_eq!(results[3].as_ref().unwrap_err().errno(), Some(libc::ENODEV));
        assert_eq!(fib.count_ours().unwrap(), 2);
    });
}

#[test]
fn a_batch_of_20000_routes_goes_in_and_out() {
    const EACH: u32 = 10_000;
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["10.77.0.1/24"]);
    let mut ops = Vec::with_capacity(2 * EACH as usize + 1);
    for index in 0..EACH {
        let (high, low) = ((index / 256) as u8, index as u8);
        ops.push(FibOp::Add {
            prefix: format!("10.{}.{low}.0/24", 128 + high).parse().unwrap(),
            nexthops: vec![via("10.77.0.2", "tun0", tun0)],
            source: None,
        });
        ops.push(FibOp::Add {
            prefix: format!("198.18.{high}.{low}/32").parse().unwrap(),
            nexthops: vec![dev("tun0", tun0)],
            source: None,
        });
    }
    // One bad op in the middle: an interface that does not exist.
    let bad = EACH as usize;
    ops.insert(bad, add("10.255.255.0/24", vec![dev("gone", 999_999)]));

    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        let started = Instant::now();
        let results = fib.apply(&ops);
        let elapsed = started.elapsed();
        eprintln!(
            "fib: {} routes added in {elapsed:.2?} ({:.0} routes/s)",
            ops.len(),
            ops.len() as f64 / elapsed.as_secs_f64()
        );
        for (index, result) in results.iter().enumerate() {
            if index == bad {
                assert_eq!(result.as_ref().unwrap_err().errno(), Some(libc::ENODEV));
            } else if let Err(error) = result {
                panic!("{:?}: {error}", ops[index]);
            }
        }
        assert_eq!(fib.count_ours().unwrap(), 2 * EACH as usize);
        // What an audit reads: the prefixes alone, every one added.
        let mut found = fib.prefixes_ours().unwrap();
        found.sort_unstable();
        let mut added: Vec<_> = ops.iter().map(FibOp::prefix).collect();
        added.remove(bad);
        added.sort_unstable();
        assert_eq!(found, added);
        let listed = lab
            .ns
            .sh("ip route show table all proto 200 | wc -l")
            .unwrap();
        assert_eq!(listed.trim(), (2 * EACH).to_string());

        // The worst case for the acknowledgements: every op refused, each
        // answered on its own.
        let again = fib.apply(&ops);
        for (index, result) in again.iter().enumerate() {
            let expected = if index == bad {
                libc::ENODEV
            } else {
                libc::EEXIST
            };
            match result {
                Err(error) => assert_eq!(error.errno(), Some(expected), "{error}"),
                Ok(()) => panic!("{:?} added twice", ops[index]),
            }
        }

        let removes: Vec<_> = ops
            .iter()
            .map(|op| FibOp::Remove {
                prefix: op.prefix(),
            })
            .collect();
        let started = Instant::now();
        apply_all(fib, &removes);
        let elapsed = started.elapsed();
        eprintln!(
            "fib: {} routes removed in {elapsed:.2?} ({:.0} routes/s)",
            removes.len(),
            removes.len() as f64 / elapsed.as_secs_f64()
        );
        assert_eq!(fib.count_ours().unwrap(), 0);
    });
}

#[test]
fn routes_go_in_another_table() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["10.77.0.1/24", "fd77::1/64"]);
    // wgd's routes in main are not the table-1000 FIB's.
    lab.ip(&[
        "route",
        "add",
        "10.20.0.0/24",
        "dev",
        "tun0",
        "proto",
        "200",
    ]);
    lab.with_fib(1000, PRIORITY, |fib| {
        // The table does not exist yet.
        assert_eq!(fib.count_ours().unwrap(), 0);
        apply_all(
            fib,
            &[
                add("10.21.0.0/24", vec![via("10.77.0.2", "tun0", tun0)]),
                add("fd00:21::/64", vec![dev("tun0", tun0)]),
            ],
        );
        assert_eq!(
            lab.lines(&["-4", "route", "show", "table", "1000", "proto", "200"]),
            ["10.21.0.0/24 via 10.77.0.2 dev tun0 metric 50 onlink"]
        );
        assert_eq!(
            lab.lines(&["-6", "route", "show", "table", "1000", "proto", "200"]),
            ["fd00:21::/64 dev tun0 metric 50 pref medium"]
        );
        assert_eq!(
            lab.lines(&["-4", "route", "show", "proto", "200"]),
            ["10.20.0.0/24 dev tun0 scope link"],
            "main holds only the other route"
        );
        let mut routes = fib.dump_ours().unwrap();
        routes.sort_by_key(|route| route.prefix);
        assert_eq!(
            routes,
            [
                KernelRoute {
                    prefix: "10.21.0.0/24".parse().unwrap(),
                    nexthops: vec![kernel_nexthop(tun0, Some("10.77.0.2"))],
                    priority: PRIORITY,
                    protocol: RTPROT_WGD,
                    source: None,
                },
                KernelRoute {
                    prefix: "fd00:21::/64".parse().unwrap(),
                    nexthops: vec![kernel_nexthop(tun0, None)],
                    priority: PRIORITY,
                    protocol: RTPROT_WGD,
                    source: None,
                },
            ]
        );
        apply_all(fib, &[remove("10.21.0.0/24"), remove("fd00:21::/64")]);
        assert_eq!(fib.count_ours().unwrap(), 0);
    });
    assert_eq!(lab.lines(&["-4", "route", "show", "proto", "200"]).len(), 1);
}

#[test]
fn an_ipv4_route_through_an_ipv6_gateway() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["fd77::1/64"]);
    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        apply_all(
            fib,
            &[add("10.30.0.0/24", vec![via("fe80::9", "tun0", tun0)])],
        );
        assert_eq!(
            lab.ours_v4(),
            ["10.30.0.0/24 via inet6 fe80::9 dev tun0 metric 50 onlink"]
        );
        let routes = fib.dump_ours().unwrap();
        assert_eq!(routes[0].nexthops, [kernel_nexthop(tun0, Some("fe80::9"))]);
    });
}

#[test]
fn ipv4_routes_through_ipv6_gateways_in_ecmp_read_back_for_a_restart() {
    let lab = Lab::new();
    // No link-local address on tun1: the kernel needs only IPv6 on it.
    let tun0 = lab.tunnel("tun0", &["fe80::1/64"]);
    let tun1 = lab.tunnel("tun1", &[]);
    lab.ip(&["-6", "address", "flush", "dev", "tun1", "scope", "link"]);
    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        apply_all(
            fib,
            &[
                add("172.20.2.0/27", vec![via("fe80::2", "tun0", tun0)]),
                add(
                    "172.20.3.0/24",
                    vec![via("fe80::2", "tun0", tun0), via("fe80::3", "tun1", tun1)],
                ),
            ],
        );
        // As an operator reads it, with the protocol's name as wgd's
        // rt_protos.d entry gives it (or its number).
        let shown = lab.ip(&["-4", "route", "show", "172.20.2.0/27"]);
        assert!(
            shown.starts_with("172.20.2.0/27 via inet6 fe80::2 dev tun0 proto ")
                && (shown.contains(" proto wgd ") || shown.contains(" proto 200 ")),
            "{shown}"
        );
        assert_eq!(
            lab.ours_v4(),
            [
                "172.20.2.0/27 via inet6 fe80::2 dev tun0 metric 50 onlink",
                "172.20.3.0/24 metric 50",
                "\tnexthop via inet6 fe80::2 dev tun0 weight 1 onlink",
                "\tnexthop via inet6 fe80::3 dev tun1 weight 1 onlink",
            ]
        );
        // What a restart reads back to adopt them.
        let mut routes = fib.dump_ours().unwrap();
        routes.sort_by_key(|route| route.prefix);
        assert_eq!(routes[0].nexthops, [kernel_nexthop(tun0, Some("fe80::2"))]);
        assert_eq!(
            routes[1].nexthops,
            [
                kernel_nexthop(tun0, Some("fe80::2")),
                kernel_nexthop(tun1, Some("fe80::3"))
            ]
        );
        // Replaced in place by an IPv4 gateway, and back.
        apply_all(fib, &[replace("172.20.2.0/27", vec![dev("tun1", tun1)])]);
        apply_all(
            fib,
            &[replace("172.20.2.0/27", vec![via("fe80::3", "tun1", tun1)])],
        );
        assert_eq!(
            lab.ours_v4()[0],
            "172.20.2.0/27 via inet6 fe80::3 dev tun1 metric 50 onlink"
        );
        apply_all(fib, &[remove("172.20.2.0/27"), remove("172.20.3.0/24")]);
        assert_eq!(fib.count_ours().unwrap(), 0);
    });
}

fn with_source(op: FibOp, address: &str) -> FibOp {
    let address = Some(address.parse().unwrap());
    match op {
        FibOp::Add {
            prefix, nexthops, ..
        } => FibOp::Add {
            prefix,
            nexthops,
            source: address,
        },
        FibOp::Replace {
            prefix, nexthops, ..
        } => FibOp::Replace {
            prefix,
            nexthops,
            source: address,
        },
        remove => remove,
    }
}

#[test]
fn routes_carry_a_source_the_host_has_and_the_kernel_refuses_one_it_lacks() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["10.77.0.1/24", "fe80::1/64", "fd77::1/64"]);
    lab.ip(&["address", "add", "172.20.1.1/32", "dev", "lo"]);
    lab.ip(&["address", "add", "fd42:1::1/128", "dev", "lo", "nodad"]);
    lab.ip(&["link", "set", "lo", "up"]);
    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        let local = fib.local_addresses().unwrap();
        for address in [
            "172.20.1.1",
            "fd42:1::1",
            "10.77.0.1",
            "fd77::1",
            "127.0.0.1",
        ] {
            assert!(
                local.contains(&address.parse().unwrap()),
                "{address} not in {local:?}"
            );
        }
        assert!(!local.contains(&"172.20.9.9".parse().unwrap()));
        apply_all(
            fib,
            &[
                with_source(
                    add("10.40.0.0/24", vec![via("10.77.0.2", "tun0", tun0)]),
                    "172.20.1.1",
                ),
                // RFC 8950: the IPv4 source, whatever the gateway's family.
                with_source(
                    add("172.20.2.0/27", vec![via("fe80::2", "tun0", tun0)]),
                    "172.20.1.1",
                ),
                with_source(
                    add("fd42:2::/48", vec![via("fe80::2", "tun0", tun0)]),
                    "fd42:1::1",
                ),
            ],
        );
        assert_eq!(
            lab.ours_v4(),
            [
                "10.40.0.0/24 via 10.77.0.2 dev tun0 src 172.20.1.1 metric 50 onlink",
                "172.20.2.0/27 via inet6 fe80::2 dev tun0 src 172.20.1.1 metric 50 onlink",
            ]
        );
        assert_eq!(
            lab.ours_v6(),
            ["fd42:2::/48 via fe80::2 dev tun0 src fd42:1::1 metric 50 onlink pref medium"]
        );
        let routes = fib.dump_ours().unwrap();
        assert_eq!(routes[0].source, Some("172.20.1.1".parse().unwrap()));
        // What the bridge keeps from happening: a source the host lacks is
        // the kernel's "Invalid argument", route by route.
        let results = fib.apply(&[with_source(
            add("10.41.0.0/24", vec![via("10.77.0.2", "tun0", tun0)]),
            "172.20.9.9",
        )]);
        assert_eq!(results[0].as_ref().unwrap_err().errno(), Some(libc::EINVAL));
        // Replaced in place without it.
        apply_all(
            fib,
            &[replace(
                "10.40.0.0/24",
                vec![via("10.77.0.2", "tun0", tun0)],
            )],
        );
        assert_eq!(
            lab.ours_v4()[0],
            "10.40.0.0/24 via 10.77.0.2 dev tun0 metric 50 onlink"
        );
    });
}

#[test]
fn the_underlay_route_ignores_wgds_own() {
    let lab = Lab::new();
    let tun0 = lab.tunnel("tun0", &["10.77.0.1/24", "fd77::1/64"]);
    let up0 = lab.tunnel("up0", &["192.0.2.1/24", "2001:db8:1::1/64"]);
    lab.ip(&[
        "route",
        "add",
        "default",
        "via",
        "192.0.2.254",
        "dev",
        "up0",
    ]);
    lab.ip(&[
        "route",
        "add",
        "1.2.0.0/16",
        "via",
        "192.0.2.253",
        "metric",
        "300",
    ]);
    lab.ip(&[
        "route",
        "add",
        "1.2.0.0/16",
        "via",
        "192.0.2.252",
        "metric",
        "200",
    ]);
    lab.with_fib(MAIN_TABLE, PRIORITY, |fib| {
        apply_all(
            fib,
            &[
                add("0.0.0.0/0", vec![via("10.77.0.2", "tun0", tun0)]),
                add("1.2.3.0/24", vec![via("10.77.0.2", "tun0", tun0)]),
                add("::/0", vec![via("fe80::2", "tun0", tun0)]),
            ],
        );
        assert_eq!(
            lab.ours_v4(),
            [
                "default via 10.77.0.2 dev tun0 metric 50 onlink",
                "1.2.3.0/24 via 10.77.0.2 dev tun0 metric 50 onlink",
            ]
        );

        let underlay = |fib: &mut KernelFib, destination: &str| {
            fib.underlay_route(destination.parse::<IpAddr>().unwrap())
                .unwrap()
        };
        // The lowest priority between equally long prefixes.
        assert_eq!(
            underlay(fib, "1.2.3.4"),
            Some(KernelRoute {
                prefix: "1.2.0.0/16".parse().unwrap(),
                nexthops: vec![kernel_nexthop(up0, Some("192.0.2.252"))],
                priority: 200,
                protocol: 3, // boot: `ip route add`
                source: None,
            })
        );
        assert_eq!(
            underlay(fib, "8.8.8.8"),
            Some(KernelRoute {
                prefix: "0.0.0.0/0".parse().unwrap(),
                nexthops: vec![kernel_nexthop(up0, Some("192.0.2.254"))],
                priority: 0,
                protocol: 3,
                source: None,
            })
        );
        let connected = underlay(fib, "192.0.2.77").unwrap();
        assert_eq!(connected.prefix, "192.0.2.0/24".parse().unwrap());
        assert_eq!(connected.nexthops, [kernel_nexthop(up0, None)]);
        assert_eq!(connected.protocol, 2); // kernel

        // Many at once, one dump per family, the same answers.
        let destinations: Vec<IpAddr> = ["8.8.8.8", "2001:db8:77::1", "1.2.3.4"]
            .iter()
            .map(|destination| destination.parse().unwrap())
            .collect();
        let routes = fib.underlay_routes(&destinations).unwrap();
        assert_eq!(routes[0], underlay(fib, "8.8.8.8"));
        assert_eq!(routes[1], None);
        assert_eq!(routes[2], underlay(fib, "1.2.3.4"));

        // IPv6: nothing but wgd's default covers it, then the underlay's.
        assert_eq!(underlay(fib, "2001:db8:77::1"), None);
        lab.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:1::fe",
            "dev",
            "up0",
        ]);
        let default = underlay(fib, "2001:db8:77::1").unwrap();
        assert_eq!(default.prefix, "::/0".parse().unwrap());
        assert_eq!(
            default.nexthops,
            [kernel_nexthop(up0, Some("2001:db8:1::fe"))]
        );
    });
}
