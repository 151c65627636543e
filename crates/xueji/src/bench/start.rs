//! Scenario "start": this same binary run as `xueji demo` on a fresh file, and as `xueji serve`
//! on the benchmark's province database, each timed from spawn to the first `GET /healthz` = 200,
//! with the server's resident memory once ready. Then that `xueji serve`, a process of its own,
//! under the lookup load and the province's lists: its peak resident memory is the server's
//! alone (the other scenarios' figures include the load generator and the province generator).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A line of `/proc/PID/status` (`VmRSS:`, `VmHWM:`) in MB.
fn status_mb(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn rss_of(pid: u32) -> f64 {
    status_mb(pid, "VmRSS:")
}

/// A server started from this binary, ready.
struct Ready {
    child: Child,
    base: String,
    secs: f64,
    rss: f64,
}

impl Drop for Ready {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `args` (its log to `log`, if given), waits for `/healthz`: the seconds to ready and
/// the RSS then.
async fn spawn_ready(args: &[String], log: Option<&std::path::Path>) -> anyhow::Result<Ready> {
    let port = free_port()?;
    let exe = std::env::current_exe().context("this binary")?;
    let t0 = Instant::now();
    let child: Child = Command::new(exe)
        .args(args)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(match log {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        })
        .spawn()?;
    let mut ready = Ready {
        child,
        base: format!("http://127.0.0.1:{port}"),
        secs: 0.0,
        rss: 0.0,
    };
    let client = reqwest::Client::new();
    let url = format!("{}/healthz", ready.base);
    loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            ready.secs = t0.elapsed().as_secs_f64();
            ready.rss = rss_of(ready.child.id());
            return Ok(ready);
        }
        if let Some(status) = ready.child.try_wait()? {
            anyhow::bail!("{args:?} exited early: {status}");
        }
        if t0.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("{args:?} not ready after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The served province under load: `keys` looked up by `clients` for `secs`, then the province
/// authority's dashboard and transfer lists. The lookup's figures.
async fn load(
    base: &str,
    keys: &[String],
    clients: usize,
    secs: u64,
) -> anyhow::Result<super::lookup::Figures> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let token = super::login(&client, base, "edu410000").await?;
    let students = base.to_string();
    let figures = super::lookup::hammer(
        &client,
        Some(&token),
        std::sync::Arc::new(move |no: &str| format!("{students}/api/v1/students/{no}")),
        std::sync::Arc::new(keys.to_vec()),
        clients,
        secs,
    )
    .await?;
    for path in [
        "/api/v1/oversight/dashboard",
        "/api/v1/transfers?status=in_school_review",
        "/api/v1/transfers?from_date=2026-03-01&to_date=2026-04-01",
        "/api/v1/transfers?q=王",
        "/api/v1/students?q=王",
    ] {
        for _ in 0..3 {
            client
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
        }
    }
    Ok(figures)
}

pub async fn run(url: &str, keys: &[String], clients: usize, secs: u64) -> anyhow::Result<()> {
    let demo = std::env::temp_dir().join(format!("xueji-bench-demo-{}.db", std::process::id()));
    let ready = spawn_ready(
        &["demo".into(), "--db".into(), demo.display().to_string()],
        None,
    )
    .await?;
    let (demo_secs, demo_rss) = (ready.secs, ready.rss);
    drop(ready);
    for suffix in ["", "-wal", "-shm", ".key"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", demo.display()));
    }
    let log = std::env::temp_dir().join(format!("xueji-bench-serve-{}.log", std::process::id()));
    let mut served = spawn_ready(
        &["serve".into(), "--database-url".into(), url.to_string()],
        Some(&log),
    )
    .await?;
    println!();
    println!("start (spawn → GET /healthz = 200):");
    println!(
        "  xueji demo on a fresh file        {demo_secs:>6.2} s   RSS when ready {demo_rss:.0} MB"
    );
    println!(
        "  xueji serve on this run's database {:>6.2} s   RSS when ready {:.0} MB",
        served.secs, served.rss
    );
    if keys.is_empty() {
        return Ok(());
    }
    let f = load(&served.base, keys, clients, secs).await?;
    let pid = served.child.id();
    println!(
        "  that server under load ({clients} clients looking up students for {secs} s: {:.0} req/s, \
         p99 {:.2} ms, {} errors; then the province's dashboard and lists):",
        f.rps, f.p99, f.errors
    );
    let (peak, rss) = (status_mb(pid, "VmHWM:"), rss_of(pid));
    let sqlite = stop_for_sqlite_heap(&mut served.child, &log).await;
    let _ = std::fs::remove_file(&log);
    match sqlite {
        Some((now, sqlite_peak)) => println!(
            "    peak RSS {peak:.0} MB, SQLite's heap (page caches, statements) at its peak \
             {sqlite_peak:.0} MB: {:.0} MB beyond it\n    (at the end: RSS {rss:.0} MB, SQLite's \
             heap {now:.0} MB — a WAL reader drops its cache after a write elsewhere, and the \
             allocator keeps the freed memory for the next fill)",
            peak - sqlite_peak
        ),
        None => println!("    peak RSS {peak:.0} MB (SQLite's heap was not reported)"),
    }
    anyhow::ensure!(f.errors == 0, "lookups failed under load");
    Ok(())
}

/// Stops the server with SIGTERM, as an operator would, and reads from its log SQLite's heap
/// it reports at shutdown (`Db::sqlite_heap`): now and at its peak, in MB.
async fn stop_for_sqlite_heap(child: &mut Child, log: &std::path::Path) -> Option<(f64, f64)> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .ok()?;
    let t0 = Instant::now();
    while child.try_wait().ok()?.is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(log).ok()?;
    let (_, rest) = text.split_once("SQLite heap at shutdown: ")?;
    let mut numbers = rest
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse::<f64>().ok());
    Some((numbers.next()?, numbers.next()?))
}
