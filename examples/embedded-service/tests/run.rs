//! Runs the example service and checks its health endpoints answer from
//! its two in-process checks.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_example_serves_its_health() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-embedded-service"))
        .env("EXAMPLE_LISTEN", "127.0.0.1:0")
        .env("EXAMPLE_STOP_AFTER_MS", "3000")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the example");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    // Both checks run within a second of start.
    let mut ready = None;
    for _ in 0..40 {
        let resp = reqwest::get(format!("{base}/health/ready")).await.unwrap();
        if resp.status() == 200 {
            ready = Some(resp.text().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready.as_deref(), Some(r#"{"status":"pass"}"#));
    let queue = reqwest::get(format!("{base}/orders/queue"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(queue.trim().parse::<u64>().is_ok(), "{queue}");
    let mut rest = String::new();
    for l in out.lines() {
        rest.push_str(&l.unwrap());
    }
    assert!(child.wait().unwrap().success());
    assert!(rest.contains("system status: pass"), "{rest}");
}
