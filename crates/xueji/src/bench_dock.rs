//! `xueji bench-dock`: the speed of the 对接 exchange (issue 8 item 5), hub and a provincial node
//! in one process over loopback HTTP, each on its own SQLite file.
//!
//! 1. Live: transfers are filed at the hub while the node syncs; for each event, the time from
//!    the hub's commit (`dock_events.created_at`) to the node's commit of it
//!    (`node_inbox.received_at`). Target: 99 % within 1 s.
//! 2. Backlog: N events pile up while the node is away; the time for the node to drain them
//!    (stored and acknowledged). Target: 100,000 in under 2 minutes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use xueji_app::auth::SessionKind;
use xueji_app::dock::{self, DockProvinceIn};
use xueji_app::transfers::NewTransfer;
use xueji_app::{App, Clock, Db, on_pool, on_tx};

use crate::node::Node;

async fn open(path: &std::path::Path) -> anyhow::Result<App> {
    let db = Db::connect(&format!("sqlite://{}", path.display())).await?;
    db.migrate().await?;
    Ok(App::new(db, Clock::system()).await?)
}

async fn cursor(node: &App) -> anyhow::Result<i64> {
    Ok(node.node_status().await?.feed_cursor)
}

async fn wait_for(node: &App, seq: i64, limit: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while cursor(node).await? < seq {
        anyhow::ensure!(
            t0.elapsed() < limit,
            "the node did not reach event {seq} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(t0.elapsed())
}

pub async fn run(events: usize, live: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("xueji-bench-dock-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let hub = open(&dir.join("hub.db")).await?;
    hub.seed_demo().await?;
    let server = xueji_web::Server::start(hub.clone(), "127.0.0.1:0").await?;
    let key = dock::new_key();
    let login = |u: &'static str| {
        let hub = hub.clone();
        async move {
            hub.login(
                u,
                xueji_app::seed::DEMO_PASSWORD,
                "127.0.0.1",
                SessionKind::Api,
            )
            .await
            .map(|ok| ok.user)
        }
    };
    let moe = login("moe").await?;
    hub.dock_province(
        &moe,
        "110000",
        &DockProvinceIn {
            public_key: dock::public_b64(&key),
        },
    )
    .await?;
    let hub_public = dock::public_b64(&hub.dock_hub_key().await?);
    let node_app = open(&dir.join("node.db")).await?;
    node_app.node_init("110000", &server.url()).await?;
    let start_node = || {
        let n = Node {
            app: node_app.clone(),
            hub: server.url(),
            province: "110000".into(),
            key: key.clone(),
            hub_key: Some(hub_public.clone()),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        };
        tokio::spawn(n.run())
    };

    // 1. Live exchange.
    let node_task = start_node();
    let admin = login("4401060001-admin").await?;
    let students: Vec<(String, String, String)> = on_pool!(hub.db.read(), p => sqlx::query_as(
        "SELECT s.student_no, s.name, s.grade FROM students s JOIN schools sc ON sc.id = s.school_id \
         WHERE sc.code IN ('1101080001', '1101050001') ORDER BY s.id"
    ).fetch_all(p).await)?;
    let classes = hub.classes(&admin, "4401060001").await?;
    let mut filed = 0;
    for (no, name, grade) in students.iter().take(live) {
        let Some(class) = classes.iter().find(|c| c.grade == *grade) else {
            continue;
        };
        hub.file_transfer(
            &admin,
            &NewTransfer {
                from_province: "110000".into(),
                student_name: name.clone(),
                student_ref: no.clone(),
                to_grade: grade.clone(),
                to_class_id: class.id,
                reason: "基准测试".into(),
            },
            vec![],
        )
        .await
        .context("filing")?;
        filed += 1;
        // About 20 changes a second: a busy day's rate for one province, spread out so that
        // each event's delay is measured on its own.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last: i64 = on_pool!(hub.db.read(), p => sqlx::query_scalar(
        "SELECT last_seq FROM docked_provinces WHERE province = '110000'").fetch_one(p).await)?;
    wait_for(&node_app, last, Duration::from_secs(60)).await?;
    let committed: Vec<(i64, DateTime<Utc>)> = on_pool!(hub.db.read(), p => sqlx::query_as(
        "SELECT seq, created_at FROM dock_events WHERE province = '110000'").fetch_all(p).await)?;
    let received: HashMap<i64, DateTime<Utc>> = on_pool!(node_app.db.read(), p => sqlx::query_as(
        "SELECT seq, received_at FROM node_inbox").fetch_all(p).await)?
    .into_iter()
    .collect();
    let mut delays: Vec<f64> = committed
        .iter()
        .filter_map(|(seq, at)| {
            received
                .get(seq)
                .map(|r| (*r - *at).num_microseconds().unwrap_or(0) as f64 / 1e6)
        })
        .collect();
    delays.sort_by(|a, b| a.total_cmp(b));
    let pct =
        |q: f64| delays[((delays.len() as f64 * q).ceil() as usize).clamp(1, delays.len()) - 1];
    let within = delays.iter().filter(|d| **d <= 1.0).count() as f64 / delays.len() as f64 * 100.0;
    println!(
        "live: {filed} transfers filed at ~20/s, {} events; commit at hub → committed at node: p50 {:.3} s, p99 {:.3} s, max {:.3} s; {within:.1} % within 1 s",
        delays.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    node_task.abort();

    // 2. Backlog: the node is away while `events` events pile up.
    let (transfer_id, payload): (i64, String) = on_pool!(hub.db.read(), p => sqlx::query_as(
        "SELECT transfer_id, payload FROM dock_events WHERE province = '110000' ORDER BY seq LIMIT 1"
    ).fetch_one(p).await)?;
    let now = Utc::now();
    for chunk in 0..events.div_ceil(10_000) {
        let n = (events - chunk * 10_000).min(10_000) as i64;
        let mut tx = hub.db.begin().await?;
        let first: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
            "UPDATE docked_provinces SET last_seq = last_seq + $1 WHERE province = '110000' RETURNING last_seq - $1 + 1"
        ).bind(n).fetch_one(&mut *c).await)?;
        for seq in first..first + n {
            on_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO dock_events (province, seq, transfer_id, kind, payload, created_at) VALUES ('110000', $1, $2, 'decided', $3, $4)"
            ).bind(seq).bind(transfer_id).bind(&payload).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
    }
    let last: i64 = on_pool!(hub.db.read(), p => sqlx::query_scalar(
        "SELECT last_seq FROM docked_provinces WHERE province = '110000'").fetch_one(p).await)?;
    let t0 = Instant::now();
    let node_task = start_node();
    let took = wait_for(&node_app, last, Duration::from_secs(600)).await?;
    let acked = loop {
        let acked: i64 = on_pool!(hub.db.read(), p => sqlx::query_scalar(
            "SELECT acked_through FROM docked_provinces WHERE province = '110000'").fetch_one(p).await)?;
        if acked >= last || t0.elapsed() > Duration::from_secs(600) {
            break acked;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!(
        "backlog: {events} events drained (stored at the node) in {:.1} s ({:.0} events/s); acknowledged through {acked} of {last} after {:.1} s",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    node_task.abort();
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
