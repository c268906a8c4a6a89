//! A neighbor's prefix limit: FRR announces more prefixes than wgd takes
//! from it, and wgd resets the session with Cease / Maximum Number of
//! Prefixes Reached (RFC 4486), installing none of them.

use std::time::Duration;

use wgd_labs::wait_for;
use wgd_tests::bgp::{api, summary};
use wgd_tests::bridge::BridgeLab;
use wgd_tests::frr::Frr;

#[test]
fn a_neighbor_over_its_prefix_limit_is_reset() -> anyhow::Result<()> {
    let speaker = format!(
        "\n[bgp]\nasn = 65001\nhold_time = 9\n\
         [[bgp.neighbor]]\naddress = \"{}\"\nremote_as = 65002\nprefix_limit = 2\n",
        BridgeLab::TUNNEL_B
    );
    let lab = BridgeLab::new(&speaker)?;
    let frr = Frr::start(
        &lab.b,
        &format!(
            "frr defaults traditional\nhostname site-b\n\
             router bgp 65002\n bgp router-id {b}\n no bgp ebgp-requires-policy\n no bgp network import-check\n\
             timers bgp 3 9\n neighbor {a} remote-as 65001\n\
             address-family ipv4 unicast\n  network 198.51.100.0/25\n  network 198.51.100.128/25\n  network 203.0.113.0/24\n exit-address-family\n",
            b = BridgeLab::TUNNEL_B,
            a = BridgeLab::TUNNEL_A,
        ),
    )?;
    wait_for(
        Duration::from_secs(30),
        "the reset over the prefix limit",
        || {
            let summary = summary(&lab.wgd, &lab.a, api(&lab));
            summary["neighbors"][0]["last_error"]
                .as_str()
                .is_some_and(|error| error.contains("(6/1)"))
        },
    )
    .map_err(|error| {
        let bgp = frr.vtysh(&["show bgp summary"]).unwrap_or_default();
        anyhow::anyhow!("{error}\nFRR:\n{bgp}\nwgd:\n{}", lab.log())
    })?;
    let error = summary(&lab.wgd, &lab.a, api(&lab))["neighbors"][0]["last_error"].clone();
    assert!(
        error
            .as_str()
            .unwrap_or_default()
            .contains("Maximum Number of Prefixes Reached"),
        "{error}"
    );
    assert_eq!(
        lab.kernel_count()?,
        0,
        "routes of a neighbor over its limit went in: {:?}",
        lab.kernel_routes()?
    );
    Ok(())
}
