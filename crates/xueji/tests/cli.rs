//! The `xueji` binary as an operator runs it (API.md, "The command line"): exit codes, output,
//! the server's ready line, `/healthz`, graceful stop on SIGTERM. Storage commands run on SQLite
//! and, when `XUEJI_TEST_DATABASE_URL` is set, on PostgreSQL too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/dock_node.rs"]
mod dock_node;
#[path = "cli/ops.rs"]
mod ops;

const PG_ENV: &str = "XUEJI_TEST_DATABASE_URL";

fn xueji() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xueji"));
    c.env_remove("XUEJI_DATABASE_URL")
        .env_remove("XUEJI_ADDR")
        .env("XUEJI_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> Output {
    xueji().args(args).output().expect("run xueji")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh path in a per-test scratch directory (the file itself does not exist yet).
fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("xueji-cli-tests").join(format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn pg_url_with_db(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = head[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(head.len());
    format!("{}/{db}{query}", &head[..host_end])
}

fn pg_admin(sql: String) {
    use sqlx::Connection;
    let base = std::env::var(PG_ENV).expect("PostgreSQL URL");
    block_on(async move {
        let mut c = sqlx::PgConnection::connect(&base)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .expect("admin statement");
        let _ = c.close().await;
    });
}

/// A database the commands can be pointed at: an SQLite file or a fresh PostgreSQL database.
struct Target {
    label: &'static str,
    args: Vec<String>,
    pg_name: Option<String>,
    /// Held while a PostgreSQL target is in use: the crash test restarts the server only when
    /// no other test of this binary uses it.
    pg_guard: Option<std::sync::RwLockReadGuard<'static, ()>>,
}

/// Held by the tests that kill and restart servers on fixed ports under load (the crash test and
/// the docking node tests): run one at a time, they neither starve each other's timeouts nor race
/// for a port freed by a kill.
static KILL_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn kill_tests_alone() -> std::sync::MutexGuard<'static, ()> {
    KILL_TESTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Taken for writing by the test that restarts PostgreSQL.
static PG_IN_USE: std::sync::RwLock<()> = std::sync::RwLock::new(());

impl Target {
    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    fn url(&self) -> String {
        match self.args[0].as_str() {
            "--db" => format!("sqlite://{}", self.args[1]),
            _ => self.args[1].clone(),
        }
    }

    /// Runs `xueji <cmd…> <db args>`.
    fn run(&self, cmd: &[&str]) -> Output {
        let mut args = cmd.to_vec();
        args.extend(self.args());
        run(&args)
    }

    fn exec(&self, sql: &str) {
        let (url, sql) = (self.url(), sql.to_string());
        block_on(async move {
            use sqlx::Connection;
            if url.starts_with("postgres") {
                let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("statement");
                let _ = c.close().await;
            } else {
                let mut c = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("statement");
                let _ = c.close().await;
            }
        });
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            pg_admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn targets() -> Vec<Target> {
    let mut v = vec![Target {
        label: "sqlite",
        args: vec!["--db".into(), temp_path("x.db").display().to_string()],
        pg_name: None,
        pg_guard: None,
    }];
    if std::env::var(PG_ENV).is_ok_and(|u| !u.trim().is_empty()) {
        // The guard first: the database is created only while no restart can happen.
        let guard = PG_IN_USE.read().unwrap_or_else(|e| e.into_inner());
        let mut t = pg_target().expect("PostgreSQL target");
        t.pg_guard = Some(guard);
        v.push(t);
    }
    v
}

/// A fresh PostgreSQL database when `XUEJI_TEST_DATABASE_URL` is set, without the guard (a test
/// that already holds one must not take a second: a waiting writer would deadlock them).
fn pg_target() -> Option<Target> {
    let base = std::env::var(PG_ENV).ok()?.trim().to_string();
    if base.is_empty() {
        return None;
    }
    let name = format!(
        "xueji_cli_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    pg_admin(format!("CREATE DATABASE {name}"));
    Some(Target {
        label: "postgres",
        args: vec!["--database-url".into(), pg_url_with_db(&base, &name)],
        pg_name: Some(name),
        pg_guard: None,
    })
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Asserts a failure with a one-line reason on stderr, and returns that line.
fn assert_one_line_failure(out: &Output, what: &str) -> String {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: should fail; stdout: {}",
        text(&out.stdout)
    );
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "{what}: a non-zero exit status, not a signal"
    );
    // Log lines (timestamped, e.g. the note that a secret key file was made) may come first;
    // the reason itself is one line.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr, got:\n{stderr}");
    assert!(lines[0].len() < 1000, "{what}: a short reason");
    lines[0].to_string()
}

fn numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().expect("number"))
        .collect()
}

#[test]
fn migrate_is_idempotent() {
    for t in targets() {
        let first = t.run(&["migrate"]);
        assert_ok(&first, &format!("{}: first migrate", t.label));
        let second = t.run(&["migrate"]);
        assert_ok(&second, &format!("{}: second migrate", t.label));
        if t.label == "sqlite" {
            assert!(
                std::path::Path::new(&t.args[1]).exists(),
                "the file was created"
            );
        }
        // The migrated, empty database verifies as an intact (empty) chain.
        let verify = t.run(&["audit", "verify"]);
        assert_ok(&verify, &format!("{}: audit verify", t.label));
    }
}

#[test]
fn seed_demo_is_idempotent_and_audited() {
    for t in targets() {
        let first = t.run(&["seed", "demo"]);
        assert_ok(&first, &format!("{}: first seed", t.label));
        let second = t.run(&["seed", "demo"]);
        assert_ok(&second, &format!("{}: second seed", t.label));
        let (a, b) = (text(&first.stdout), text(&second.stdout));
        assert_eq!(
            numbers(&a),
            numbers(&b),
            "{}: the same counts both times:\n{a}\n{b}",
            t.label
        );
        let counts = numbers(&a);
        for n in [3220, 21, 1008] {
            assert!(counts.contains(&n), "{}: {n} in the summary: {a}", t.label);
        }

        let verify = t.run(&["audit", "verify"]);
        assert_ok(&verify, &format!("{}: audit verify", t.label));
        assert!(
            text(&verify.stdout).contains("intact"),
            "{}: {}",
            t.label,
            text(&verify.stdout)
        );

        // Tampering with the first row: a non-zero exit naming that row.
        t.exec("UPDATE audit_log SET action = 'x' WHERE seq = 1");
        let broken = t.run(&["audit", "verify"]);
        let reason = assert_one_line_failure(
            &broken,
            &format!("{}: audit verify after tampering", t.label),
        );
        assert!(
            numbers(&reason).contains(&1),
            "{}: names row 1: {reason}",
            t.label
        );
    }
}

#[test]
fn audit_prune_keeps_180_days_and_a_verifiable_chain() {
    for t in targets() {
        assert_ok(&t.run(&["seed", "demo"]), &format!("{}: seed", t.label));
        let short = t.run(&["audit", "prune", "--keep-days", "179"]);
        let reason = assert_one_line_failure(&short, &format!("{}: prune 179", t.label));
        assert!(reason.contains("180"), "{}: {reason}", t.label);
        // Backdate every row: their hashes no longer match, but they are all pruned, and the
        // chain verifies from the anchor the prune leaves.
        t.exec("UPDATE audit_log SET at = '2000-01-01 00:00:00'");
        let pruned = t.run(&["audit", "prune", "--keep-days", "180"]);
        assert_ok(&pruned, &format!("{}: prune", t.label));
        assert!(
            text(&pruned.stdout).contains("anchored"),
            "{}: {}",
            t.label,
            text(&pruned.stdout)
        );
        let verify = t.run(&["audit", "verify"]);
        assert_ok(&verify, &format!("{}: verify after prune", t.label));
    }
}

/// A running `xueji` child: stderr and stdout lines arrive on channels.
struct Running {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<String>,
}

fn spawn(args: &[&str]) -> Running {
    spawn_with_env(args, &[])
}

fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut child = xueji()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xueji");
    let pipe = |r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody listens any more: keep draining so the child never blocks.
                    continue;
                }
            }
        });
        rx
    };
    let stderr = pipe(Box::new(child.stderr.take().expect("stderr")));
    let stdout = pipe(Box::new(child.stdout.take().expect("stdout")));
    Running {
        child,
        stderr,
        stdout,
    }
}

impl Running {
    /// Waits for a line containing `needle` on one stream; returns it (and all lines before it).
    fn wait_line(
        &mut self,
        on_stderr: bool,
        needle: &str,
        timeout: Duration,
    ) -> (String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = vec![];
        loop {
            let rx = if on_stderr {
                &self.stderr
            } else {
                &self.stdout
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) if line.contains(needle) => return (line, seen),
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("xueji exited ({status}) before printing {needle:?}; saw: {seen:?}");
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no line with {needle:?} within {timeout:?}; saw: {seen:?}");
                }
            }
        }
    }

    fn sigterm(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: sending a signal to our own child process.
        let r = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(r, 0, "kill(SIGTERM)");
    }

    /// Waits for the exit; panics (after killing the child) past `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("xueji did not stop within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn drain_stderr(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `host:port` from a line holding `http://host:port`.
fn address_in(line: &str) -> String {
    let at = line.find("http://").expect("http:// in the line") + "http://".len();
    line[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']' | '-'))
        .collect()
}

/// One HTTP/1.1 exchange over a plain socket; returns (status, body).
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the server");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP status line: {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_logs_its_address_answers_healthz_and_stops_on_sigterm() {
    for t in targets() {
        assert_ok(&t.run(&["seed", "demo"]), &format!("{}: seed", t.label));
        let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
        args.extend(t.args());
        let mut server = spawn(&args);
        let (line, _) = server.wait_line(true, "listening on http://", Duration::from_secs(60));
        let addr = address_in(&line);
        assert!(addr.starts_with("127.0.0.1:"), "{}: {line}", t.label);
        assert_ne!(addr, "127.0.0.1:0", "{}: the bound port, not 0", t.label);
        assert_eq!(http(&addr, "GET", "/healthz", None).0, 200, "{}", t.label);
        let (status, body) = http(
            &addr,
            "POST",
            "/api/v1/auth/login",
            Some(r#"{"username":"edu410105","password":"Demo@2026"}"#),
        );
        assert_eq!(status, 200, "{}: {body}", t.label);
        server.sigterm();
        let status = server.wait_exit(Duration::from_secs(10));
        assert!(
            status.success(),
            "{}: clean exit after SIGTERM, got {status}; stderr: {:?}",
            t.label,
            server.drain_stderr()
        );
        let rest = server.drain_stderr().join("\n");
        assert!(!rest.contains("panicked"), "{}: {rest}", t.label);
        // No identity number reaches the log (the login above named an authority, and no
        // student number was requested, so any 18-digit run would be a leak).
        let all: String = rest + &line;
        assert!(
            !all.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w.len() >= 18 && w.chars().take(17).all(|c| c.is_ascii_digit())),
            "{}: an identity-number-like token in the log: {all}",
            t.label
        );
    }
}

#[test]
fn demo_prints_url_and_accounts_and_serves() {
    let db = temp_path("demo.db");
    let db_arg = db.display().to_string();
    let mut demo = spawn(&["demo", "--db", &db_arg, "--addr", "127.0.0.1:0"]);
    let (url_line, before) = demo.wait_line(false, "http://", Duration::from_secs(120));
    let addr = address_in(&url_line);
    assert_ne!(addr, "127.0.0.1:0");
    // The banner names the accounts and their password.
    let mut banner = before.join("\n") + "\n" + &url_line;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !(banner.contains("moe") && banner.contains("-admin")) {
        if let Ok(l) = demo.stdout.recv_timeout(Duration::from_millis(200)) {
            banner.push('\n');
            banner.push_str(&l);
        }
    }
    for needle in [
        "moe",
        "Demo@2026",
        "edu410105",
        "4101050001-admin",
        "-reviewer",
    ] {
        assert!(banner.contains(needle), "{needle} in the banner:\n{banner}");
    }
    assert!(db.exists(), "the demo database was created at --db");
    assert_eq!(http(&addr, "GET", "/healthz", None).0, 200);
    let (status, body) = http(
        &addr,
        "POST",
        "/api/v1/auth/login",
        Some(r#"{"username":"moe","password":"Demo@2026"}"#),
    );
    assert_eq!(status, 200, "{body}");
    demo.sigterm();
    let status = demo.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "clean exit after SIGTERM: {status}");

    // A second start on the same file reuses it.
    let mut again = spawn(&["demo", "--db", &db_arg, "--addr", "127.0.0.1:0"]);
    let (url_line, _) = again.wait_line(false, "http://", Duration::from_secs(120));
    assert_eq!(http(&address_in(&url_line), "GET", "/healthz", None).0, 200);
    again.sigterm();
    assert!(again.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn a_bad_database_url_fails_with_a_one_line_reason() {
    let missing_dir = temp_path("no/such/dir/x.db");
    let cases: Vec<Vec<String>> = vec![
        vec![
            "migrate".into(),
            "--database-url".into(),
            "postgres://root@127.0.0.1:notaport/x".into(),
        ],
        vec![
            "migrate".into(),
            "--database-url".into(),
            "postgres://root@127.0.0.1:1/x".into(),
        ],
        vec![
            "seed".into(),
            "demo".into(),
            "--database-url".into(),
            format!("sqlite://{}", missing_dir.display()),
        ],
        vec![
            "audit".into(),
            "verify".into(),
            "--db".into(),
            missing_dir.display().to_string(),
        ],
        vec![
            "serve".into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--database-url".into(),
            "postgresql://root@[::1/x".into(),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = run(&args);
        let line = assert_one_line_failure(&out, &args.join(" "));
        assert!(line.starts_with("xueji"), "{args:?}: {line}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{args:?}: gives up in reasonable time"
        );
    }
}

#[test]
fn serve_refuses_an_address_in_use() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let db = temp_path("x.db").display().to_string();
    assert_ok(&run(&["migrate", "--db", &db]), "migrate");
    let out = run(&["serve", "--db", &db, "--addr", &addr]);
    assert_one_line_failure(&out, "serve on a busy port");
}
