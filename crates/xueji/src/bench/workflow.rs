//! Scenario "workflow": complete transfers (apply + four reviews + pull = 6 steps) through the
//! HTTP API with concurrent clients, against the bare rate of one UPDATE + one INSERT per
//! transaction at the same durability on the same database.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};
use xueji_app::seed::{Val, insert_rows};
use xueji_app::{App, Db, on_pool};
use xueji_domain::ids::{Grade, IdNumber, StudentNo};

use super::{peak_rss_mb, percentile};

/// The schools of the scenario: sending 河南 primary-grade schools, receiving schools elsewhere.
const FROM_SCHOOLS: [&str; 2] = ["4101050001", "4101050002"];
const TO_SCHOOLS: [&str; 8] = [
    "4401060001",
    "4401060002",
    "4403040001",
    "4403040002",
    "1101080001",
    "1101080002",
    "1101050001",
    "1101050002",
];

/// Adds `n` students to the sending schools (primary grades), deterministic and valid.
async fn add_students(app: &App, n: usize) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut classes: Vec<(i64, i64, String)> = vec![];
    for code in FROM_SCHOOLS {
        let rows: Vec<(i64, i64, String)> = on_pool!(app.db.read(), p => sqlx::query_as(
            "SELECT c.id, s.id, c.grade FROM classes c JOIN schools s ON s.id = c.school_id WHERE s.code = $1 AND c.grade < '20' ORDER BY c.id"
        ).bind(code).fetch_all(p).await)?;
        classes.extend(rows);
    }
    let now = Utc::now();
    let mut rows = vec![];
    let mut numbers = vec![];
    let mut out = vec![];
    for i in 0..n {
        let (class_id, school_id, grade) = &classes[i % classes.len()];
        let g = Grade::parse(grade)?;
        let birth = NaiveDate::from_ymd_opt(2026 - g.usual_age() - 1, 9, 2).unwrap()
            + chrono::Duration::days((i / 1000 % 365) as i64);
        let id = IdNumber::from_parts("410105", birth, (i % 1000) as u16);
        let no = StudentNo::formal(&id);
        let name = format!("测试{}", i + 1);
        rows.push(vec![
            Val::Text(no.as_str().into()),
            Val::Text("1".into()),
            Val::Text(id.as_str().into()),
            Val::Text(name.clone()),
            Val::Text(id.gender().code().into()),
            Val::Date(birth),
            Val::Text("01".into()),
            Val::Text("enrolled".into()),
            Val::OptInt(Some(*school_id)),
            Val::OptText(Some(grade.clone())),
            Val::OptInt(Some(*class_id)),
            Val::OptText(Some("410105".into())),
            Val::Int(0),
            Val::Time(now),
            Val::Time(now),
        ]);
        numbers.push(no.as_str().to_string());
        out.push((no.as_str().to_string(), name, grade.clone()));
    }
    let mut tx = app.db.begin().await?;
    insert_rows(
        &mut tx,
        "students",
        &[
            "student_no",
            "id_type",
            "id_number",
            "name",
            "gender",
            "birth_date",
            "ethnicity",
            "status",
            "school_id",
            "grade",
            "class_id",
            "region_code",
            "version",
            "created_at",
            "updated_at",
        ],
        rows,
    )
    .await?;
    tx.commit().await?;
    // Number history and enrollments, from the rows just written.
    let mut tx = app.db.begin().await?;
    xueji_app::on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO student_numbers (student_no, student_id, kind, assigned_at) \
         SELECT student_no, id, 'formal', created_at FROM students WHERE name LIKE '测试%' ON CONFLICT DO NOTHING"
    ).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    xueji_app::on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at) \
         SELECT id, school_id, grade, class_id, 'active', created_at FROM students WHERE name LIKE '测试%'"
    ).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    // Receiving classes must not fill up during the run.
    xueji_app::on_tx!(&mut tx, c => sqlx::query("UPDATE classes SET capacity = 1000000").execute(&mut *c).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(out)
}

struct Tokens {
    by_user: std::collections::HashMap<String, String>,
}

async fn login_all(
    client: &reqwest::Client,
    base: &str,
    users: &[String],
) -> anyhow::Result<Tokens> {
    let mut by_user = std::collections::HashMap::new();
    for u in users {
        by_user.insert(u.clone(), super::login(client, base, u).await?);
    }
    Ok(Tokens { by_user })
}

/// One step: the whole answer is received, but parsed only when the caller needs it, so that
/// the load generator sharing the cores spends less of them.
async fn call(
    client: &reqwest::Client,
    token: &str,
    url: String,
    body: Value,
    lat: &mut Vec<Duration>,
) -> anyhow::Result<Vec<u8>> {
    let t0 = Instant::now();
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let bytes = r.bytes().await?.to_vec();
    lat.push(t0.elapsed());
    if !status.is_success() {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        bail!("{status}: {}", v["code"]);
    }
    Ok(bytes)
}

/// CPU seconds (user + system) this process has used: server and load generator together.
fn cpu_secs() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// The group commit's counters at one moment (SQLite).
#[derive(Clone, Copy, Default)]
struct Gc {
    released: u64,
    commits: u64,
    held_ns: u64,
    commit_ns: u64,
    wait_ns: u64,
}

fn gc_now(db: &Db) -> Option<Gc> {
    use std::sync::atomic::Ordering::Relaxed;
    db.group_commit_stats().map(|s| Gc {
        released: s.released.load(Relaxed),
        commits: s.commits.load(Relaxed),
        held_ns: s.held_ns.load(Relaxed),
        commit_ns: s.commit_ns.load(Relaxed),
        wait_ns: s.wait_ns.load(Relaxed),
    })
}

/// The bare rate: one UPDATE + one INSERT per transaction, `clients` tasks at once.
async fn bare_rate(db: &Db, clients: usize, per_client: usize) -> anyhow::Result<(f64, f64)> {
    for sql in [
        "CREATE TABLE IF NOT EXISTS bench_bare (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS bench_bare_log (id BIGINT NOT NULL, v BIGINT NOT NULL, at TEXT NOT NULL)",
    ] {
        on_pool!(db.write(), p => sqlx::query(sql).execute(p).await.map(|_| ()))?;
    }
    for i in 0..clients as i64 {
        on_pool!(db.write(), p => sqlx::query("INSERT INTO bench_bare (id, v) VALUES ($1, 0) ON CONFLICT DO NOTHING").bind(i).execute(p).await.map(|_| ()))?;
    }
    let t0 = Instant::now();
    let mut tasks = vec![];
    for i in 0..clients as i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let s = Instant::now();
                // The bare rate: a plain transaction per UPDATE + INSERT, no group commit.
                if let Some(mut tx) = db.begin_unbatched_sqlite().await? {
                    sqlx::query("UPDATE bench_bare SET v = v + 1 WHERE id = $1").bind(i).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO bench_bare_log (id, v, at) VALUES ($1, 1, 'x')").bind(i).execute(&mut *tx).await?;
                    tx.commit().await?;
                } else {
                    let mut tx = db.begin().await?;
                    xueji_app::on_tx!(&mut tx, c => {
                        sqlx::query("UPDATE bench_bare SET v = v + 1 WHERE id = $1").bind(i).execute(&mut *c).await?;
                        sqlx::query("INSERT INTO bench_bare_log (id, v, at) VALUES ($1, 1, 'x')").bind(i).execute(&mut *c).await.map(|_| ())?
                    });
                    tx.commit().await?;
                }
                lat.push(s.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    Ok(((clients * per_client) as f64 / secs, percentile(&lat, 0.99)))
}

/// Runs the scenario on a database that already holds the demo dataset.
pub async fn run(app: &App, db: &Db, transfers: usize, clients: usize) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let students = add_students(app, transfers).await?;
    println!(
        "workflow: {transfers} students added to the demo schools in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let server = xueji_web::Server::start(app.clone(), "127.0.0.1:0").await?;
    let base = server.url();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let mut users = vec![];
    for s in FROM_SCHOOLS.iter().chain(TO_SCHOOLS.iter()) {
        users.push(format!("{s}-admin"));
        users.push(format!("{s}-reviewer"));
        users.push(format!("edu{}", &s[0..6]));
    }
    users.sort();
    users.dedup();
    let tokens = Arc::new(login_all(&client, &base, &users).await?);
    let mut classes = std::collections::HashMap::new();
    for s in TO_SCHOOLS {
        let list: Value = client
            .get(format!("{base}/api/v1/schools/{s}/classes"))
            .bearer_auth(&tokens.by_user[&format!("{s}-admin")])
            .send()
            .await?
            .json()
            .await?;
        for c in list.as_array().context("classes")? {
            classes
                .entry((s.to_string(), c["grade"].as_str().unwrap_or("").to_string()))
                .or_insert(c["id"].as_i64().unwrap_or(0));
        }
    }
    let classes = Arc::new(classes);
    let work: Arc<Vec<(String, String, String)>> =
        Arc::new(students.into_iter().take(transfers).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let gc_before = gc_now(db);
    let cpu_before = cpu_secs();
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..clients {
        let (client, base, tokens, classes, work, next) = (
            client.clone(),
            base.clone(),
            tokens.clone(),
            classes.clone(),
            work.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((no, name, grade)) = work.get(i) else {
                    break;
                };
                let to = TO_SCHOOLS[i % TO_SCHOOLS.len()];
                let from = if no.is_empty() {
                    FROM_SCHOOLS[0]
                } else {
                    FROM_SCHOOLS[usize::from(grade.as_str() > "16")]
                };
                let tok = |u: String| tokens.by_user[&u].clone();
                let res: anyhow::Result<()> = async {
                    let class = classes[&(to.to_string(), grade.clone())];
                    let t = call(
                        &client,
                        &tok(format!("{to}-admin")),
                        format!("{base}/api/v1/transfers"),
                        json!({
                            "from_province": "410000", "student_name": name, "student_ref": no,
                            "to_grade": grade, "to_class_id": class, "reason": "随迁"
                        }),
                        &mut lat,
                    )
                    .await?;
                    let t: Value = serde_json::from_slice(&t).context("filing answer")?;
                    let id = t["id"].as_i64().context("id")?;
                    let from_school = t["from_school"].as_str().unwrap_or(from).to_string();
                    for who in [
                        format!("{to}-reviewer"),
                        format!("edu{}", &to[0..6]),
                        format!("{from_school}-reviewer"),
                        format!("edu{}", &from_school[0..6]),
                    ] {
                        call(
                            &client,
                            &tok(who),
                            format!("{base}/api/v1/transfers/{id}/review"),
                            json!({ "decision": "approve", "opinion": "同意" }),
                            &mut lat,
                        )
                        .await?;
                    }
                    call(
                        &client,
                        &tok(format!("{to}-admin")),
                        format!("{base}/api/v1/transfers/{id}/pull-file"),
                        json!({}),
                        &mut lat,
                    )
                    .await?;
                    Ok(())
                }
                .await;
                if let Err(e) = res {
                    errors += 1;
                    if errors < 3 {
                        eprintln!("transfer {i}: {e:#}");
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_before;
    let gc = gc_now(db).zip(gc_before).map(|(a, b)| Gc {
        released: a.released - b.released,
        commits: a.commits - b.commits,
        held_ns: a.held_ns - b.held_ns,
        commit_ns: a.commit_ns - b.commit_ns,
        wait_ns: a.wait_ns - b.wait_ns,
    });
    lat.sort();
    let steps = lat.len() as f64;
    let transfers = work.len() - errors;
    server.stop().await?;

    let per_client = (lat.len() / clients).clamp(50, 2000);
    let (bare_tps, bare_p99) = bare_rate(db, clients, per_client).await?;
    println!();
    println!(
        "workflow (HTTP, {} clients): {transfers} complete transfers ({errors} failed) in {secs:.1}s",
        clients
    );
    println!("  transfers/s      {:>10.1}", transfers as f64 / secs);
    println!(
        "  steps/s          {:>10.1}   (apply + 4 reviews + pull = 6 steps each)",
        steps / secs
    );
    println!(
        "  step latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99)
    );
    println!(
        "  bare tx/s        {:>10.1}   (UPDATE + INSERT per commit, {} tasks; p99 {:.2} ms)",
        bare_tps, clients, bare_p99
    );
    println!(
        "  steps / bare     {:>10.1} %",
        100.0 * (steps / secs) / bare_tps
    );
    println!(
        "  CPU per step     {:>10.0} µs   (user + system of server and load generator; {:.1} of the machine's cores busy)",
        cpu / steps * 1e6,
        cpu / secs
    );
    if let Some(g) = gc.filter(|g| g.commits > 0 && g.released > 0) {
        println!(
            "  group commit     {:>10.1} transactions per physical commit; commit {:.2} ms, writer held {:.0} µs per transaction, wait for commit {:.2} ms",
            g.released as f64 / g.commits as f64,
            g.commit_ns as f64 / g.commits as f64 / 1e6,
            g.held_ns as f64 / g.released as f64 / 1e3,
            g.wait_ns as f64 / g.released as f64 / 1e6,
        );
    }
    println!(
        "  peak RSS (server + load generator) {:.0} MB",
        peak_rss_mb()
    );
    // A failed transfer is a fault, not a figure: the run (and CI) fails.
    anyhow::ensure!(errors == 0, "{errors} transfers failed");
    Ok(())
}
