//! Scenario "start": this same binary run as `xueji demo` on a fresh file, and as `xueji serve`
//! on the benchmark's province database, each timed from spawn to the first `GET /healthz` = 200,
//! with the server's resident memory once ready.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Spawns `args`, waits for `/healthz`, returns the seconds to ready and the RSS then.
async fn time_to_ready(args: &[String]) -> anyhow::Result<(f64, f64)> {
    let port = free_port()?;
    let exe = std::env::current_exe().context("this binary")?;
    let t0 = Instant::now();
    let mut child: Child = Command::new(exe)
        .args(args)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let result = loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            break Ok((t0.elapsed().as_secs_f64(), rss_of(child.id())));
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("{args:?} exited early: {status}"));
        }
        if t0.elapsed() > Duration::from_secs(300) {
            break Err(anyhow::anyhow!("{args:?} not ready after 300 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

pub async fn run(url: &str) -> anyhow::Result<()> {
    let demo = std::env::temp_dir().join(format!("xueji-bench-demo-{}.db", std::process::id()));
    let (demo_secs, demo_rss) =
        time_to_ready(&["demo".into(), "--db".into(), demo.display().to_string()]).await?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", demo.display()));
    }
    let (serve_secs, serve_rss) =
        time_to_ready(&["serve".into(), "--database-url".into(), url.to_string()]).await?;
    println!();
    println!("start (spawn → GET /healthz = 200):");
    println!(
        "  xueji demo on a fresh file        {demo_secs:>6.2} s   RSS when ready {demo_rss:.0} MB"
    );
    println!(
        "  xueji serve on this run's database {serve_secs:>6.2} s   RSS when ready {serve_rss:.0} MB"
    );
    Ok(())
}
