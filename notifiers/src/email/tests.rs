//! The email channel against a real SMTP server over TCP: aiosmtpd (PyPI), run by
//! `notifiers/tests/smtp/server.py`, with STARTTLS or implicit TLS on a certificate from a CA
//! generated here, AUTH PLAIN/LOGIN checked by the server, and every accepted message written
//! to a directory these tests read.
//!
//! The Python interpreter is `$HERALD_TEST_PYTHON` (set by `scripts/test.sh`), else
//! `target/pyenv/bin/python` of the workspace, else `python3`; it must import `aiosmtpd`. When
//! none works the tests fail (they never skip).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::*;
use crate::testutil::notification;

const USER: &str = "herald@example.test";
const PASSWORD: &str = "sm7p-pa55-Xq9";

/// A CA and a server certificate for 127.0.0.1/localhost, as PEM files in `dir`.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs(dir: &Path) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "herald-test-smtp-ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "herald-test-smtp");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let c = Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&c.ca, ca_cert.pem()).unwrap();
    std::fs::write(&c.cert, format!("{}{}", leaf_cert.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&c.key, leaf_key.serialize_pem()).unwrap();
    c
}

/// The interpreter that runs the server (see the module docs).
fn python() -> PathBuf {
    let workspace_venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    let candidates: Vec<PathBuf> = std::env::var_os("HERALD_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_venv, PathBuf::from("python3")])
        .collect();
    for p in &candidates {
        let ok = Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return p.clone();
        }
    }
    panic!(
        "no Python with aiosmtpd found (tried {candidates:?}); run scripts/test.sh, or \
         `python3 -m venv target/pyenv && target/pyenv/bin/pip install aiosmtpd`"
    );
}

/// A running SMTP server; killed on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    certs: Certs,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start(mode: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = certs(dir.path());
        let maildir = dir.path().join("mail");
        std::fs::create_dir(&maildir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--mode", mode, "--user", USER, "--password", PASSWORD])
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .arg("--maildir")
            .arg(&maildir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the SMTP test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("SMTP test server did not start: {line:?}"));
        Self {
            child,
            port,
            maildir,
            certs,
            _dir: dir,
        }
    }

    fn config(&self, tls: &str) -> EmailConfig {
        let yaml = format!(
            "host: 127.0.0.1\nport: {}\ntls: {tls}\nca_file: {}\nusername: {USER}\npassword: {{ value: '{PASSWORD}' }}\nfrom: 'kube-herald <herald@example.test>'\nto: [oncall@example.test, 'SRE Team <sre@example.test>']\ncc: [lead@example.test]\ntimeout: 5s\npool_size: 2\n",
            self.port,
            self.certs.ca.display()
        );
        serde_saphyr::from_str(&yaml).unwrap()
    }

    /// The messages received so far: (raw message, envelope metadata), in order.
    fn received(&self) -> Vec<(String, serde_json::Value)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.maildir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|meta| {
                let eml = std::fs::read_to_string(meta.with_extension("eml")).unwrap();
                let meta = serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
                (eml, meta)
            })
            .collect()
    }

    fn wait_for(&self, n: usize) -> Vec<(String, serde_json::Value)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email_notification() -> Notification {
    let mut n = notification("oncall-mail");
    n.message.title = "[CRITICAL] [prod] NodeNotReady: Node node-b is NotReady".into();
    n.message.body = serde_json::json!({
        "text": "Node node-b is NotReady\n\nCluster: prod",
        "html": "<h2>Node node-b is NotReady</h2><p>Cluster: &lt;prod&gt;</p>",
    })
    .to_string();
    n
}

fn header<'a>(eml: &'a str, name: &str) -> Option<&'a str> {
    eml.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn starttls_auth_plain_multipart_to_several_recipients() {
    let server = SmtpServer::start("starttls", &[]);
    let ch = EmailChannel::new("oncall-mail", &server.config("starttls")).unwrap();
    let n = email_notification();
    let outcome = ch.send(&n).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered { status: Some(250) });

    let got = server.wait_for(1);
    assert_eq!(got.len(), 1);
    let (eml, meta) = &got[0];
    assert_eq!(meta["tls"], true, "{meta}");
    assert_eq!(meta["login"], USER);
    assert_eq!(meta["mechanism"], "PLAIN");
    assert_eq!(meta["mail_from"], "herald@example.test");
    assert_eq!(
        meta["rcpt_tos"],
        serde_json::json!([
            "oncall@example.test",
            "sre@example.test",
            "lead@example.test"
        ])
    );
    assert!(
        header(eml, "Subject").is_some_and(|s| s.contains("NodeNotReady")),
        "{eml}"
    );
    assert_eq!(header(eml, "Message-ID"), Some(message_id(&n.id).as_str()));
    assert!(header(eml, "To").is_some_and(|t| t.contains("sre@example.test")));
    assert!(header(eml, "Cc").is_some_and(|t| t.contains("lead@example.test")));
    assert!(
        header(eml, "Content-Type").is_some_and(|t| t.starts_with("multipart/alternative")),
        "{eml}"
    );
    assert!(
        eml.contains("Content-Type: text/plain; charset=utf-8"),
        "{eml}"
    );
    assert!(
        eml.contains("Content-Type: text/html; charset=utf-8"),
        "{eml}"
    );
    assert!(eml.contains("Cluster: &lt;prod&gt;"), "{eml}");
    assert!(!eml.contains(PASSWORD));
}

#[tokio::test]
async fn implicit_tls_with_auth_login() {
    let server = SmtpServer::start("tls", &[]);
    let mut cfg = server.config("tls");
    cfg.auth = Some(vec![AuthMechanism::Login]);
    cfg.cc.clear();
    let ch = EmailChannel::new("oncall-mail", &cfg).unwrap();
    let mut n = email_notification();
    n.message.body = "plain only".into();
    let outcome = ch.send(&n).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let got = server.wait_for(1);
    let (eml, meta) = &got[0];
    assert_eq!(meta["tls"], true);
    assert_eq!(meta["mechanism"], "LOGIN");
    assert_eq!(meta["rcpt_tos"].as_array().map(Vec::len), Some(2));
    assert!(header(eml, "Content-Type").is_some_and(|t| t.starts_with("text/plain")));
    assert!(eml.contains("plain only"));
}

#[tokio::test]
async fn the_pool_reuses_one_connection() {
    let server = SmtpServer::start("starttls", &[]);
    let mut cfg = server.config("starttls");
    cfg.pool_size = 1;
    let ch = EmailChannel::new("oncall-mail", &cfg).unwrap();
    for i in 0..5 {
        let mut n = email_notification();
        n.id = format!("{}-{i}", n.id);
        assert!(ch.send(&n).await.is_delivered(), "{i}");
        // lettre hands a connection back to its pool in the background.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let got = server.wait_for(5);
    assert_eq!(got.len(), 5);
    let peers: std::collections::BTreeSet<String> =
        got.iter().map(|(_, m)| m["peer"].to_string()).collect();
    assert!(
        peers.len() < 3,
        "5 messages should share pooled connections, saw {peers:?}"
    );
}

#[tokio::test]
async fn wrong_password_is_dead_and_never_printed() {
    let server = SmtpServer::start("starttls", &[]);
    let mut cfg = server.config("starttls");
    let wrong = "wr0ng-Secret-42";
    cfg.password = Some(Secret::Value(wrong.into()));
    let ch = EmailChannel::new("oncall-mail", &cfg).unwrap();
    let outcome = ch.send(&email_notification()).await;
    let DeliveryOutcome::Dead { error } = &outcome else {
        panic!("expected dead, got {outcome:?}");
    };
    assert!(error.contains("535"), "{error}");
    assert!(!error.contains(wrong), "{error}");
    let debug = format!("{ch:?} {cfg:?}");
    assert!(!debug.contains(wrong), "{debug}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_not_ignored() {
    let server = SmtpServer::start("starttls", &[]);
    let mut cfg = server.config("starttls");
    cfg.ca_file = None;
    let ch = EmailChannel::new("oncall-mail", &cfg).unwrap();
    let outcome = ch.send(&email_notification()).await;
    assert!(
        matches!(&outcome, DeliveryOutcome::Failed { error, .. } if !error.contains(PASSWORD)),
        "{outcome:?}"
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn temporary_and_permanent_smtp_replies() {
    let server = SmtpServer::start("starttls", &["--fail-data-times", "1"]);
    let ch = EmailChannel::new("oncall-mail", &server.config("starttls")).unwrap();
    let first = ch.send(&email_notification()).await;
    assert!(
        matches!(&first, DeliveryOutcome::Failed { error, .. } if error.contains("451")),
        "{first:?}"
    );
    assert!(ch.send(&email_notification()).await.is_delivered());
    assert_eq!(server.wait_for(1).len(), 1);

    let server = SmtpServer::start("starttls", &["--fail-rcpt", "sre@example.test"]);
    let ch = EmailChannel::new("oncall-mail", &server.config("starttls")).unwrap();
    let outcome = ch.send(&email_notification()).await;
    assert!(
        matches!(&outcome, DeliveryOutcome::Dead { error } if error.contains("550")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let cfg: EmailConfig = serde_saphyr::from_str(&format!(
        "host: 127.0.0.1\nport: {port}\nfrom: a@example.test\nto: [b@example.test]\ntimeout: 2s"
    ))
    .unwrap();
    let ch = EmailChannel::new("m", &cfg).unwrap();
    assert!(matches!(
        ch.send(&email_notification()).await,
        DeliveryOutcome::Failed { .. }
    ));
}

#[test]
fn config_problems_are_reported_together() {
    let cfg: EmailConfig = serde_saphyr::from_str(
        "host: ''\nport: 0\nfrom: 'not an address'\nto: []\ncc: ['also bad']\nusername: u\npassword: { env: HERALD_TEST_SURELY_UNSET_SMTP }\nca_file: /nonexistent/ca.pem\ntimeout: 0s\npool_size: 0\nauth: []\nrate_limit: [{ count: 0, per: 1m }]",
    )
    .unwrap();
    let fields: Vec<String> = cfg.problems().into_iter().map(|(f, _)| f).collect();
    for want in [
        "host",
        "port",
        "from",
        "to",
        "cc[0]",
        "password",
        "ca_file",
        "timeout",
        "pool_size",
        "auth",
        "rate_limit[0]",
    ] {
        assert!(
            fields.iter().any(|f| f == want),
            "{want} missing in {fields:?}"
        );
    }
    assert!(
        serde_saphyr::from_str::<EmailConfig>("host: h\nfrom: a@b\nto: [c@d]\ntls: none").is_err()
    );
    let ok: EmailConfig = serde_saphyr::from_str(
        "host: smtp.example.test\nfrom: a@example.test\nto: [c@example.test]",
    )
    .unwrap();
    assert_eq!(ok.problems(), vec![]);
    assert_eq!(ok.port(), 587);
}

#[test]
fn body_split() {
    assert_eq!(
        split_body(r#"{"text":"t","html":"<b>h</b>"}"#),
        ("t".to_string(), Some("<b>h</b>".to_string()))
    );
    assert_eq!(split_body("just text"), ("just text".to_string(), None));
    assert_eq!(split_body(r#"{"other":1}"#).1, None);
}
