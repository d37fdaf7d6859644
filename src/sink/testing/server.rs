//! MariaDB servers of the tests' own, for settings the shared server must not change: TLS
//! required (`require_secure_transport=ON`, certificates made at test time with `openssl`)
//! and `local_infile=0` (MySQL 8's default).
//!
//! Each runs on a free port of 127.0.0.1 with its data directory under the temp dir, and is
//! shared by the tests of one process that want the same kind while any of them holds it:
//! the last holder's drop stops it (by its pid) and removes its directory. The server runs
//! under a small shell that stops it when the test process's end closes its stdin, so a test
//! run killed with Ctrl-C or `kill -9` leaves no server behind either.
//!
//! Needs `mariadb-install-db`, `mariadbd` and `openssl` (`ci-packages.txt`). As root the
//! server runs as root (`--user=root`), as CI runs it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

/// What a test server is set up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Certificates made at start, `require_secure_transport=ON`, `local_infile=1`.
    Tls,
    /// No TLS, `local_infile=0`: `LOAD DATA LOCAL` is refused, as on MySQL 8 by default.
    NoLocalInfile,
    /// Certificates made at start, TLS offered but not required, `local_infile=1`, and
    /// Debian's 128 MiB buffer pool: the write benchmark's TLS section compares transports
    /// on it.
    TlsOffered,
}

/// A running test server. Dropping the last `Arc` stops it.
#[derive(Debug)]
pub struct TestServer {
    kind: ServerKind,
    port: u16,
    dir: PathBuf,
    /// The shell that runs the server; closing its stdin stops the server.
    runner: Option<Child>,
}

/// Started servers by kind, while someone holds them.
static SERVERS: Mutex<Vec<(ServerKind, Weak<TestServer>)>> = Mutex::new(Vec::new());

/// Files under the server's directory.
const CA: &str = "ca.pem";
const OTHER_CA: &str = "other-ca.pem";
const CLIENT_CERT: &str = "client-cert.pem";
const CLIENT_KEY: &str = "client-key.pem";

impl TestServer {
    /// The running server of `kind`, started when no test holds one.
    ///
    /// # Panics
    /// When the server cannot be set up or does not start within a minute (with its log).
    pub async fn shared(kind: ServerKind) -> Arc<TestServer> {
        tokio::task::spawn_blocking(move || {
            let mut servers = SERVERS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            servers.retain(|(_, server)| server.strong_count() > 0);
            if let Some(server) = servers
                .iter()
                .find(|(k, _)| *k == kind)
                .and_then(|(_, server)| server.upgrade())
            {
                return server;
            }
            let server = Arc::new(TestServer::start(kind));
            servers.push((kind, Arc::downgrade(&server)));
            server
        })
        .await
        .expect("the test server starts")
    }

    fn start(kind: ServerKind) -> TestServer {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "qsync-test-server-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("the test server's directory");
        // Its own tmpdir: a server starting on the shared /tmp removed the main test
        // server's `#sql-temptable-*` files there, failing other tests' queries with
        // "Error on delete of '/tmp/#sql-temptable-...MAI' (Errcode: 2)".
        std::fs::create_dir_all(dir.join("tmp")).expect("the test server's tmpdir");
        if matches!(kind, ServerKind::Tls | ServerKind::TlsOffered) {
            make_certificates(&dir);
        }
        let root = is_root();
        let mut install = Command::new("mariadb-install-db");
        install.args([
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]);
        install.arg(format!("--datadir={}", dir.join("data").display()));
        install.arg(format!("--tmpdir={}", dir.join("tmp").display()));
        if root {
            install.arg("--user=root");
        }
        run(&mut install, "mariadb-install-db");
        // Another process may take a port between our probe and the server's bind: retry.
        for _ in 0..5 {
            let port = free_port();
            let mut server = TestServer {
                kind,
                port,
                dir: dir.clone(),
                runner: None,
            };
            if server.launch(root) {
                return server;
            }
        }
        panic!(
            "the {kind:?} test server did not start; its log:\n{}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Starts the server on `self.port`; false when the port was taken.
    fn launch(&mut self, root: bool) -> bool {
        let dir = &self.dir;
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", dir.join("data").display()),
            format!("--tmpdir={}", dir.join("tmp").display()),
            format!("--socket={}", self.socket().display()),
            format!("--pid-file={}", dir.join("server.pid").display()),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--port={}", self.port),
            "--skip-name-resolve".to_owned(),
            "--max-connections=200".to_owned(),
        ];
        if root {
            args.push("--user=root".to_owned());
        }
        let certificates = [
            format!("--ssl-ca={}", dir.join(CA).display()),
            format!("--ssl-cert={}", dir.join("server-cert.pem").display()),
            format!("--ssl-key={}", dir.join("server-key.pem").display()),
        ];
        match self.kind {
            ServerKind::Tls => {
                args.extend(certificates);
                args.extend([
                    "--require-secure-transport=ON".to_owned(),
                    "--local-infile=1".to_owned(),
                    "--innodb-buffer-pool-size=32M".to_owned(),
                ]);
            }
            ServerKind::NoLocalInfile => args.extend([
                "--local-infile=0".to_owned(),
                "--innodb-buffer-pool-size=32M".to_owned(),
            ]),
            ServerKind::TlsOffered => {
                args.extend(certificates);
                args.extend([
                    "--local-infile=1".to_owned(),
                    "--innodb-buffer-pool-size=128M".to_owned(),
                ]);
            }
        }
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).expect("the server log");
        // The shell stops the server by its pid once stdin closes: when the last holder
        // drops the server, or when the test process ends in any way.
        let runner = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" & server=$!; read -r _; kill "$server"; wait "$server""#)
            .arg("qsync-test-server")
            .arg("mariadbd")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("the server log"))
            .stderr(log)
            .spawn()
            .expect("sh runs mariadbd");
        self.runner = Some(runner);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("ready for connections") {
                return true;
            }
            let exited = self
                .runner
                .as_mut()
                .is_some_and(|runner| matches!(runner.try_wait(), Ok(Some(_))));
            if text.contains("Address already in use") {
                self.stop();
                return false;
            }
            if text.contains("Aborting") || exited {
                self.stop();
                panic!("the {:?} test server failed to start:\n{text}", self.kind);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        false
    }

    fn stop(&mut self) {
        if let Some(mut runner) = self.runner.take() {
            drop(runner.stdin.take());
            let _ = runner.wait();
        }
    }

    /// The server's Unix socket, which `require_secure_transport` lets through without TLS.
    fn socket(&self) -> PathBuf {
        self.dir.join("server.sock")
    }

    /// `mysql://root@127.0.0.1:<port>/<database>?<params>` (`params` may be empty).
    pub fn url(&self, database: &str, params: &str) -> String {
        self.url_at("127.0.0.1", database, params)
    }

    /// As [`TestServer::url`], with `host` (`localhost`, the name in the certificate).
    pub fn url_at(&self, host: &str, database: &str, params: &str) -> String {
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{params}")
        };
        format!("mysql://root@{host}:{}/{database}{query}", self.port)
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.join(CA)
    }

    /// A CA that signed nothing the server presents.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join(OTHER_CA)
    }

    /// A key in PKCS#8 (`BEGIN PRIVATE KEY`), which the driver cannot read as a client key.
    pub fn pkcs8_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }

    /// A client certificate and its key (RSA, PKCS#1), signed by [`TestServer::ca`].
    pub fn client_identity(&self) -> (PathBuf, PathBuf) {
        (self.dir.join(CLIENT_CERT), self.dir.join(CLIENT_KEY))
    }

    /// A connection over the Unix socket, for setting up and inspecting.
    ///
    /// # Panics
    /// When the server refuses it.
    pub async fn admin(&self) -> mysql_async::Conn {
        let opts = mysql_async::OptsBuilder::default()
            .user(Some("root"))
            .socket(Some(self.socket().display().to_string()));
        mysql_async::Conn::new(opts)
            .await
            .expect("the test server accepts root on its socket")
    }

    /// Creates a database of its own for one test and returns its name.
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn fresh_database(&self) -> String {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "qsync_s{}",
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut conn = self.admin().await;
        conn.query_drop(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ))
        .await
        .expect("creates the test database");
        let _ = conn.disconnect().await;
        name
    }

    /// A global status counter (`Com_load`, `Com_insert`).
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn status(&self, name: &str) -> u64 {
        let mut conn = self.admin().await;
        let value: Option<(String, u64)> = conn
            .exec_first("SHOW GLOBAL STATUS WHERE Variable_name = ?", (name,))
            .await
            .expect("reads the status");
        let _ = conn.disconnect().await;
        value.map_or(0, |(_, value)| value)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what} cannot run ({e}): install it (ci-packages.txt)"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, the server's certificate for `localhost` only (so `127.0.0.1` is a wrong host name
/// for `verify_identity`), a client certificate, and a second CA that signed none of them.
/// P-256 keys: quick to make, and both OpenSSL and rustls take them.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let mut command = Command::new("openssl");
        command.current_dir(dir).args(args);
        run(&mut command, "openssl");
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, subject) in [
        ("ca", "/CN=qsync test CA"),
        ("other-ca", "/CN=qsync other CA"),
    ] {
        let (key_file, cert_file) = (format!("{name}-key.pem"), format!("{name}.pem"));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", subject];
        args.extend(key);
        args.extend(["-keyout", &key_file, "-out", &cert_file]);
        openssl(&args);
    }
    let mut extensions = std::fs::File::create(dir.join("server.ext")).expect("server.ext");
    extensions
        .write_all(
            b"subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
              extendedKeyUsage=serverAuth\n",
        )
        .expect("server.ext");
    let mut extensions = std::fs::File::create(dir.join("client.ext")).expect("client.ext");
    extensions
        .write_all(b"basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
        .expect("client.ext");
    // The driver reads client keys only as RSA in PKCS#1 (sink/connect.rs).
    openssl(&["genrsa", "-traditional", "-out", CLIENT_KEY, "2048"]);
    for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=qsync")] {
        let (key_file, csr) = (format!("{name}-key.pem"), format!("{name}.csr"));
        let mut args = vec!["req", "-new", "-subj", subject];
        if name == "client" {
            args.extend(["-key", CLIENT_KEY]);
        } else {
            args.extend(key);
            args.extend(["-keyout", &key_file]);
        }
        args.extend(["-out", &csr]);
        openssl(&args);
        let (cert, ext) = (format!("{name}-cert.pem"), format!("{name}.ext"));
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            CA,
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
    }
}
