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
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = $e {
                break v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

fn start_node(db: &str, port: u16, hub: &str, key: &str) -> Running {
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

#[test]
fn a_province_node_syncs_with_the_hub_across_a_crash() {
    let hub_db = temp_path("hub.db").display().to_string();
    let node_db = temp_path("node.db").display().to_string();
    let key_file = temp_path("node.key").display().to_string();
    let hub_addr = format!("127.0.0.1:{}", free_port());
    let mut hub = spawn(&["demo", "--db", &hub_db, "--addr", &hub_addr]);
    hub.wait_line(true, "listening on http://", Duration::from_secs(120));
    assert_ok(
        &run(&["seed", "demo", "--db", &node_db]),
        "seed the node's own database",
    );
    let hub_url = format!("http://{hub_addr}");
    let node_port = free_port();
    let mut node = start_node(&node_db, node_port, &hub_url, &key_file);
    let node_addr = format!("127.0.0.1:{node_port}");
    // The node created its key; the Ministry registers its public half.
    let key = xueji_app::dock::key_from_secret_b64(&std::fs::read_to_string(&key_file).unwrap())
        .expect("the node wrote a valid key file");

    block_on(async {
        let h = Api::new(&hub_addr);
        let n = Api::new(&node_addr);
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

        // 广东 files for a 北京 student and approves its two steps at the hub.
        let edu = h.login("edu110108").await;
        let students = h
            .get("/api/v1/students?school=1101080001&per_page=500", &edu)
            .await;
        let st = students
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["grade"] == "13")
            .expect("a grade-13 student")
            .clone();
        let gd = h.login("4401060001-admin").await;
        let classes = h.get("/api/v1/schools/4401060001/classes", &gd).await;
        let class = classes
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["grade"] == "13")
            .unwrap()["id"]
            .clone();
        let t = h
            .post(
                "/api/v1/transfers",
                &gd,
                json!({ "from_province": "110000", "student_name": st["name"], "student_ref": st["student_no"],
                        "to_grade": "13", "to_class_id": class, "reason": "随父母工作调动迁居" }),
            )
            .await;
        let id = t["id"].as_i64().unwrap();
        for who in ["4401060001-reviewer", "edu440106"] {
            let tok = h.login(who).await;
            h.post(
                &format!("/api/v1/transfers/{id}/review"),
                &tok,
                json!({ "decision": "approve", "opinion": "同意" }),
            )
            .await;
        }

        // 北京's school reviewer sees it on the node and decides there.
        let rev = n.login("1101080001-reviewer").await;
        eventually!(
            "the transfer on the node's work list",
            async {
                let todo = n.get("/api/v1/node/todo", &rev).await;
                todo.as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["transfer_id"] == id)
                    .then_some(())
            }
            .await
        );
        n.post(
            &format!("/api/v1/node/transfers/{id}/decisions"),
            &rev,
            json!({ "decision": "approve", "opinion": "同意" }),
        )
        .await;
        eventually!(
            "the school decision at the hub",
            async {
                let t = h.get(&format!("/api/v1/transfers/{id}"), &gd).await;
                (t["status"] == "out_authority_review").then_some(())
            }
            .await
        );
    });

    // The node dies without warning and comes back: it resumes from its stored cursor.
    sigkill(&mut node);
    let mut node = start_node(&node_db, node_port, &hub_url, &key_file);

    block_on(async {
        let h = Api::new(&hub_addr);
        let n = Api::new(&node_addr);
        let gd = h.login("4401060001-admin").await;
        let list = h.get("/api/v1/transfers?per_page=5", &gd).await;
        let id = list[0]["id"].as_i64().unwrap();
        let edu = n.login("edu110108").await;
        eventually!(
            "the authority step on the node",
            async {
                let todo = n.get("/api/v1/node/todo", &edu).await;
                todo.as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["transfer_id"] == id)
                    .then_some(())
            }
            .await
        );
        // Once decided, the same step cannot be queued twice from a stale list.
        n.post(
            &format!("/api/v1/node/transfers/{id}/decisions"),
            &edu,
            json!({ "decision": "approve" }),
        )
        .await;
        let t = eventually!(
            "the approval at the hub",
            async {
                let t = h.get(&format!("/api/v1/transfers/{id}"), &gd).await;
                (t["status"] == "approved").then_some(t)
            }
            .await
        );
        assert!(
            t["steps"][2]["actor_name"]
                .as_str()
                .unwrap()
                .ends_with("（北京市学籍系统）"),
            "{t}"
        );
        assert!(
            t["steps"][3]["actor_name"]
                .as_str()
                .unwrap()
                .ends_with("（北京市学籍系统）"),
            "{t}"
        );
        // Every event reached the node and was acknowledged; the node's cursor is the hub's last.
        let moe = h.login("moe").await;
        let p = eventually!(
            "the feed acknowledged",
            async {
                let list = h.get("/api/v1/dock/provinces", &moe).await;
                let p = list[0].clone();
                (p["backlog"] == 0 && p["last_seq"].as_i64() >= Some(5)).then_some(p)
            }
            .await
        );
        let status = n.get("/api/v1/node/status", &edu).await;
        assert_eq!(status["feed_cursor"], p["last_seq"], "{status}");
        assert_eq!(status["pending"], 0);
        // Each 北京 step decided exactly once at the hub.
        let audit_rows = h.get(&format!("/api/v1/transfers/{id}"), &gd).await;
        assert_eq!(
            audit_rows["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["decision"] == "approve")
                .count(),
            4
        );
    });
    node.sigterm();
    node.wait_exit(Duration::from_secs(30));
    hub.sigterm();
    hub.wait_exit(Duration::from_secs(30));
}
