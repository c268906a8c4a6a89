//! The lab as a picture: an SVG drawn from the topology and the report's
//! [`NodeView`]s.
//!
//! Nodes are boxes on a circle, listing their learned prefixes; underlay
//! links are grey lines labelled with the interface names; tunnels are
//! thicker lines between the nodes whose keys they join, green when the
//! latest handshake is recent and red otherwise. A peer that is no node
//! of the lab is listed in its node's box, coloured the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::report::{NodeView, PeerView, TunnelView};
use crate::topology::Topology;

const MIN_WIDTH: f64 = 960.0;
const BOX_WIDTH: f64 = 210.0;
const LINE: f64 = 15.0;
const ALIVE: &str = "#2e9e44";
const DEAD: &str = "#d0342c";
const UNDERLAY: &str = "#9a9a9a";

/// Where each node goes, and the picture's size. Routers (nodes with
/// tunnels) stand on a circle; a node without tunnels linked to several
/// others (the wan of a lab) stands in the middle (several: on a small
/// inner circle); a node linked to one other only (a LAN host) stands
/// outside its neighbour, on the same ray. Without routers, every node
/// is on the circle.
fn layout<'a>(
    topology: &Topology,
    views: &'a [NodeView],
) -> (BTreeMap<&'a str, (f64, f64)>, f64, f64) {
    let mut neighbours: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for link in &topology.links {
        let [a, b] = &link.endpoints;
        neighbours.entry(&a.node).or_default().insert(&b.node);
        neighbours.entry(&b.node).or_default().insert(&a.node);
    }
    let degree = |name: &str| neighbours.get(name).map_or(0, BTreeSet::len);
    let routers: Vec<&str> = views
        .iter()
        .filter(|view| !view.tunnels.is_empty())
        .map(|view| view.name.as_str())
        .collect();
    let (ring, inner, outer): (Vec<&str>, Vec<&str>, Vec<&str>) = if routers.is_empty() {
        let all = views.iter().map(|view| view.name.as_str()).collect();
        (all, Vec::new(), Vec::new())
    } else {
        let others = views
            .iter()
            .map(|view| view.name.as_str())
            .filter(|name| !routers.contains(name));
        let (outer, inner): (Vec<&str>, Vec<&str>) = others.partition(|name| degree(name) <= 1);
        (routers, inner, outer)
    };
    let count = ring.len().max(1);
    // A circle wide enough that neighbouring boxes do not overlap.
    let radius = if count <= 2 {
        260.0
    } else {
        (count as f64 * 45.0).max(230.0)
    };
    let reach = if outer.is_empty() {
        radius
    } else {
        radius + 170.0
    };
    let width = (2.0 * reach + BOX_WIDTH + 80.0).max(MIN_WIDTH);
    let height = 2.0 * reach + if outer.is_empty() { 200.0 } else { 120.0 };
    let (cx, cy) = (width / 2.0, height / 2.0 + 20.0);
    let at = |angle: f64, r: f64| (cx + r * angle.cos(), cy + r * angle.sin());
    let mut centre: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut angles: BTreeMap<&str, f64> = BTreeMap::new();
    // The first at the top, clockwise; two side by side.
    let start = if count == 2 {
        std::f64::consts::PI
    } else {
        -std::f64::consts::FRAC_PI_2
    };
    for (index, name) in ring.iter().enumerate() {
        let angle = start + 2.0 * std::f64::consts::PI * index as f64 / count as f64;
        angles.insert(name, angle);
        centre.insert(name, at(angle, radius));
    }
    for (index, name) in inner.iter().enumerate() {
        let angle = start + 2.0 * std::f64::consts::PI * index as f64 / inner.len() as f64;
        let r = if inner.len() == 1 { 0.0 } else { radius * 0.4 };
        angles.insert(name, angle);
        centre.insert(name, at(angle, r));
    }
    // Leaves of one neighbour fan out around its ray.
    let mut fans: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in &outer {
        let neighbour = neighbours
            .get(name)
            .and_then(|set| set.iter().next().copied())
            .unwrap_or("");
        fans.entry(neighbour).or_default().push(name);
    }
    let mut spare = 0.0;
    for (neighbour, leaves) in fans {
        let base = match angles.get(neighbour) {
            Some(angle) if centre.get(neighbour).is_some_and(|c| *c != (cx, cy)) => *angle,
            _ => {
                spare += 0.7;
                std::f64::consts::FRAC_PI_2 + spare
            }
        };
        for (index, name) in leaves.iter().enumerate() {
            let offset = (index as f64 - (leaves.len() - 1) as f64 / 2.0) * 0.35;
            centre.insert(name, at(base + offset, reach));
        }
    }
    (centre, width, height)
}

/// The SVG document.
pub fn draw(topology: &Topology, views: &[NodeView]) -> String {
    let (centre, width, height) = layout(topology, views);
    let (cx, cy) = (width / 2.0, height / 2.0 + 20.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="12" y="22" font-size="16" font-weight="bold">lab {}</text>"#,
        escape(&topology.name)
    );
    let _ = writeln!(
        svg,
        r#"<text x="12" y="40" fill="{UNDERLAY}">grey: underlay link</text><text x="170" y="40" fill="{ALIVE}">green: tunnel, recent handshake</text><text x="420" y="40" fill="{DEAD}">red: tunnel, no recent handshake</text>"#
    );

    for link in &topology.links {
        let [a, b] = &link.endpoints;
        let (Some(&(ax, ay)), Some(&(bx, by))) =
            (centre.get(a.node.as_str()), centre.get(b.node.as_str()))
        else {
            continue;
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{ax:.0}" y1="{ay:.0}" x2="{bx:.0}" y2="{by:.0}" stroke="{UNDERLAY}" stroke-width="2"/>"#
        );
        for ((x, y), (ox, oy), name) in [
            ((ax, ay), (bx, by), &a.interface),
            ((bx, by), (ax, ay), &b.interface),
        ] {
            // Beside the line, a third of the way from the node.
            let (lx, ly) = (x + (ox - x) * 0.3, y + (oy - y) * 0.3);
            let _ = writeln!(
                svg,
                r#"<text x="{lx:.0}" y="{:.0}" fill="{UNDERLAY}" text-anchor="middle">{}</text>"#,
                ly - 4.0,
                escape(name)
            );
        }
    }

    // Tunnels between two nodes of the lab, found by public key (a node
    // may use one key for several tunnels: then the tunnel that has us as
    // a peer); drawn once per pair of interfaces.
    let mut owners: BTreeMap<&str, Vec<(&str, &TunnelView)>> = BTreeMap::new();
    for view in views {
        for tunnel in &view.tunnels {
            owners
                .entry(tunnel.public_key.as_str())
                .or_default()
                .push((view.name.as_str(), tunnel));
        }
    }
    let owner = |tunnel: &TunnelView, peer: &PeerView| -> Option<(&str, &str)> {
        let candidates = owners.get(peer.public_key.as_str())?;
        let facing = candidates.iter().find(|(_, other)| {
            other
                .peers
                .iter()
                .any(|back| back.public_key == tunnel.public_key)
        });
        facing
            .or(candidates.first())
            .map(|(node, other)| (*node, other.interface.as_str()))
    };
    let mut drawn = BTreeSet::new();
    let mut outside: BTreeMap<&str, Vec<(String, bool)>> = BTreeMap::new();
    for view in views {
        for tunnel in &view.tunnels {
            for peer in &tunnel.peers {
                let Some((other, other_interface)) = owner(tunnel, peer) else {
                    let endpoint = peer.endpoint.as_deref().unwrap_or("no endpoint");
                    outside
                        .entry(view.name.as_str())
                        .or_default()
                        .push((format!("{} -> {endpoint}", tunnel.interface), peer.alive()));
                    continue;
                };
                let ends = [
                    (view.name.as_str(), tunnel.interface.as_str()),
                    (other, other_interface),
                ];
                let key = if ends[0] <= ends[1] {
                    ends
                } else {
                    [ends[1], ends[0]]
                };
                if !drawn.insert(key) {
                    continue;
                }
                let (Some(&(ax, ay)), Some(&(bx, by))) =
                    (centre.get(view.name.as_str()), centre.get(other))
                else {
                    continue;
                };
                let colour = if peer.alive() { ALIVE } else { DEAD };
                // Bowed outward, so that it hides no underlay line (those
                // go to the middle, where the wan of a lab stands).
                let (mx, my) = ((ax + bx) / 2.0, (ay + by) / 2.0);
                let (qx, qy) = (mx + (mx - cx) * 0.6, my + (my - cy) * 0.6);
                let (qx, qy) = if (mx - cx).abs() < 1.0 && (my - cy).abs() < 1.0 {
                    (mx + 40.0, my - 40.0)
                } else {
                    (qx, qy)
                };
                let _ = writeln!(
                    svg,
                    r#"<path d="M {ax:.0} {ay:.0} Q {qx:.0} {qy:.0} {bx:.0} {by:.0}" fill="none" stroke="{colour}" stroke-width="3"/>"#
                );
                let age = peer
                    .handshake_age
                    .map(|age| format!("{age} s"))
                    .unwrap_or_else(|| "never".into());
                // At the curve's apex, on its outer side.
                let (px, py) = ((ax + 2.0 * qx + bx) / 4.0, (ay + 2.0 * qy + by) / 4.0);
                let (lx, ly, anchor) = if px < cx - 20.0 {
                    (px - 8.0, py, "end")
                } else if px > cx + 20.0 {
                    (px + 8.0, py, "start")
                } else if py > cy {
                    (px, py + 16.0, "middle")
                } else {
                    (px, py - 8.0, "middle")
                };
                let _ = writeln!(
                    svg,
                    r#"<text x="{lx:.0}" y="{ly:.0}" fill="{colour}" text-anchor="{anchor}">{} / {} ({})</text>"#,
                    escape(&tunnel.interface),
                    escape(other_interface),
                    escape(&age)
                );
            }
        }
    }

    for view in views {
        let Some(&(x, y)) = centre.get(view.name.as_str()) else {
            continue;
        };
        let mut lines: Vec<(String, &str)> = Vec::new();
        for route in &view.routes {
            lines.push((format!("learned {}", route.prefix), "#1f4e9e"));
        }
        for (text, alive) in outside.get(view.name.as_str()).into_iter().flatten() {
            lines.push((text.clone(), if *alive { ALIVE } else { DEAD }));
        }
        let height = LINE * (2.0 + lines.len() as f64) + 10.0;
        let (left, top) = (x - BOX_WIDTH / 2.0, y - height / 2.0);
        let stroke = match view.daemon {
            Some((_, false)) => DEAD,
            _ => "#333333",
        };
        let _ = writeln!(
            svg,
            r##"<rect x="{left:.0}" y="{top:.0}" width="{BOX_WIDTH}" height="{height:.0}" rx="6" fill="#f4f6fa" stroke="{stroke}" stroke-width="1.5"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.0}" y="{:.0}" font-weight="bold">{}</text>"#,
            left + 8.0,
            top + LINE + 2.0,
            escape(&view.name)
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.0}" y="{:.0}" fill="#666666">{}</text>"##,
            left + 8.0,
            top + 2.0 * LINE + 2.0,
            escape(&view.namespace)
        );
        for (index, (text, colour)) in lines.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<text x="{:.0}" y="{:.0}" fill="{colour}">{}</text>"#,
                left + 8.0,
                top + (3.0 + index as f64) * LINE + 2.0,
                escape(text)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::LearnedRoute;
    use std::path::Path;

    #[test]
    fn tunnels_are_coloured_by_handshake_and_prefixes_listed() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("p.clab.yml");
        let topology = Topology::parse(
            &file,
            "name: p\ntopology:\n  nodes:\n    a: {kind: linux}\n    b: {kind: linux}\n    c: {kind: linux}\n  links:\n    - endpoints: [\"a:eth1\", \"b:eth1\"]\n",
        )
        .unwrap();
        let tunnel = |interface: &str, key: &str, peer: &str, age: Option<u64>| TunnelView {
            interface: interface.into(),
            public_key: key.into(),
            peers: vec![PeerView {
                public_key: peer.into(),
                handshake_age: age,
                endpoint: Some("192.0.2.99:51820".into()),
                ..PeerView::default()
            }],
        };
        let views = vec![
            NodeView {
                name: "a".into(),
                namespace: "p-a".into(),
                tunnels: vec![tunnel("wg0", "KA", "KB", Some(3))],
                routes: vec![LearnedRoute {
                    prefix: "192.168.2.0/24".into(),
                    text: String::new(),
                }],
                ..NodeView::default()
            },
            NodeView {
                name: "b".into(),
                namespace: "p-b".into(),
                tunnels: vec![tunnel("wg0", "KB", "KA", Some(3))],
                ..NodeView::default()
            },
            NodeView {
                name: "c".into(),
                namespace: "p-c".into(),
                tunnels: vec![tunnel("wgq", "KC", "KX", None)],
                ..NodeView::default()
            },
        ];
        let svg = draw(&topology, &views);
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        // One tunnel line a-b, green; the underlay line; c's outside peer in red.
        assert_eq!(
            svg.matches(&format!("stroke=\"{ALIVE}\" stroke-width=\"3\""))
                .count(),
            1,
            "{svg}"
        );
        assert_eq!(
            svg.matches(&format!("stroke=\"{UNDERLAY}\"")).count(),
            1,
            "{svg}"
        );
        assert!(svg.contains("learned 192.168.2.0/24"), "{svg}");
        assert!(
            svg.contains(&format!("fill=\"{DEAD}\">wgq -&gt; 192.0.2.99:51820")),
            "{svg}"
        );
    }
}
