//! Every diagnostic code has a fixture in tests/fixtures/err named after it; each fixture
//! reports that code, and its exact spans and messages are snapshots.

use netc::diag::Code;

use crate::support::*;

#[test]
fn every_code_has_a_fixture_that_reports_it() {
    let files = fixtures("err");
    for code in Code::ALL {
        let name = code.as_str().trim_start_matches("netc::");
        if *code == Code::BadConfig {
            continue; // a netc.toml mistake: see bad_config_is_positioned
        }
        let path = fixture(&format!("err/{name}.csn"));
        assert!(
            path.exists(),
            "no fixture for {code}: add {}",
            path.display()
        );
        let c = compile(&path);
        assert!(
            c.diags.iter().any(|d| d.code == *code),
            "{} does not report {code}:\n{}",
            path.display(),
            render_diags(&c)
        );
    }
    assert_eq!(
        files.len() + 1,
        Code::ALL.len(),
        "a fixture in err/ is not named after a code"
    );
}

#[test]
fn error_fixtures_fail_and_warning_fixtures_build() {
    for path in fixtures("err") {
        let c = compile(&path);
        let code = c
            .diags
            .iter()
            .map(|d| d.code)
            .find(|d| d.as_str().ends_with(&stem(&path)));
        let code = code.expect("checked above");
        match code.severity() {
            netc::diag::Severity::Error => assert!(c.topology.is_none(), "{}", path.display()),
            netc::diag::Severity::Warning => {
                assert!(
                    c.topology.is_some(),
                    "{} has errors:\n{}",
                    path.display(),
                    render_diags(&c)
                )
            }
        }
    }
}

#[test]
fn diagnostics_snapshots() {
    for path in fixtures("err") {
        let c = compile(&path);
        insta::assert_snapshot!(format!("err-{}", stem(&path)), render_diags(&c));
    }
}

/// netc.toml beside the topology is checked too, with the position in that file.
#[test]
fn bad_config_is_positioned() {
    let o = netc(
        &["check", "tests/fixtures/err/bad-config/topology.csn"],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("netc::bad-config"), "{err}");
    assert!(
        err.contains("tests/fixtures/err/bad-config/netc.toml:3:10"),
        "{err}"
    );
    assert!(err.contains("unknown variant `pf`"), "{err}");
}

/// The errors of a mistakes/ fixture, by code.
fn errors_of(name: &str) -> Vec<Code> {
    let c = compile(&fixture(&format!("mistakes/{name}.csn")));
    let errors = c.diags.iter().filter(|d| d.is_error()).map(|d| d.code);
    errors.collect()
}

/// One mistake, one error: host bits in a VLAN's prefix. The addresses on that VLAN cannot
/// be checked, so "a management server has no IPv4 address on the VLAN" is not reported.
#[test]
fn a_bad_prefix_is_one_error() {
    assert_eq!(errors_of("followon-prefix-host-bits"), [Code::HostBitsSet]);
}

/// A second bridge on a VLAN: neither its port name nor its address is reported again.
#[test]
fn a_second_bridge_on_a_vlan_is_one_error() {
    assert_eq!(
        errors_of("followon-second-bridge"),
        [Code::DuplicateBridgeVlan]
    );
}

/// An IPv6 VIP address on an IPv4-only VLAN: the members lack no address the VIP really has.
#[test]
fn a_vip_address_of_the_wrong_family_is_one_error() {
    assert_eq!(errors_of("followon-vip-family"), [Code::AddressFamily]);
}

/// The errors of csc.csn with one edit.
fn errors_after(from: &str, to: &str) -> Vec<Code> {
    let text = std::fs::read_to_string(root().join("topology/csc.csn")).unwrap();
    assert!(text.contains(from), "{from}");
    let c = netc::compile("edited.csn", text.replacen(from, to, 1).as_bytes());
    c.diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect()
}

/// A bridge block pasted twice: the name is repeated, and nothing in the copy is reported.
#[test]
fn a_pasted_bridge_block_is_one_error() {
    let block = "    bridge br134 vlan 134 on ens1f0np0 {\n        address 2620:101:f000:4901:c5c::148\n        address 198.51.100.22  # illustrative\n    }\n";
    let twice = format!("{block}{block}");
    assert_eq!(errors_after(block, &twice), [Code::DuplicateInterface]);
}

/// `allow vlan` of a VLAN whose only prefix was rejected: not "the VLAN has no prefix".
#[test]
fn allowing_a_vlan_with_a_rejected_prefix_is_one_error() {
    let only_v4 = "    prefix fd74:6b6a:8eca:4902::/64\n    prefix 172.19.168.0/27\n";
    assert_eq!(
        errors_after(only_v4, "    prefix 172.19.168.1/27\n"),
        [Code::HostBitsSet]
    );
}

/// Two mistakes on one host are two errors: an error elsewhere on the host (a NIC's MTU)
/// does not explain that it has no bridge on the management VLAN, so that is still said.
#[test]
fn an_error_on_a_host_does_not_hide_another_mistake_on_it() {
    let bridge = "    bridge br529 vlan 529 on eno1 {\n        address fd74:6b6a:8eca:4902::23  # illustrative\n        address 172.19.168.23            # illustrative\n    }\n";
    let missing = errors_after(bridge, "");
    assert_eq!(
        missing,
        [
            Code::NoManagementPath,
            Code::AgentMissingBridge,
            Code::VipMemberWithoutBridge
        ]
    );
    let text = std::fs::read_to_string(root().join("topology/csc.csn")).unwrap();
    let chamomile = text.find("host chamomile").unwrap();
    let (before, after) = text.split_at(chamomile);
    let after =
        after
            .replacen(bridge, "", 1)
            .replacen("nic eno2  # illustrative", "nic eno2 mtu 70000", 1);
    let c = netc::compile("edited.csn", format!("{before}{after}").as_bytes());
    let mut errors: Vec<Code> = c
        .diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect();
    errors.sort();
    let mut want = [Code::MtuRange, missing[0], missing[1], missing[2]];
    want.sort();
    assert_eq!(errors, want);
}

/// A management VIP whose IPv4 address does not parse: agents that connect to it over IPv4
/// get no second error saying the VIP has no IPv4 address.
#[test]
fn a_rejected_management_vip_address_is_one_error() {
    let text = std::fs::read_to_string(root().join("topology/examples/advanced-zone.csn")).unwrap();
    let from = "    address 10.1.0.10\n";
    assert!(text.contains("servers vip api") && text.contains(from));
    let c = netc::compile(
        "edited.csn",
        text.replacen(from, "    address 10.1.0.300\n", 1)
            .as_bytes(),
    );
    let errors: Vec<Code> = c
        .diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect();
    assert_eq!(errors, [Code::BadAddress]);
}
