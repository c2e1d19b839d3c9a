use serde_json::json;

use super::*;

fn compile(toml_text: &str, subject: Subject) -> Result<Assertions, BuildError> {
    #[derive(Deserialize)]
    struct T {
        #[serde(rename = "assert")]
        list: Vec<AssertionConfig>,
    }
    let t: T = toml::from_str(toml_text).expect("valid toml");
    Assertions::compile("assert", t.list, subject)
}

fn json_verdict(toml_text: &str, doc: Value) -> Verdict {
    compile(toml_text, Subject::Json)
        .unwrap()
        .evaluate_json(&doc)
}

#[test]
fn numeric_comparison_names_path_op_expected_and_actual() {
    let doc = json!({"positions": {"age_ms": 1250}});
    let v = json_verdict(
        r#"assert = [{ path = "$.positions.age_ms", op = "<", value = 500 }]"#,
        doc.clone(),
    );
    assert_eq!(v.status, Status::Fail);
    assert_eq!(v.message(), "$.positions.age_ms = 1250, expected < 500");
    let v = json_verdict(
        r#"assert = [{ path = "$.positions.age_ms", op = "<", value = 5000 }]"#,
        doc,
    );
    assert_eq!(v.status, Status::Pass);
    assert_eq!(v.summary(), "$.positions.age_ms = 1250 (< 5000)");
}

#[test]
fn warn_and_fail_thresholds_are_two_assertions() {
    let rules = r#"assert = [
        { path = "$.lag", op = "<", value = 60 },
        { path = "$.lag", op = "<", value = 20, impact = "warn" },
    ]"#;
    assert_eq!(json_verdict(rules, json!({"lag": 5})).status, Status::Pass);
    let v = json_verdict(rules, json!({"lag": 30}));
    assert_eq!(v.status, Status::Warn);
    assert_eq!(v.message(), "$.lag = 30, expected < 20 (impact warn)");
    let v = json_verdict(rules, json!({"lag": 90}));
    assert_eq!(v.status, Status::Fail);
    assert_eq!(v.failures.len(), 2);
    assert!(
        v.failures[0].starts_with("$.lag = 90, expected < 60"),
        "{v:?}"
    );
}

#[test]
fn every_op() {
    let doc = json!({
        "status": "ok", "version": "2.4.1", "n": 3, "s": "7", "flag": true,
        "nothing": null, "items": [{"lag": 1}, {"lag": 2}, {"lag": 9}]
    });
    let cases = [
        (r#"{ path = "$.status", op = "==", value = "ok" }"#, true),
        (r#"{ path = "$.status", op = "!=", value = "ok" }"#, false),
        (r#"{ path = "$.n", op = "==", value = 3.0 }"#, true),
        (r#"{ path = "$.n", op = "<=", value = 3 }"#, true),
        (r#"{ path = "$.n", op = ">=", value = 4 }"#, false),
        (r#"{ path = "$.n", op = ">", value = 2 }"#, true),
        // numeric strings compare as numbers, on either side
        (r#"{ path = "$.s", op = ">", value = 10 }"#, false),
        (r#"{ path = "$.s", op = "<", value = "10" }"#, true),
        (r#"{ path = "$.n", op = "==", value = "3" }"#, true),
        // non-numbers compare as strings
        (r#"{ path = "$.flag", op = "==", value = true }"#, true),
        (r#"{ path = "$.flag", op = "==", value = "true" }"#, true),
        (r#"{ path = "$.version", op = ">=", value = "2.1" }"#, true),
        (
            r#"{ path = "$.version", op = "matches", value = "^2\\." }"#,
            true,
        ),
        (
            r#"{ path = "$.version", op = "matches", value = "^3" }"#,
            false,
        ),
        (
            r#"{ path = "$.n", op = "matches", value = "^[0-9]+$" }"#,
            true,
        ),
        (r#"{ path = "$.status", op = "exists" }"#, true),
        (r#"{ path = "$.missing", op = "exists" }"#, false),
        (
            r#"{ path = "$.missing", op = "exists", value = false }"#,
            true,
        ),
        (r#"{ path = "$.nothing", op = "exists" }"#, false),
        (
            r#"{ path = "$.status", op = "exists", value = false }"#,
            false,
        ),
        // missing paths fail comparisons
        (r#"{ path = "$.missing", op = "!=", value = 1 }"#, false),
        // every selected node must pass
        (r#"{ path = "$.items[*].lag", op = "<", value = 10 }"#, true),
        (r#"{ path = "$.items[*].lag", op = "<", value = 5 }"#, false),
        // objects do not order
        (r#"{ path = "$.items", op = "<", value = 5 }"#, false),
        (r#"{ op = "exists" }"#, true),
    ];
    for (rule, expect_pass) in cases {
        let v = json_verdict(&format!("assert = [{rule}]"), doc.clone());
        assert_eq!(v.status == Status::Pass, expect_pass, "{rule}: {v:?}");
    }
}

#[test]
fn diagnostics_for_missing_many_and_strings() {
    let doc = json!({"items": [{"lag": 1}, {"lag": 7}, {"lag": 9}], "status": "degraded"});
    let v = json_verdict(
        r#"assert = [{ path = "$.items[*].lag", op = "<", value = 5 }]"#,
        doc.clone(),
    );
    assert_eq!(
        v.message(),
        "$['items'][1]['lag'] = 7, expected < 5 (2 of 3 values fail)"
    );
    let v = json_verdict(
        r#"assert = [{ path = "$.status", op = "==", value = "ok" }]"#,
        doc.clone(),
    );
    assert_eq!(v.message(), r#"$.status = "degraded", expected == "ok""#);
    let v = json_verdict(
        r#"assert = [{ path = "$.gone", op = ">", value = 1 }]"#,
        doc.clone(),
    );
    assert_eq!(v.message(), "$.gone not found, expected > 1");
    let v = json_verdict(
        r#"assert = [{ path = "$.status", op = "matches", value = "^ok$" }]"#,
        doc,
    );
    assert_eq!(
        v.message(),
        r#"$.status = "degraded", expected matches "^ok$""#
    );
}

#[test]
fn single_values_and_named_values() {
    let rules = r#"assert = [{ op = "<", value = 60 }, { op = "<", value = 20, impact = "warn" }]"#;
    let a = compile(rules, Subject::Value).unwrap();
    assert_eq!(a.evaluate_value(&json!(10)).status, Status::Pass);
    let v = a.evaluate_value(&json!("45.5"));
    assert_eq!(v.status, Status::Warn);
    assert_eq!(
        v.message(),
        r#"value = "45.5", expected < 20 (impact warn)"#
    );
    let exists = compile(r#"assert = [{ op = "exists" }]"#, Subject::Value).unwrap();
    assert_eq!(exists.evaluate_value(&Value::Null).status, Status::Fail);

    let headers = compile(
        r#"assert = [{ path = "X-MBX-Used-Weight-1m", op = "<", value = 1000 }]"#,
        Subject::Named("header"),
    )
    .unwrap();
    let v = headers.evaluate_named(|name| {
        assert_eq!(name, "x-mbx-used-weight-1m");
        vec![json!("1200")]
    });
    assert_eq!(v.status, Status::Fail);
    assert_eq!(
        v.message(),
        r#"header x-mbx-used-weight-1m = "1200", expected < 1000"#
    );
    let v = headers.evaluate_named(|_| Vec::new());
    assert_eq!(
        v.message(),
        "header x-mbx-used-weight-1m not found, expected < 1000"
    );
}

#[test]
fn bad_assertions_are_config_errors_naming_the_index() {
    let bad = [
        (
            r#"assert = [{ op = "<", value = 1 }, { path = "$.[", op = "<", value = 1 }]"#,
            Subject::Json,
            "assert[1]: path '$.[' is not an RFC 9535 JSON path",
        ),
        (
            r#"assert = [{ path = "$.a", op = "<" }]"#,
            Subject::Json,
            "op '<' needs a value",
        ),
        (
            r#"assert = [{ path = "$.a", op = "matches", value = "(" }]"#,
            Subject::Json,
            "not a valid regular expression",
        ),
        (
            r#"assert = [{ path = "$.a", op = "matches", value = 3 }]"#,
            Subject::Json,
            "needs a regular expression",
        ),
        (
            r#"assert = [{ path = "$.a", op = "<", value = [1] }]"#,
            Subject::Json,
            "compares numbers or strings",
        ),
        (
            r#"assert = [{ path = "$.a", op = "==", value = 1 }]"#,
            Subject::Value,
            "yields one value",
        ),
        (
            r#"assert = [{ op = "==", value = 1 }]"#,
            Subject::Named("header"),
            "must name the header",
        ),
        (
            r#"assert = [{ op = "exists", value = 3 }]"#,
            Subject::Json,
            "value = true/false",
        ),
    ];
    for (rules, subject, want) in bad {
        let e = compile(rules, subject).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("assert"));
        assert!(e.message.contains(want), "{rules}: {e}");
    }
    // Unknown keys and ops are serde errors.
    assert!(
        toml::from_str::<AssertionConfig>(r#"op = "~=""#)
            .unwrap_err()
            .to_string()
            .contains("unknown variant")
    );
    assert!(toml::from_str::<AssertionConfig>("op = \"exists\"\npth = \"$.a\"").is_err());
}
