//! Against real rustls servers on 127.0.0.1:0, with certificates made here.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use vitalis_core::{Check, Outcome, Status};

use crate::BuildCx;

/// A CA (PEM file in `dir`) and a way to issue server certificates.
struct Ca {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn ca() -> Ca {
    named_ca("Vitalis Test CA")
}

fn named_ca(name: &str) -> Ca {
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.path().join("ca.pem"), issuer.pem()).unwrap();
    Ca { dir, issuer }
}

impl Ca {
    fn pem_path(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    /// Serves a certificate for localhost/127.0.0.1 valid from `from_days`
    /// to `to_days` relative to now; returns `127.0.0.1:port`.
    async fn serve(&self, from_days: i64, to_days: i64) -> String {
        let now = time::OffsetDateTime::now_utc();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now + time::Duration::days(from_days);
        params.not_after = now + time::Duration::days(to_days) + time::Duration::hours(1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let config = ServerConfig::builder_with_provider(crate::tls::roots::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(socket).await {
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        addr.to_string()
    }
}

fn build(toml_text: &str) -> Result<Arc<dyn Check>, crate::BuildError> {
    let table: toml::Table = toml::from_str(toml_text).expect("valid toml");
    crate::kind("tls")
        .unwrap()
        .build(table, &BuildCx::default())
}

async fn run(toml_text: &str) -> Outcome {
    crate::testing::run("tls", toml_text, Duration::from_secs(5)).await
}

use crate::testing::error;

#[tokio::test]
async fn a_valid_certificate_passes_with_days_left() {
    let ca = ca();
    let addr = ca.serve(-1, 90).await;
    let o = run(&format!("address = \"{addr}\"\nca = \"{}\"", ca.pem_path())).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.observed_unit.as_deref(), Some("days"));
    let days = o.observed_value.unwrap();
    assert!((89.9..=90.1).contains(&days), "{days}");
    assert!(
        o.output.contains("TLS 1.3")
            && o.output
                .contains("'CN=localhost' (issued by CN=Vitalis Test CA)"),
        "{}",
        o.output
    );
    // By name, with the default server_name taken from the address.
    let port = addr.rsplit_once(':').unwrap().1;
    let o = run(&format!(
        "address = \"localhost:{port}\"\nca = \"{}\"",
        ca.pem_path()
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let check = build(&format!("address = \"localhost:{port}\"")).unwrap();
    assert_eq!(check.target_host().as_deref(), Some("localhost"));
}

#[tokio::test]
async fn near_expiry_warns_then_fails_by_the_thresholds() {
    let ca = ca();
    let addr = ca.serve(-60, 10).await;
    let o = run(&format!("address = \"{addr}\"\nca = \"{}\"", ca.pem_path())).await;
    assert_eq!(o.status, Status::Warn, "{o:?}");
    assert!(
        error(&o).contains("in 10.0 days: under warn_days 30; renew it"),
        "{}",
        error(&o)
    );
    let o = run(&format!(
        "address = \"{addr}\"\nca = \"{}\"\nwarn_days = 20\nfail_days = 14",
        ca.pem_path()
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("under fail_days 14; renew it now"),
        "{}",
        error(&o)
    );
    let o = run(&format!(
        "address = \"{addr}\"\nca = \"{}\"\nwarn_days = 5\nfail_days = 1",
        ca.pem_path()
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
}

#[tokio::test]
async fn an_expired_certificate_fails_saying_when() {
    let ca = ca();
    let addr = ca.serve(-100, -3).await;
    let o = run(&format!("address = \"{addr}\"\nca = \"{}\"", ca.pem_path())).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("'CN=localhost' (issued by CN=Vitalis Test CA) expired on ")
            && error(&o).contains("days ago); renew it and reload the server"),
        "{}",
        error(&o)
    );
    assert!(o.observed_value.unwrap() < -2.0, "{o:?}");
}

#[tokio::test]
async fn a_not_yet_valid_certificate_fails() {
    let ca = ca();
    let addr = ca.serve(2, 90).await;
    let o = run(&format!("address = \"{addr}\"\nca = \"{}\"", ca.pem_path())).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("is not valid yet until") && error(&o).contains("clock"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn a_wrong_name_fails_listing_the_certificate_names() {
    let ca = ca();
    let addr = ca.serve(-1, 90).await;
    let o = run(&format!(
        "address = \"{addr}\"\nserver_name = \"db.internal.test\"\nca = \"{}\"",
        ca.pem_path()
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("(server_name db.internal.test)")
            && error(&o).contains("is for localhost, 127.0.0.1, not for 'db.internal.test'")
            && error(&o).contains("set server_name"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn an_untrusted_chain_fails_pointing_at_ca() {
    let ca = ca();
    let addr = ca.serve(-1, 90).await;
    let o = run(&format!("address = \"{addr}\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o)
            .contains("is not trusted: CN=Vitalis Test CA does not lead to a CA this host trusts")
            && error(&o).contains("set ca to that CA's PEM file"),
        "{}",
        error(&o)
    );
    // Another CA in `ca` does not help, and the message says so.
    let other = named_ca("Other CA");
    let o = run(&format!(
        "address = \"{addr}\"\nca = \"{}\"",
        other.pem_path()
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("not signed by the CA in `ca`"),
        "{}",
        error(&o)
    );
    // A regenerated CA with the same name: the signature does not match.
    let regenerated = named_ca("Vitalis Test CA");
    let o = run(&format!(
        "address = \"{addr}\"\nca = \"{}\"",
        regenerated.pem_path()
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("bad signature") && error(&o).contains("regenerated"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn plain_text_and_closed_ports_fail_with_what_to_look_at() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let o = run(&format!("address = \"{addr}\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("TLS handshake failed") && error(&o).contains("did not answer with TLS"),
        "{}",
        error(&o)
    );

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let o = run(&format!("address = \"{addr}\"")).await;
    assert!(error(&o).contains("connect failed") && error(&o).contains("nothing listens there"));
}

#[test]
fn refuses_bad_config_naming_the_key() {
    let key = |text: &str| build(text).err().unwrap().key;
    assert_eq!(key("address = \"no-port\"").as_deref(), Some("address"));
    assert_eq!(
        key("address = \"h:443\"\nwarn_days = 3\nfail_days = 10").as_deref(),
        Some("fail_days")
    );
    assert_eq!(
        key("address = \"h:443\"\nca = \"/nonexistent/ca.pem\"").as_deref(),
        Some("ca")
    );
    assert_eq!(
        key("address = \"h:443\"\nserver_name = \"bad name!\"").as_deref(),
        Some("server_name")
    );
    assert_eq!(
        key("address = \"h:443\"\nwarn = 3").as_deref(),
        Some("warn")
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "no certificate here").unwrap();
    let e = build(&format!("address = \"h:443\"\nca = \"{}\"", junk.display()))
        .err()
        .unwrap();
    assert!(e.message.contains("holds no PEM certificate"), "{e}");
}

#[test]
fn the_schema_lists_every_key_and_a_config_builds_without_a_runtime() {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = crate::kind("tls").unwrap().schema(&mut generator);
    let text = serde_json::to_string(&schema).unwrap();
    let defs = serde_json::to_string(&generator.definitions()).unwrap();
    for key in ["address", "server_name", "warn_days", "fail_days", "ca"] {
        assert!(text.contains(key) || defs.contains(key), "{key} missing");
    }
    // As `vitalis validate` does: no tokio runtime here.
    let table: toml::Table = toml::from_str("address = \"h:443\"").unwrap();
    assert!(
        crate::kind("tls")
            .unwrap()
            .build(table, &crate::BuildCx::default())
            .is_ok()
    );
}
