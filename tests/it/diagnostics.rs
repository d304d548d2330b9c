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
