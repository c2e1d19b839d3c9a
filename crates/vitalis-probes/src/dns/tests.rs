//! Against a real DNS server: dnsmasq on a free loopback port.

use std::time::Duration;

use vitalis_core::{CheckCx, Outcome, Status};
use vitalis_testkit::dnsmasq::Dnsmasq;

use super::*;

fn server() -> Dnsmasq {
    Dnsmasq::start(&[
        "--address=/flat.test/10.1.2.3",
        "--address=/gone.test/",
        "--local=/ok.test/",
        "--host-record=api.ok.test,10.1.2.4,fd00::4",
        "--cname=www.ok.test,api.ok.test",
        "--txt-record=ok.test,v=spf1 -all",
        "--mx-host=ok.test,mail.ok.test,10",
    ])
}

fn build(toml_text: &str) -> Result<Arc<dyn Check>, BuildError> {
    crate::testing::build("dns", toml_text)
}

async fn run(toml_text: &str) -> Outcome {
    crate::testing::run("dns", toml_text, Duration::from_secs(3)).await
}

use crate::testing::error;

#[tokio::test]
async fn answers_pass_and_expectations_are_checked() {
    let dns = server();
    let at = dns.address();
    let o = run(&format!(
        "query = \"flat.test\"\nserver = \"{at}\"\nexpect = [\"10.1.2.3\"]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.observed_unit.as_deref(), Some("ms"));
    assert!(
        o.output
            .contains(&format!("dns A flat.test @{at}: NOERROR ['10.1.2.3']")),
        "{}",
        o.output
    );

    let o = run(&format!(
        "query = \"api.ok.test.\"\nrecord = \"aaaa\"\nserver = \"{at}\"\nexpect = [\"fd00:0:0::4\"]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");

    let o = run(&format!(
        "query = \"ok.test\"\nrecord = \"TXT\"\nserver = \"{at}\"\nexpect = [\"v=spf1 -all\"]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");

    let o = run(&format!(
        "query = \"ok.test\"\nrecord = \"MX\"\nserver = \"{at}\"\nexpect = [\"10 MAIL.ok.test.\"]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");

    let o = run(&format!(
        "query = \"www.ok.test\"\nrecord = \"CNAME\"\nserver = \"{at}\"\nexpect = [\"api.ok.test\"]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let o = run(&format!("query = \"www.ok.test\"\nserver = \"{at}\"")).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(
        o.output.contains("['10.1.2.4'] (an alias of api.ok.test)"),
        "{}",
        o.output
    );

    let o = run(&format!(
        "query = \"flat.test\"\nserver = \"{at}\"\nexpect = [\"10.1.2.3\", \"10.9.9.9\"]"
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("expected '10.9.9.9' among the answers, got ['10.1.2.3']"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn assertions_see_the_answer_document() {
    let dns = server();
    let at = dns.address();
    let o = run(&format!(
        "query = \"flat.test\"\nserver = \"{at}\"\nassert = [{{ path = \"$.count\", op = \"==\", value = 1 }}, {{ path = \"$.answers[0]\", op = \"matches\", value = \"^10\\\\.\" }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    // A name that must be gone: NXDOMAIN passes through an assertion.
    let o = run(&format!(
        "query = \"gone.test\"\nserver = \"{at}\"\nassert = [{{ path = \"$.rcode\", op = \"==\", value = \"NXDOMAIN\" }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let o = run(&format!(
        "query = \"flat.test\"\nserver = \"{at}\"\nassert = [{{ path = \"$.count\", op = \">\", value = 2, impact = \"warn\" }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Warn, "{o:?}");
    assert!(
        error(&o).contains("$.count = 1, expected > 2"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn error_codes_fail_with_what_they_mean() {
    let mut dns = server();
    let at = dns.address();
    let o = run(&format!("query = \"gone.test\"\nserver = \"{at}\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("does not exist (NXDOMAIN)"),
        "{}",
        error(&o)
    );

    let o = run(&format!("query = \"elsewhere.test\"\nserver = \"{at}\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("refused the query (REFUSED)") && error(&o).contains("recursion"),
        "{}",
        error(&o)
    );

    let o = run(&format!(
        "query = \"api.ok.test\"\nrecord = \"MX\"\nserver = \"{at}\""
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("no MX record (the name exists, the answer is empty)"),
        "{}",
        error(&o)
    );
    let o = run(&format!("query = \"nope.ok.test\"\nserver = \"{at}\"")).await;
    assert!(error(&o).contains("(NXDOMAIN)"), "{}", error(&o));

    dns.stop();
    let o = run(&format!("query = \"flat.test\"\nserver = \"{at}\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("no answer within 3s")
            && error(&o).contains("is the DNS server running"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_check_timeout() {
    // A UDP socket that never answers.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let at = silent.local_addr().unwrap();
    let check = build(&format!("query = \"flat.test\"\nserver = \"{at}\"")).unwrap();
    let start = std::time::Instant::now();
    let o = check.run(CheckCx::new(Duration::from_millis(1500))).await;
    assert!(start.elapsed() < Duration::from_millis(1900));
    assert_eq!(o.status, Status::Fail);
    assert!(
        error(&o).contains("no answer") && error(&o).contains("firewall"),
        "{}",
        error(&o)
    );
    assert_eq!(check.target_host().as_deref(), Some("127.0.0.1"));
}

#[test]
fn resolv_conf_nameservers_are_read() {
    let text = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver fd00::53\nnameserver fe80::1%eth0\noptions ndots:2\n";
    assert_eq!(
        nameservers(text),
        vec![
            "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
            "[fd00::53]:53".parse().unwrap()
        ]
    );
    assert_eq!(parse_server("10.0.0.2"), Some(("10.0.0.2".into(), 53)));
    assert_eq!(parse_server("[::1]:5353"), Some(("::1".into(), 5353)));
    assert_eq!(
        parse_server("ns1.example.com:53"),
        Some(("ns1.example.com".into(), 53))
    );
}

#[test]
fn refuses_bad_config_naming_the_key() {
    let key = |text: &str| build(text).err().unwrap().key;
    assert_eq!(key("query = \"\"").as_deref(), Some("query"));
    assert_eq!(key("query = \"a..b\"").as_deref(), Some("query"));
    assert_eq!(
        key("query = \"a.test\"\nrecord = \"BOGUS\"").as_deref(),
        Some("record")
    );
    assert_eq!(
        key("query = \"a.test\"\nrecord = \"AXFR\"").as_deref(),
        Some("record")
    );
    assert_eq!(
        key("query = \"a.test\"\nserver = \"x:y\"").as_deref(),
        Some("server")
    );
    assert_eq!(
        key("query = \"a.test\"\nexpect = [\"\"]").as_deref(),
        Some("expect")
    );
    assert_eq!(
        key("query = \"a.test\"\nname = \"x\"").as_deref(),
        Some("name")
    );
}

#[test]
fn the_schema_lists_every_key_and_a_config_builds_without_a_runtime() {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = crate::kind("dns").unwrap().schema(&mut generator);
    let text = serde_json::to_string(&schema).unwrap();
    let defs = serde_json::to_string(&generator.definitions()).unwrap();
    for key in ["query", "record", "server", "expect", "assert"] {
        assert!(text.contains(key) || defs.contains(key), "{key} missing");
    }
    // As `vitalis validate` does: no tokio runtime here.
    let table: toml::Table = toml::from_str("query = \"a.test\"").unwrap();
    assert!(
        crate::kind("dns")
            .unwrap()
            .build(table, &crate::BuildCx::default())
            .is_ok()
    );
}
