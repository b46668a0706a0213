//! `herald notify test` on an email channel against a real SMTP server over TCP
//! (`notifiers/tests/smtp/server.py`, aiosmtpd): STARTTLS with a certificate from a CA made
//! here with the `openssl` CLI (trusted through the channel's `ca_file`), AUTH PLAIN with the
//! password from the environment, and a multipart text + HTML message on disk afterwards. The
//! Python interpreter is found like the notifiers' email tests do (`$HERALD_TEST_PYTHON`,
//! `target/pyenv/bin/python`, `python3`); the test fails when none has aiosmtpd.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::herald_bin;

const PASSWORD: &str = "e2e-Sm7p-pa55";

fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = std::env::var_os("HERALD_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("target/pyenv/bin/python"),
            PathBuf::from("python3"),
        ])
        .collect();
    candidates
        .iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .cloned()
        .unwrap_or_else(|| {
            panic!("no Python with aiosmtpd (tried {candidates:?}); run scripts/test.sh")
        })
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 (`server.pem` with the chain,
/// `server.key`).
fn certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=herald-e2e-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=herald-e2e-smtp",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    );
    let chain = std::fs::read_to_string(dir.join("leaf.pem")).unwrap()
        + &std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    std::fs::write(dir.join("server.pem"), chain).unwrap();
}

#[test]
fn notify_test_sends_email_over_starttls_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path());
    let maildir = dir.path().join("mail");
    std::fs::create_dir(&maildir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("notifiers/tests/smtp/server.py");
    let mut server = Command::new(python())
        .arg(script)
        .args([
            "--mode",
            "starttls",
            "--user",
            "herald@example.test",
            "--password",
            PASSWORD,
        ])
        .arg("--cert")
        .arg(dir.path().join("server.pem"))
        .arg("--key")
        .arg(dir.path().join("server.key"))
        .arg("--maildir")
        .arg(&maildir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the SMTP server");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("SMTP server did not start: {line:?}"));

    let cfg = dir.path().join("herald.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cluster: e2e\nchannels:\n  oncall-mail:\n    type: email\n    host: 127.0.0.1\n    port: {port}\n    tls: starttls\n    ca_file: ca.pem\n    username: herald@example.test\n    password: {{ env: HERALD_E2E_SMTP_PASSWORD }}\n    from: 'kube-herald <herald@example.test>'\n    to: [oncall@example.test, sre@example.test]\n"
        ),
    )
    .unwrap();
    let out = Command::new(herald_bin())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["notify", "test", "oncall-mail", "-c"])
        .arg(&cfg)
        .env("HERALD_E2E_SMTP_PASSWORD", PASSWORD)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("oncall-mail: delivered (250) via email"),
        "{stdout}"
    );
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(maildir.join("0001.json")).unwrap()).unwrap();
    assert_eq!(meta["tls"], true);
    assert_eq!(meta["login"], "herald@example.test");
    assert_eq!(
        meta["rcpt_tos"],
        serde_json::json!(["oncall@example.test", "sre@example.test"])
    );
    let eml = std::fs::read_to_string(maildir.join("0001.eml")).unwrap();
    assert!(eml.contains("HeraldNotifyTest"), "{eml}");
    assert!(eml.contains("multipart/alternative"), "{eml}");
    assert!(
        eml.contains("text/html") && eml.contains("text/plain"),
        "{eml}"
    );
}
