//! Crash safety (issue 7.1): hundreds of transfers driven through the HTTP API of a real `xueji
//! serve` process, which is killed with SIGKILL at random moments and restarted; on PostgreSQL the
//! database server is restarted too when `XUEJI_TEST_RESTART_POSTGRES=1` (CI sets it; it needs the
//! right to run `pg_ctlcluster`). Then: every step that was answered 2xx is in the database,
//! nothing is half done, every student is enrolled at exactly one school, and the audit chain
//! verifies.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Running, Target, address_in, assert_ok, spawn, targets, text};

const TRANSFERS: usize = 240;
const CLIENTS: usize = 48;
const KILLS: usize = 5;

/// A small deterministic generator (the seed is printed, so a failing run can be repeated).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(t: &Target, port: u16) -> Running {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["serve", "--addr", addr.as_str()];
    args.extend(t.args());
    let mut r = spawn(&args);
    let (line, _) = r.wait_line(true, "listening on http://", Duration::from_secs(60));
    assert_eq!(address_in(&line), addr);
    r
}

fn sigkill(r: &mut Running) {
    let pid = libc::pid_t::try_from(r.child.id()).expect("pid");
    // SAFETY: a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGKILL) },
        0,
        "kill(SIGKILL)"
    );
    let status = r.child.wait().expect("wait");
    assert!(!status.success(), "killed, not exited");
}

/// One unit of work: a student of a 河南 school moving to a 广东 school's class of the same grade.
#[derive(Clone)]
struct Job {
    student_no: String,
    name: String,
    grade: String,
    to: String,
    class_id: i64,
}

/// What the server acknowledged (2xx): (transfer id, action), action = `file`, a step word, `pull`.
type Acks = Arc<Mutex<Vec<(i64, String)>>>;

enum Outcome {
    Ok(Value),
    /// Refused with this problem code (a state that changed meanwhile, e.g. after a lost answer).
    Refused(u16, String),
    /// No answer (connection refused or cut, or a 5xx while the database restarts): try again.
    Unknown,
}

async fn send(rb: reqwest::RequestBuilder) -> Outcome {
    let Ok(res) = rb.timeout(Duration::from_secs(20)).send().await else {
        return Outcome::Unknown;
    };
    let status = res.status().as_u16();
    let Ok(body) = res.json::<Value>().await else {
        return Outcome::Unknown;
    };
    match status {
        200..=299 => Outcome::Ok(body),
        500..=599 => Outcome::Unknown,
        s => Outcome::Refused(s, body["code"].as_str().unwrap_or("").to_string()),
    }
}

struct Ctx {
    client: reqwest::Client,
    base: String,
    tokens: HashMap<String, String>,
    acks: Acks,
}

impl Ctx {
    fn tok(&self, user: &str) -> &str {
        self.tokens
            .get(user)
            .unwrap_or_else(|| panic!("no token for {user}"))
    }

    async fn pause(&self) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Finds the open transfer of a student (after a filing whose answer was lost).
    async fn find(&self, job: &Job) -> Option<i64> {
        loop {
            let rb = self
                .client
                .get(format!(
                    "{}/api/v1/transfers?q={}&direction=in",
                    self.base, job.student_no
                ))
                .bearer_auth(self.tok(&format!("{}-admin", job.to)));
            match send(rb).await {
                Outcome::Ok(v) => {
                    return v.as_array().and_then(|a| {
                        a.iter()
                            .find(|t| {
                                !matches!(t["status"].as_str(), Some("rejected" | "withdrawn"))
                            })
                            .and_then(|t| t["id"].as_i64())
                    });
                }
                Outcome::Unknown => self.pause().await,
                Outcome::Refused(s, c) => panic!("listing transfers: {s} {c}"),
            }
        }
    }

    /// Drives one transfer from filing to 调档, whatever the server does meanwhile.
    async fn run(&self, job: Job) {
        let admin = format!("{}-admin", job.to);
        let mut id: Option<i64> = None;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            assert!(Instant::now() < deadline, "transfer of {} stuck", job.name);
            let Some(tid) = id else {
                let rb = self
                    .client
                    .post(format!("{}/api/v1/transfers", self.base))
                    .bearer_auth(self.tok(&admin))
                    .json(&json!({
                        "from_province": "410000", "student_name": job.name,
                        "student_ref": job.student_no, "to_grade": job.grade,
                        "to_class_id": job.class_id, "reason": "随迁"
                    }));
                match send(rb).await {
                    Outcome::Ok(v) => {
                        let tid = v["id"].as_i64().expect("id");
                        self.acks.lock().unwrap().push((tid, "file".into()));
                        id = Some(tid);
                    }
                    Outcome::Refused(409, code) if code == "transfer_in_progress" => {
                        id = self.find(&job).await;
                    }
                    Outcome::Unknown => {
                        self.pause().await;
                        id = self.find(&job).await;
                    }
                    Outcome::Refused(s, c) => panic!("filing for {}: {s} {c}", job.name),
                }
                continue;
            };
            let rb = self
                .client
                .get(format!("{}/api/v1/transfers/{tid}", self.base))
                .bearer_auth(self.tok(&admin));
            let d = match send(rb).await {
                Outcome::Ok(d) => d,
                Outcome::Unknown => {
                    self.pause().await;
                    continue;
                }
                Outcome::Refused(s, c) => panic!("reading transfer {tid}: {s} {c}"),
            };
            let status = d["status"].as_str().unwrap_or_default().to_string();
            let (user, path, body, action) = match status.as_str() {
                "file_pulled" => return,
                "approved" => (
                    admin.clone(),
                    format!("/api/v1/transfers/{tid}/pull-file"),
                    json!({}),
                    "pull".to_string(),
                ),
                s if s.ends_with("_review") => {
                    let step = d["steps"]
                        .as_array()
                        .and_then(|a| a.iter().find(|st| st["state"] == "waiting"))
                        .expect("a waiting step");
                    let party = step["party"].as_str().unwrap();
                    let user = if step["party_type"] == "school" {
                        format!("{party}-reviewer")
                    } else {
                        format!("edu{party}")
                    };
                    (
                        user,
                        format!("/api/v1/transfers/{tid}/review"),
                        json!({ "decision": "approve", "opinion": "同意" }),
                        step["step"].as_str().unwrap().to_string(),
                    )
                }
                other => panic!("transfer {tid} in unexpected state {other}"),
            };
            let rb = self
                .client
                .post(format!("{}{path}", self.base))
                .bearer_auth(self.tok(&user))
                .json(&body);
            match send(rb).await {
                Outcome::Ok(_) => self.acks.lock().unwrap().push((tid, action)),
                // The answer to an earlier try was lost, or the state moved: read it again.
                Outcome::Refused(409, _) | Outcome::Refused(403, _) | Outcome::Unknown => {
                    self.pause().await
                }
                Outcome::Refused(s, c) => panic!("{action} on {tid} by {user}: {s} {c}"),
            }
        }
    }
}

async fn login(client: &reqwest::Client, base: &str, user: &str) -> String {
    let v: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": user, "password": "Demo@2026" }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login JSON");
    v["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login {user}: {v}"))
        .to_string()
}

async fn get(client: &reqwest::Client, url: String, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

/// The work list and every token it needs, read from the demo dataset through the API.
async fn prepare(client: &reqwest::Client, base: &str) -> (Vec<Job>, HashMap<String, String>) {
    let moe = login(client, base, "moe").await;
    let schools = |region: &'static str| {
        let moe = moe.clone();
        async move {
            get(
                client,
                format!("{base}/api/v1/schools?region={region}&per_page=500"),
                &moe,
            )
            .await
            .as_array()
            .expect("schools")
            .iter()
            .map(|s| {
                (
                    s["code"].as_str().unwrap().to_string(),
                    s["authority"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
        }
    };
    let from = schools("410000").await;
    let to = schools("440000").await;
    let mut users = vec![];
    for (code, authority) in from.iter().chain(to.iter()) {
        users.push(format!("{code}-admin"));
        users.push(format!("{code}-reviewer"));
        users.push(format!("edu{authority}"));
    }
    users.sort();
    users.dedup();
    let mut tokens = HashMap::new();
    for u in users {
        let t = login(client, base, &u).await;
        tokens.insert(u, t);
    }
    let mut classes: HashMap<(String, String), i64> = HashMap::new();
    for (code, _) in &to {
        for c in get(
            client,
            format!("{base}/api/v1/schools/{code}/classes"),
            &tokens[&format!("{code}-admin")],
        )
        .await
        .as_array()
        .expect("classes")
        {
            classes
                .entry((code.clone(), c["grade"].as_str().unwrap().to_string()))
                .or_insert(c["id"].as_i64().unwrap());
        }
    }
    let mut jobs = vec![];
    'outer: for (code, _) in &from {
        let list = get(
            client,
            format!("{base}/api/v1/students?school={code}&per_page=500"),
            &moe,
        )
        .await;
        for s in list.as_array().expect("students") {
            let grade = s["grade"].as_str().unwrap().to_string();
            let n = jobs.len();
            let Some(((to, _), class_id)) = to
                .iter()
                .cycle()
                .skip(n % to.len())
                .take(to.len())
                .find_map(|(t, _)| {
                    classes
                        .get(&(t.clone(), grade.clone()))
                        .map(|c| ((t.clone(), ()), *c))
                })
            else {
                continue;
            };
            jobs.push(Job {
                student_no: s["student_no"].as_str().unwrap().to_string(),
                name: s["name"].as_str().unwrap().to_string(),
                grade,
                to,
                class_id,
            });
            if jobs.len() == TRANSFERS {
                break 'outer;
            }
        }
    }
    (jobs, tokens)
}

fn restart_postgres() {
    let versions = std::fs::read_dir("/etc/postgresql").expect("/etc/postgresql");
    for v in versions.flatten() {
        let v = v.file_name().to_string_lossy().into_owned();
        let out = std::process::Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &v,
                "main",
                "restart",
                "-m",
                "fast",
            ])
            .output()
            .expect("pg_ctlcluster");
        assert!(
            out.status.success(),
            "pg_ctlcluster restart: {}",
            text(&out.stderr)
        );
    }
}

/// The database as the test reads it after the last restart: (query → rows of text).
fn rows(t: &Target, sql: &str) -> Vec<Vec<String>> {
    let (url, sql) = (t.url(), sql.to_string());
    super::block_on(async move {
        use sqlx::{Connection, Row};
        macro_rules! fetch {
            ($conn:ty) => {{
                let mut c = <$conn>::connect(&url).await.expect("connect");
                let rs = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .expect("query");
                let out: Vec<Vec<String>> = rs
                    .iter()
                    .map(|r| {
                        (0..r.columns().len())
                            .map(|i| {
                                r.try_get::<String, _>(i)
                                    .or_else(|_| r.try_get::<i64, _>(i).map(|n| n.to_string()))
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                    .collect();
                let _ = c.close().await;
                out
            }};
        }
        if url.starts_with("postgres") {
            fetch!(sqlx::PgConnection)
        } else {
            fetch!(sqlx::SqliteConnection)
        }
    })
}

#[test]
fn transfers_survive_sigkill_and_database_restarts() {
    let _alone = super::kill_tests_alone();
    let restart_pg = std::env::var("XUEJI_TEST_RESTART_POSTGRES").is_ok_and(|v| v == "1");
    for mut t in targets() {
        // This test's own hold on PostgreSQL is released: it restarts the server itself.
        drop(t.pg_guard.take());
        assert_ok(&t.run(&["seed", "demo"]), &format!("{}: seed", t.label));
        // Receiving classes must not fill up: capacity is not what this test is about.
        t.exec("UPDATE classes SET capacity = 100000");
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("{}: crash test seed {seed}", t.label);
        let mut rng = Lcg(seed);
        let port = free_port();
        let server = Arc::new(Mutex::new(start(&t, port)));
        let base = format!("http://127.0.0.1:{port}");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let acks: Acks = Arc::default();
        let pg_here = restart_pg && t.label == "postgres";
        let kills = rt.block_on(async {
            let client = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(CLIENTS)
                .build()
                .unwrap();
            let (jobs, tokens) = prepare(&client, &base).await;
            assert!(
                jobs.len() >= 200,
                "{} jobs from the demo dataset",
                jobs.len()
            );
            let ctx = Arc::new(Ctx {
                client,
                base: base.clone(),
                tokens,
                acks: acks.clone(),
            });
            let queue = Arc::new(Mutex::new(jobs));
            let mut workers = vec![];
            for _ in 0..CLIENTS {
                let (ctx, queue) = (ctx.clone(), queue.clone());
                workers.push(tokio::spawn(async move {
                    loop {
                        let Some(job) = queue.lock().unwrap().pop() else {
                            break;
                        };
                        ctx.run(job).await;
                    }
                }));
            }
            // The killer: SIGKILL at random moments while the workers run, then restart.
            let mut kills = 0;
            let mut pg_restarts = 0;
            while kills < KILLS && workers.iter().any(|w| !w.is_finished()) {
                tokio::time::sleep(Duration::from_millis(300 + rng.below(1500))).await;
                if pg_here && kills == 2 && pg_restarts == 0 {
                    tokio::task::spawn_blocking(|| {
                        // Wait until no other test of this binary uses PostgreSQL.
                        let _only_us = super::PG_IN_USE.write().unwrap_or_else(|e| e.into_inner());
                        restart_postgres();
                    })
                    .await
                    .unwrap();
                    pg_restarts += 1;
                    continue;
                }
                let server = server.clone();
                let t_args = (t.args.clone(), t.label);
                tokio::task::spawn_blocking(move || {
                    let mut s = server.lock().unwrap();
                    sigkill(&mut s);
                    let t = Target {
                        label: t_args.1,
                        args: t_args.0,
                        pg_name: None,
                        pg_guard: None,
                    };
                    *s = start(&t, port);
                })
                .await
                .unwrap();
                kills += 1;
            }
            for w in workers {
                w.await.expect("a worker panicked");
            }
            (kills, pg_restarts)
        });
        // One more kill at the very end, so that nothing relies on a clean stop.
        sigkill(&mut server.lock().unwrap());
        let acks = acks.lock().unwrap().clone();
        eprintln!(
            "{}: {} acknowledged steps, {} SIGKILLs, {} PostgreSQL restarts",
            t.label,
            acks.len(),
            kills.0 + 1,
            kills.1
        );
        assert!(kills.0 >= 1, "the server was killed during the run");

        // Every acknowledged step is there.
        let steps: HashMap<(String, String), String> = rows(
            &t,
            "SELECT CAST(transfer_id AS TEXT), code, COALESCE(decision, '') FROM transfer_steps",
        )
        .into_iter()
        .map(|r| ((r[0].clone(), r[1].clone()), r[2].clone()))
        .collect();
        let status: HashMap<String, String> =
            rows(&t, "SELECT CAST(id AS TEXT), status FROM transfers")
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect();
        for (id, action) in &acks {
            let id = id.to_string();
            match action.as_str() {
                "file" => assert!(status.contains_key(&id), "filed transfer {id} lost"),
                "pull" => assert_eq!(status[&id], "file_pulled", "pull of {id} lost"),
                step => assert_eq!(
                    steps
                        .get(&(id.clone(), step.to_string()))
                        .map(String::as_str),
                    Some("approve"),
                    "{step} of {id} lost"
                ),
            }
        }
        // Every transfer ran to 调档 (the workers only stop there).
        let pulled = status.values().filter(|s| *s == "file_pulled").count();
        assert!(pulled >= 200, "{pulled} transfers pulled");
        // Nothing half done: a pulled transfer has moved the enrollment and has its audit row; an
        // open business remains for no pulled transfer.
        let half = rows(
            &t,
            "SELECT CAST(t.id AS TEXT) FROM transfers t JOIN students s ON s.id = t.student_id \
             JOIN schools sc ON sc.id = s.school_id \
             WHERE t.status = 'file_pulled' AND (sc.code <> t.to_school \
               OR NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.action = 'transfer.pull_file' AND a.entity_id = CAST(t.id AS TEXT)) \
               OR EXISTS (SELECT 1 FROM open_businesses b WHERE b.student_id = t.student_id))",
        );
        assert!(half.is_empty(), "half-done transfers: {half:?}");
        // Every enrolled student has exactly one active enrollment, at the school the record names.
        let bad = rows(
            &t,
            "SELECT s.student_no FROM students s WHERE s.status = 'enrolled' AND (SELECT COUNT(*) \
             FROM enrollments e WHERE e.student_id = s.id AND e.ended_at IS NULL \
             AND e.school_id = s.school_id) <> 1 \
             OR (SELECT COUNT(*) FROM enrollments e WHERE e.student_id = s.id AND e.ended_at IS NULL) > 1",
        );
        assert!(
            bad.is_empty(),
            "students not at exactly one school: {bad:?}"
        );
        let out = t.run(&["audit", "verify"]);
        assert_ok(
            &out,
            &format!("{}: audit verify after the crashes", t.label),
        );
    }
}
