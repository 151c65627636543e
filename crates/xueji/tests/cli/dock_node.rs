//! 对接 with two real processes on loopback: the hub (`xueji demo`) and 北京's provincial node
//! (`xueji serve --mode province`), each with its own database. A transfer 北京 → 广东: 广东's
//! people act at the hub, 北京's people queue their decisions at their node, which delivers them
//! through the signed interface; the node is killed with SIGKILL mid-way and resumes from its
//! stored cursor. In the end the hub's transfer is approved with each 北京 step decided once,
//! and the feed is fully acknowledged.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Running, address_in, assert_ok, block_on, run, spawn, temp_path};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(addr: &str) -> Api {
        Api {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn login(&self, user: &str) -> String {
        let v: Value = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({ "username": user, "password": "Demo@2026" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login {user}: {v}"))
            .to_string()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        tok: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(tok);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, tok: &str) -> Value {
        let (st, v) = self.call(reqwest::Method::GET, path, tok, None).await;
        assert_eq!(st, 200, "GET {path}: {v}");
        v
    }

    async fn post(&self, path: &str, tok: &str, body: Value) -> Value {
        let (st, v) = self
            .call(reqwest::Method::POST, path, tok, Some(body))
            .await;
        assert!((200..300).contains(&st), "POST {path}: {st} {v}");
        v
    }
}

/// Evaluates an async `Option` expression until it is `Some`, for at most 60 s.
macro_rules! eventually {
    ($what:expr, $e:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(v) = $e {
                break v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

fn start_node(db: &str, port: u16, hub: &str, key: &str, hub_key: &str) -> Running {
    let addr = format!("127.0.0.1:{port}");
    let mut r = spawn(&[
        "serve",
        "--db",
        db,
        "--addr",
        &addr,
        "--mode",
        "province",
        "--province",
        "110000",
        "--hub",
        hub,
        "--key",
        key,
        "--hub-key",
        hub_key,
    ]);
    let (line, _) = r.wait_line(true, "listening on http://", Duration::from_secs(60));
    assert_eq!(address_in(&line), addr);
    r
}

fn sigkill(r: &mut Running) {
    let pid = libc::pid_t::try_from(r.child.id()).expect("pid");
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let _ = r.child.wait();
}

fn start_hub(db: &str, addr: &str, demo: bool) -> Running {
    let args: Vec<&str> = if demo {
        vec!["demo", "--db", db, "--addr", addr]
    } else {
        vec!["serve", "--db", db, "--addr", addr]
    };
    let mut r = spawn(&args);
    r.wait_line(true, "listening on http://", Duration::from_secs(120));
    r
}

/// Waits until the hub shows the transfer in `status`.
async fn hub_status(h: &Api, tok: &str, id: i64, status: &str) -> Value {
    eventually!(
        format!("transfer {id} {status} at the hub"),
        async {
            let t = h.get(&format!("/api/v1/transfers/{id}"), tok).await;
            (t["status"] == status).then_some(t)
        }
        .await
    )
}

/// Waits until the node's work list for `tok` holds the transfer.
async fn on_node_todo(n: &Api, tok: &str, id: i64) {
    eventually!(
        format!("transfer {id} on the node's work list"),
        async {
            let todo = n.get("/api/v1/node/todo", tok).await;
            todo.as_array()
                .unwrap()
                .iter()
                .any(|t| t["transfer_id"] == id)
                .then_some(())
        }
        .await
    )
}

/// The first `_csrf` hidden field of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..].split('"').next().unwrap().to_string()
}

/// A person signs in on the node's web UI and clicks 同意 on its 对接待办 page.
async fn web_approve(addr: &str, user: &str, id: i64) {
    let c = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{addr}");
    let form = c
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = c
        .post(format!("{base}/login"))
        .form(&[
            ("_csrf", csrf_of(&form).as_str()),
            ("username", user),
            ("password", "Demo@2026"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "web login {user}");
    let page = c
        .get(format!("{base}/node"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("action=\"/node/{id}\"")), "{page}");
    let res = c
        .post(format!("{base}/node/{id}"))
        .form(&[
            ("_csrf", csrf_of(&page).as_str()),
            ("decision", "approve"),
            ("opinion", "同意"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "queued");
}

async fn node_act(n: &Api, tok: &str, id: i64, decision: &str) {
    n.post(
        &format!("/api/v1/node/transfers/{id}/decisions"),
        tok,
        json!({ "decision": decision, "opinion": "同意", "method": "EMS" }),
    )
    .await;
}

#[test]
fn a_province_node_and_the_hub_complete_transfers_both_ways_across_crashes() {
    let _alone = super::kill_tests_alone();
    let hub_db = temp_path("hub.db").display().to_string();
    let node_db = temp_path("node.db").display().to_string();
    let key_file = temp_path("node.key").display().to_string();
    let hub_addr = format!("127.0.0.1:{}", free_port());
    let mut hub = start_hub(&hub_db, &hub_addr, true);
    assert_ok(
        &run(&["seed", "demo", "--db", &node_db]),
        "seed the node's own database",
    );
    let hub_url = format!("http://{hub_addr}");
    let node_port = free_port();
    // The hub's public key reaches the province out of band (here: read from the hub).
    let hub_key = block_on(async {
        let v: Value = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{hub_url}/api/dock/v1/hub-key"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["public_key"].as_str().unwrap().to_string()
    });
    let mut node = start_node(&node_db, node_port, &hub_url, &key_file, &hub_key);
    let node_addr = format!("127.0.0.1:{node_port}");
    // The node created its key; the Ministry registers its public half.
    let key = xueji_app::dock::key_from_secret_b64(&std::fs::read_to_string(&key_file).unwrap())
        .expect("the node wrote a valid key file");
    let h = Api::new(&hub_addr);
    let n = Api::new(&node_addr);

    // Phase 1, both up. T1: 北京 → 广东 filed at the hub; T2: 河南 → 北京 filed at the node.
    let (t1, t2, bj_no, hn_no) = block_on(async {
        let moe = h.login("moe").await;
        let (st, v) = h
            .call(
                reqwest::Method::PUT,
                "/api/v1/dock/provinces/110000",
                &moe,
                Some(json!({ "public_key": xueji_app::dock::public_b64(&key) })),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let pick = |list: &Value| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|s| s["grade"] == "13")
                .expect("a grade-13 student")
                .clone()
        };
        let bj = pick(
            &h.get(
                "/api/v1/students?school=1101080001&per_page=500",
                &h.login("edu110108").await,
            )
            .await,
        );
        let hn = pick(
            &h.get(
                "/api/v1/students?school=4101050001&per_page=500",
                &h.login("edu410105").await,
            )
            .await,
        );
        let class_at = |school: &'static str| {
            let h = &h;
            async move {
                let tok = h.login("moe").await;
                let classes = h
                    .get(&format!("/api/v1/schools/{school}/classes"), &tok)
                    .await;
                classes
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["grade"] == "13")
                    .unwrap()["id"]
                    .clone()
            }
        };
        let gd = h.login("4401060001-admin").await;
        let t1 = h
            .post(
                "/api/v1/transfers",
                &gd,
                json!({ "from_province": "110000", "student_name": bj["name"], "student_ref": bj["student_no"],
                        "to_grade": "13", "to_class_id": class_at("4401060001").await, "reason": "随父母工作调动迁居" }),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        for who in ["4401060001-reviewer", "edu440106"] {
            let tok = h.login(who).await;
            h.post(
                &format!("/api/v1/transfers/{t1}/review"),
                &tok,
                json!({ "decision": "approve", "opinion": "同意" }),
            )
            .await;
        }
        // The class id is the hub's (the national roll of classes).
        let bj_admin = n.login("1101080001-admin").await;
        n.post(
            "/api/v1/node/transfers",
            &bj_admin,
            json!({ "from_province": "410000", "student_name": hn["name"], "student_ref": hn["student_no"],
                    "to_grade": "13", "to_class_id": class_at("1101080001").await, "reason": "随父母工作调动迁居" }),
        )
        .await;
        let t2 = eventually!(
            "T2 filed at the hub",
            async {
                let list = h
                    .get(
                        "/api/v1/transfers?direction=in&per_page=50",
                        &h.login("edu110108").await,
                    )
                    .await;
                list.as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["to_school"] == "1101080001")
                    .map(|t| t["id"].as_i64().unwrap())
            }
            .await
        );
        let rev = n.login("1101080001-reviewer").await;
        // T1 through the node's page (对接待办), T2 through its API.
        on_node_todo(&n, &rev, t1).await;
        web_approve(&node_addr, "1101080001-reviewer", t1).await;
        on_node_todo(&n, &rev, t2).await;
        node_act(&n, &rev, t2, "approve").await;
        hub_status(&h, &moe, t1, "out_authority_review").await;
        hub_status(&h, &moe, t2, "in_authority_review").await;
        let no = |s: &Value| s["student_no"].as_str().unwrap().to_string();
        (t1, t2, no(&bj), no(&hn))
    });

    // The node dies without warning and comes back: it resumes from its stored cursor.
    sigkill(&mut node);
    let mut node = start_node(&node_db, node_port, &hub_url, &key_file, &hub_key);
    block_on(async {
        let edu = n.login("edu110108").await;
        for t in [t1, t2] {
            on_node_todo(&n, &edu, t).await;
            node_act(&n, &edu, t, "approve").await;
        }
        let moe = h.login("moe").await;
        hub_status(&h, &moe, t1, "approved").await;
        hub_status(&h, &moe, t2, "out_school_review").await;
    });

    // The hub dies without warning and comes back; the node keeps retrying meanwhile.
    sigkill(&mut hub);
    let mut hub = start_hub(&hub_db, &hub_addr, false);
    block_on(async {
        let moe = h.login("moe").await;
        for who in ["4101050001-reviewer", "edu410105"] {
            let tok = h.login(who).await;
            h.post(
                &format!("/api/v1/transfers/{t2}/review"),
                &tok,
                json!({ "decision": "approve", "opinion": "同意" }),
            )
            .await;
        }
        let gd = h.login("4401060001-admin").await;
        h.post(&format!("/api/v1/transfers/{t1}/pull-file"), &gd, json!({}))
            .await;
        // 北京's school: sends T1's paper file, pulls T2's file — at its node.
        let bj_admin = n.login("1101080001-admin").await;
        on_node_todo(&n, &bj_admin, t1).await;
        node_act(&n, &bj_admin, t1, "paper_sent").await;
        on_node_todo(&n, &bj_admin, t2).await;
        node_act(&n, &bj_admin, t2, "pull_file").await;
        hub_status(&h, &moe, t1, "paper_sent").await;
        hub_status(&h, &moe, t2, "file_pulled").await;
        h.post(
            &format!("/api/v1/transfers/{t1}/paper-file"),
            &gd,
            json!({ "action": "received", "note": "" }),
        )
        .await;
        let hn = h.login("4101050001-admin").await;
        h.post(
            &format!("/api/v1/transfers/{t2}/paper-file"),
            &hn,
            json!({ "action": "sent", "note": "EMS" }),
        )
        .await;
        on_node_todo(&n, &bj_admin, t2).await;
        node_act(&n, &bj_admin, t2, "paper_received").await;
        let done1 = hub_status(&h, &moe, t1, "completed").await;
        let done2 = hub_status(&h, &moe, t2, "completed").await;
        for t in [&done1, &done2] {
            // Each of the four steps decided once; 北京's by its system in its people's names.
            assert!(
                t["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["decision"] == "approve"),
                "{t}"
            );
        }
        assert!(
            done1["steps"][2]["actor_name"]
                .as_str()
                .unwrap()
                .ends_with("（北京市学籍系统）"),
            "{done1}"
        );
        assert!(
            done2["steps"][0]["actor_name"]
                .as_str()
                .unwrap()
                .ends_with("（北京市学籍系统）"),
            "{done2}"
        );
        // Both sides end in the same state, every event acknowledged, nothing left to send.
        let p = eventually!(
            "the feed acknowledged",
            async {
                let list = h.get("/api/v1/dock/provinces", &moe).await;
                let p = list[0].clone();
                (p["backlog"] == 0 && p["last_seq"].as_i64() >= Some(16)).then_some(p)
            }
            .await
        );
        let edu = n.login("edu110108").await;
        let status = n.get("/api/v1/node/status", &edu).await;
        assert_eq!(status["feed_cursor"], p["last_seq"], "{status}");
        assert_eq!(status["pending"], 0);
        let seen = n.get("/api/v1/node/transfers", &edu).await;
        for t in [t1, t2] {
            let mine = seen
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["transfer_id"] == t)
                .expect("known to the node");
            assert_eq!(mine["data"]["status"], "completed", "{mine}");
        }
        let msgs = n.get("/api/v1/node/messages", &edu).await;
        for m in msgs.as_array().unwrap() {
            assert_eq!(m["state"], "answered", "{m}");
            assert!(matches!(m["status"].as_i64(), Some(200 | 201)), "{m}");
        }
        // The node's own roll followed both pulls: T1's student left 北京 (已转出, at no school
        // of the node), T2's is at the 北京 school in the hub's grade and class, and nowhere else.
        let node_moe = n.login("moe").await;
        let gone = roll_shows(&n, &node_moe, &bj_no, None).await;
        assert_eq!(gone["enrollments"][0]["school"], "1101080001", "{gone}");
        assert_eq!(gone["enrollments"][0]["transfer_id"], t1, "{gone}");
        let there = h.get(&format!("/api/v1/students/{hn_no}"), &moe).await;
        let here = roll_shows(&n, &node_moe, &hn_no, Some("1101080001")).await;
        assert_eq!(
            (&here["grade"], &here["class_name"], &here["name"]),
            (&there["grade"], &there["class_name"], &there["name"])
        );
        for (school, no, listed) in [
            ("1101080001", &bj_no, false),
            ("1101080001", &hn_no, true),
            ("4101050001", &hn_no, false),
        ] {
            let list = n
                .get(
                    &format!("/api/v1/students?school={school}&per_page=500"),
                    &node_moe,
                )
                .await;
            let found = list
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["student_no"] == **no);
            assert_eq!(found, listed, "{school} lists {no}: {found}");
        }
        // Every message again, late (a duplicate delayed in the network): the hub answers each
        // from its first answer and nothing changes. Forged and stale copies are refused.
        let v1 = h.get(&format!("/api/v1/transfers/{t1}"), &moe).await["version"].clone();
        let v2 = h.get(&format!("/api/v1/transfers/{t2}"), &moe).await["version"].clone();
        let send = |key: &xueji_app::dock::DockKey, path: &str, idem: &str, body: &str, ts: i64| {
            let headers = xueji_app::dock::sign_request(
                key,
                "110000",
                "POST",
                path,
                ts,
                Some(idem),
                body.as_bytes(),
            );
            let mut r = h
                .client
                .post(format!("{}{path}", h.base))
                .header("content-type", "application/json")
                .body(body.to_string());
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.send()
        };
        let now = chrono::Utc::now().timestamp();
        for m in msgs.as_array().unwrap() {
            let (path, idem, body) = (
                m["path"].as_str().unwrap(),
                m["idem_key"].as_str().unwrap(),
                m["body"].as_str().unwrap(),
            );
            let res = send(&key, path, idem, body, now).await.unwrap();
            assert_eq!(
                res.headers()
                    .get("idempotent-replayed")
                    .map(|v| v.to_str().unwrap()),
                Some("true"),
                "{m}"
            );
            assert_eq!(
                i64::from(res.status().as_u16()),
                m["status"].as_i64().unwrap(),
                "{m}"
            );
            let forged = send(&xueji_app::dock::new_key(), path, idem, body, now)
                .await
                .unwrap();
            assert_eq!(forged.status().as_u16(), 401);
            let stale = send(&key, path, idem, body, now - 3600).await.unwrap();
            assert_eq!(stale.status().as_u16(), 401);
        }
        assert_eq!(
            h.get(&format!("/api/v1/transfers/{t1}"), &moe).await["version"],
            v1
        );
        assert_eq!(
            h.get(&format!("/api/v1/transfers/{t2}"), &moe).await["version"],
            v2
        );
    });
    node.sigterm();
    node.wait_exit(Duration::from_secs(30));
    hub.sigterm();
    hub.wait_exit(Duration::from_secs(30));
    let node_roll = roll_counts(&node_db);
    assert_eq!(
        node_roll,
        (2, 2, 2),
        "two roll changes, each applied and audited once"
    );
}

/// Waits until the node's roll shows the student at `school` (enrolled), or at none of its
/// schools (已转出); returns the node's record.
async fn roll_shows(n: &Api, tok: &str, no: &str, school: Option<&str>) -> Value {
    eventually!(
        format!("{no} at {school:?} on the node's roll"),
        async {
            let s = n.get(&format!("/api/v1/students/{no}"), tok).await;
            let status = if school.is_some() {
                "enrolled"
            } else {
                "transferred_out"
            };
            (s["school"].as_str() == school && s["status"] == status).then_some(s)
        }
        .await
    )
}

/// The node's roll changes: (queued, applied, audited) — read from its database.
fn roll_counts(node_db: &str) -> (i64, i64, i64) {
    block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{node_db}"))
            .await
            .unwrap();
        let mut out = vec![];
        for sql in [
            "SELECT COUNT(*) FROM node_roll",
            "SELECT COUNT(*) FROM node_roll WHERE state = 'applied'",
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('node.roll_in', 'node.roll_out')",
        ] {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
            out.push(n);
        }
        (out[0], out[1], out[2])
    })
}

/// Kills at random moments: decisions are queued at the node and the node (then the hub) is
/// SIGKILLed after a random delay, several times, while they are being delivered; then the files
/// are pulled both ways (广东 at the hub, 北京 at its node) while either side is killed at random
/// while the node's roll follows. Every step is still applied exactly once at the hub, every
/// message ends answered, the feed fully read, and every student is on the node's roll exactly
/// where the hub has them: at one 北京 school (incoming), or at none (已转出, outgoing), each
/// roll change applied and audited once.
#[test]
fn random_kills_during_the_exchange_lose_nothing_and_apply_nothing_twice() {
    let _alone = super::kill_tests_alone();
    const N: usize = 6;
    // Incoming transfers 河南 → 北京, filed at the node.
    const M: usize = 3;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("random kills: seed {seed}");
    let mut rng = seed | 1;
    let mut below = |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let hub_db = temp_path("hub.db").display().to_string();
    let node_db = temp_path("node.db").display().to_string();
    let key_file = temp_path("node.key").display().to_string();
    let hub_addr = format!("127.0.0.1:{}", free_port());
    let mut hub = start_hub(&hub_db, &hub_addr, true);
    assert_ok(&run(&["seed", "demo", "--db", &node_db]), "seed the node");
    let hub_url = format!("http://{hub_addr}");
    let node_port = free_port();
    let node_addr = format!("127.0.0.1:{node_port}");
    let h = Api::new(&hub_addr);
    let n = Api::new(&node_addr);
    let hub_key = block_on(async {
        let v = h
            .client
            .get(format!("{hub_url}/api/dock/v1/hub-key"))
            .send()
            .await
            .unwrap();
        v.json::<Value>().await.unwrap()["public_key"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let mut node = start_node(&node_db, node_port, &hub_url, &key_file, &hub_key);
    let key =
        xueji_app::dock::key_from_secret_b64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let kills = std::cell::Cell::new(0);
    let (out_ids, out_nos) = block_on(async {
        let moe = h.login("moe").await;
        h.call(
            reqwest::Method::PUT,
            "/api/v1/dock/provinces/110000",
            &moe,
            Some(json!({ "public_key": xueji_app::dock::public_b64(&key) })),
        )
        .await;
        let edu = h.login("edu110108").await;
        let students = h
            .get("/api/v1/students?school=1101080001&per_page=500", &edu)
            .await;
        let gd = h.login("4401060001-admin").await;
        let classes = h.get("/api/v1/schools/4401060001/classes", &gd).await;
        let gd_rev = h.login("4401060001-reviewer").await;
        let gd_edu = h.login("edu440106").await;
        let mut ids = vec![];
        let mut nos = vec![];
        for st in students.as_array().unwrap().iter().take(N) {
            let class = classes
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["grade"] == st["grade"])
                .unwrap()["id"]
                .clone();
            let t = h
                .post(
                    "/api/v1/transfers",
                    &gd,
                    json!({ "from_province": "110000", "student_name": st["name"], "student_ref": st["student_no"],
                            "to_grade": st["grade"], "to_class_id": class, "reason": "随父母工作调动迁居" }),
                )
                .await;
            let id = t["id"].as_i64().unwrap();
            for tok in [&gd_rev, &gd_edu] {
                h.post(
                    &format!("/api/v1/transfers/{id}/review"),
                    tok,
                    json!({ "decision": "approve", "opinion": "同意" }),
                )
                .await;
            }
            ids.push(id);
            nos.push(st["student_no"].as_str().unwrap().to_string());
        }
        (ids, nos)
    });
    // 北京's school files M applications at its node for 河南 students.
    let (in_ids, in_nos) = block_on(async {
        let hn = h
            .get(
                "/api/v1/students?school=4101050001&per_page=500",
                &h.login("edu410105").await,
            )
            .await;
        let classes = h
            .get("/api/v1/schools/1101080001/classes", &h.login("moe").await)
            .await;
        let bj_admin = n.login("1101080001-admin").await;
        let mut nos = vec![];
        for st in hn.as_array().unwrap().iter().take(M) {
            let class = classes
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["grade"] == st["grade"])
                .unwrap()["id"]
                .clone();
            n.post(
                "/api/v1/node/transfers",
                &bj_admin,
                json!({ "from_province": "410000", "student_name": st["name"], "student_ref": st["student_no"],
                        "to_grade": st["grade"], "to_class_id": class, "reason": "随父母工作调动迁居" }),
            )
            .await;
            nos.push(st["student_no"].as_str().unwrap().to_string());
        }
        let edu = h.login("edu110108").await;
        let mut ids = vec![];
        for no in &nos {
            ids.push(eventually!(
                format!("{no} filed at the hub"),
                async {
                    let list = h
                        .get("/api/v1/transfers?direction=in&per_page=500", &edu)
                        .await;
                    list.as_array()
                        .unwrap()
                        .iter()
                        .find(|t| t["student_no"] == no.as_str())
                        .map(|t| t["id"].as_i64().unwrap())
                }
                .await
            ));
        }
        (ids, nos)
    });
    let all: Vec<i64> = out_ids.iter().chain(&in_ids).copied().collect();

    // 北京's two steps of every transfer, each round queued at the node and then cut short by
    // kills of the node (round 1) or of the hub (round 2) at random moments.
    for (round, who) in [(0, "1101080001-reviewer"), (1, "edu110108")] {
        block_on(async {
            let tok = n.login(who).await;
            for id in &all {
                on_node_todo(&n, &tok, *id).await;
                node_act(&n, &tok, *id, "approve").await;
            }
        });
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(below(400)));
            if round == 0 {
                sigkill(&mut node);
                node = start_node(&node_db, node_port, &hub_url, &key_file, &hub_key);
            } else {
                sigkill(&mut hub);
                hub = start_hub(&hub_db, &hub_addr, false);
            }
            kills.set(kills.get() + 1);
        }
        let (want_out, want_in) = if round == 0 {
            ("out_authority_review", "in_authority_review")
        } else {
            ("approved", "out_school_review")
        };
        block_on(async {
            let moe = h.login("moe").await;
            for id in &out_ids {
                hub_status(&h, &moe, *id, want_out).await;
            }
            for id in &in_ids {
                hub_status(&h, &moe, *id, want_in).await;
            }
        });
    }

    // 河南 approves at the hub; then the files are pulled both ways — 广东 at the hub, 北京 at
    // its node — and both sides are killed at random moments while the node's roll follows.
    block_on(async {
        for who in ["4101050001-reviewer", "edu410105"] {
            let tok = h.login(who).await;
            for id in &in_ids {
                h.post(
                    &format!("/api/v1/transfers/{id}/review"),
                    &tok,
                    json!({ "decision": "approve", "opinion": "同意" }),
                )
                .await;
            }
        }
        let gd = h.login("4401060001-admin").await;
        for id in &out_ids {
            h.post(&format!("/api/v1/transfers/{id}/pull-file"), &gd, json!({}))
                .await;
        }
        let bj_admin = n.login("1101080001-admin").await;
        for id in &in_ids {
            on_node_todo(&n, &bj_admin, *id).await;
            node_act(&n, &bj_admin, *id, "pull_file").await;
        }
    });
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(below(600)));
        if below(2) == 0 {
            sigkill(&mut node);
            node = start_node(&node_db, node_port, &hub_url, &key_file, &hub_key);
        } else {
            sigkill(&mut hub);
            hub = start_hub(&hub_db, &hub_addr, false);
        }
        kills.set(kills.get() + 1);
    }
    block_on(async {
        let moe = h.login("moe").await;
        for id in &all {
            let t = hub_status(&h, &moe, *id, "file_pulled").await;
            assert!(
                t["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["decision"] == "approve"),
                "{t}"
            );
        }
        let p = eventually!(
            "the feed acknowledged",
            async {
                let list = h.get("/api/v1/dock/provinces", &moe).await;
                let p = list[0].clone();
                (p["backlog"] == 0 && p["last_seq"].as_i64() >= Some(6 * (N + M) as i64))
                    .then_some(p)
            }
            .await
        );
        let edu = n.login("edu110108").await;
        let status = n.get("/api/v1/node/status", &edu).await;
        assert_eq!(
            status["feed_cursor"], p["last_seq"],
            "seed {seed}: {status}"
        );
        assert_eq!(status["pending"], 0, "seed {seed}");
        for m in n
            .get("/api/v1/node/messages", &edu)
            .await
            .as_array()
            .unwrap()
        {
            assert!(
                matches!(m["status"].as_i64(), Some(200 | 201)),
                "seed {seed}: {m}"
            );
        }
        // The node's roll matches the hub: outgoing students at no school of the node (已转出)
        // and at 广东's school at the hub; incoming ones at the 北京 school, grade and class the
        // hub has, and listed by no other school of the node.
        let node_moe = n.login("moe").await;
        for no in &out_nos {
            roll_shows(&n, &node_moe, no, None).await;
            let there = h.get(&format!("/api/v1/students/{no}"), &moe).await;
            assert_eq!(there["school"], "4401060001", "seed {seed}");
        }
        for no in &in_nos {
            let here = roll_shows(&n, &node_moe, no, Some("1101080001")).await;
            let there = h.get(&format!("/api/v1/students/{no}"), &moe).await;
            assert_eq!(
                (&here["grade"], &here["class_name"]),
                (&there["grade"], &there["class_name"]),
                "seed {seed}"
            );
        }
        for school in ["1101080001", "4101050001"] {
            let list = n
                .get(
                    &format!("/api/v1/students?school={school}&per_page=500"),
                    &node_moe,
                )
                .await;
            for s in list.as_array().unwrap() {
                let no = s["student_no"].as_str().unwrap().to_string();
                let incoming = in_nos.contains(&no);
                assert!(
                    !out_nos.contains(&no),
                    "seed {seed}: {no} still at {school}"
                );
                assert_eq!(incoming, school == "1101080001" && incoming, "seed {seed}");
                assert!(
                    !(incoming && school == "4101050001"),
                    "seed {seed}: {no} still at {school}"
                );
            }
        }
    });
    // Exactly one approval per step and one pull per transfer in the hub's audit trail.
    let hub_counts = block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{hub_db}"))
            .await
            .unwrap();
        let mut out = vec![];
        for action in ["transfer.approve", "transfer.pull_file"] {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
                .bind(action)
                .fetch_one(&mut c)
                .await
                .unwrap();
            out.push(n);
        }
        out
    });
    assert_eq!(
        hub_counts,
        [4 * (N + M) as i64, (N + M) as i64],
        "seed {seed}"
    );
    node.sigterm();
    node.wait_exit(Duration::from_secs(30));
    hub.sigterm();
    hub.wait_exit(Duration::from_secs(30));
    // Each roll change queued once, applied once, audited once; and exactly one open enrollment
    // on the node for each incoming student, none for the outgoing.
    assert_eq!(
        roll_counts(&node_db),
        ((N + M) as i64, (N + M) as i64, (N + M) as i64),
        "seed {seed}"
    );
    let open = block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{node_db}"))
            .await
            .unwrap();
        let mut out = vec![];
        for no in out_nos.iter().chain(&in_nos) {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM enrollments WHERE ended_at IS NULL AND student_id = \
                 (SELECT student_id FROM student_numbers WHERE student_no = $1)",
            )
            .bind(no)
            .fetch_one(&mut c)
            .await
            .unwrap();
            out.push(n);
        }
        out
    });
    let want: Vec<i64> = [vec![0; N], vec![1; M]].concat();
    assert_eq!(open, want, "seed {seed}");
    println!(
        "random kills: seed {seed}, {} kills survived, {} transfers ({N} out, {M} in) checked on both rolls",
        kills.get(),
        N + M
    );
}
