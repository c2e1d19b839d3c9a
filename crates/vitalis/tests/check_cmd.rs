//! `vitalis check` and `vitalis validate`: output and exit codes.

use crate::util::{TestDir, plugin};

fn config(checks: &str) -> String {
    format!("[[component]]\nid = \"svc\"\ncritical = true\n{checks}")
}

fn dummy(name: &str, code: u8, impact: &str) -> String {
    format!(
        "  [[component.check]]\n  name = \"{name}\"\n  type = \"command\"\n  impact = \"{impact}\"\n  command = [\"{}\", \"{code}\", \"dummy says {code}\"]\n",
        plugin("check_dummy")
    )
}

#[test]
fn exit_codes_follow_the_system_status() {
    let dir = TestDir::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = format!(
        "  [[component.check]]\n  name = \"port\"\n  level = \"live\"\n  type = \"tcp\"\n  address = \"{addr}\"\n"
    );
    let cases = [
        ("pass.toml", config(&tcp), 0),
        (
            "warn.toml",
            config(&format!("{tcp}{}", dummy("d", 1, "fail"))),
            1,
        ),
        ("unknown.toml", config(&dummy("d", 3, "fail")), 1),
        (
            "capped.toml",
            config(&format!("{tcp}{}", dummy("d", 2, "warn"))),
            1,
        ),
        (
            "fail.toml",
            config(&format!("{tcp}{}", dummy("d", 2, "fail"))),
            2,
        ),
    ];
    for (name, text, want) in cases {
        dir.write(name, &text);
        let out = dir.vitalis(&["check", "--config", name]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(want),
            "{name}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("STATUS") && stdout.contains("svc"),
            "{stdout}"
        );
    }
    // A closed port fails with an actionable diagnostic, root cause named.
    dir.write("closed.toml", &config("  [[component.check]]\n  name = \"port\"\n  type = \"tcp\"\n  address = \"127.0.0.1:1\"\n"));
    let out = dir.vitalis(&["check", "--config", "closed.toml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "fail");
    assert_eq!(doc["root_causes"][0]["component"], "svc");
    let err = doc["checks"][0]["error"].as_str().unwrap();
    assert!(
        err.contains("127.0.0.1:1") && err.contains("nothing listens there"),
        "{err}"
    );
    drop(listener);
}

#[test]
fn unusable_configs_exit_3_naming_file_line_and_field() {
    let dir = TestDir::new();
    dir.write("bad.toml", "[[component]]\nid = \"svc\"\n  [[component.check]]\n  name = \"port\"\n  type = \"tcp\"\n  adress = \"x:1\"\n");
    for cmd in ["check", "validate"] {
        let out = dir.vitalis(&[cmd, "--config", "bad.toml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{cmd}: {stderr}");
        assert!(
            stderr.contains("bad.toml:6:3: component[0].check[0].adress"),
            "{cmd}: {stderr}"
        );
    }
    let out = dir.vitalis(&["validate", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    dir.write("good.toml", &config("  [[component.check]]\n  name = \"port\"\n  type = \"tcp\"\n  address = \"127.0.0.1:1\"\n"));
    let out = dir.vitalis(&["validate", "--config", "good.toml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 components, 1 checks"));
}

#[test]
fn schema_and_help() {
    let dir = TestDir::new();
    let out = dir.vitalis(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema.to_string().contains("min_passing"));
    for cmd in ["serve", "check", "validate", "schema"] {
        let out = dir.vitalis(&[cmd, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Example: `vitalis"),
            "{cmd} --help lacks an example:\n{text}"
        );
    }
}
