//! Operations (issue 7.6 and 7.8): a backup restores into a copy that serves the same data, and
//! a full run of a server at the most verbose log level never writes an identity number.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Target, address_in, assert_ok, block_on, spawn, targets, temp_path, text};

async fn api(
    c: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = c.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.expect("request");
    let status = res.status().as_u16();
    let v = res.json().await.unwrap_or(Value::Null);
    (status, v)
}

async fn login(c: &reqwest::Client, base: &str, user: &str) -> String {
    let (s, v) = api(
        c,
        base,
        reqwest::Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({ "username": user, "password": "Demo@2026" })),
    )
    .await;
    assert_eq!(s, 200, "login {user}: {v}");
    v["token"].as_str().unwrap().to_string()
}

/// What a user reads of a school: its students with their numbers and classes.
async fn snapshot(base: &str) -> Value {
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let t = login(&c, base, "4101050001-admin").await;
    let (s, students) = api(
        &c,
        base,
        reqwest::Method::GET,
        "/api/v1/students?school=4101050001&per_page=500",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let first = students[0]["student_no"].as_str().unwrap().to_string();
    let (_, detail) = api(
        &c,
        base,
        reqwest::Method::GET,
        &format!("/api/v1/students/{first}"),
        Some(&t),
        None,
    )
    .await;
    json!({ "students": students, "detail": detail })
}

fn serve(t: &Target) -> (super::Running, String) {
    let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
    args.extend(t.args());
    let mut s = spawn(&args);
    let (line, _) = s.wait_line(true, "listening on http://", Duration::from_secs(60));
    let base = format!("http://{}", address_in(&line));
    (s, base)
}

/// `xueji backup` (SQLite) or `pg_dump` (PostgreSQL, as the README documents) and back: the
/// restored copy answers the same as the original and its audit chain verifies.
#[test]
fn a_restored_backup_serves_the_same_data() {
    for t in targets() {
        assert_ok(&t.run(&["seed", "demo"]), &format!("{}: seed", t.label));
        let (mut server, base) = serve(&t);
        let before = block_on(snapshot(&base));
        server.sigterm();
        server.wait_exit(Duration::from_secs(10));
        let restored = if t.label == "sqlite" {
            let dest = temp_path("backup.db");
            let out = t.run(&["backup", &dest.display().to_string()]);
            assert_ok(&out, "backup");
            assert!(text(&out.stdout).contains("backup written"));
            // The key beside the database goes with the copy (TOTP secrets open only with it).
            let source = format!("{}.key", t.args[1]);
            let copied = format!("{}.key", dest.display());
            assert!(
                text(&out.stdout).contains("secret key copied"),
                "{}",
                text(&out.stdout)
            );
            assert_eq!(
                std::fs::read_to_string(&source).expect("the served database made its key"),
                std::fs::read_to_string(&copied).expect("the key copied beside the backup"),
            );
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&copied).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "the copied key is the owner's only");
            }
            // A second backup onto the same file is refused, never overwritten.
            let again = t.run(&["backup", &dest.display().to_string()]);
            assert!(!again.status.success(), "backup over an existing file");
            Target {
                label: "sqlite-restored",
                args: vec!["--db".into(), dest.display().to_string()],
                pg_name: None,
                pg_guard: None,
            }
        } else {
            let dump = temp_path("backup.dump");
            let out = std::process::Command::new("pg_dump")
                .args(["--format=custom", "--file"])
                .arg(&dump)
                .arg(t.url())
                .output()
                .expect("pg_dump");
            assert!(out.status.success(), "pg_dump: {}", text(&out.stderr));
            let copy = super::pg_target().expect("PostgreSQL is configured");
            let out = std::process::Command::new("pg_restore")
                .args(["--no-owner", "--dbname"])
                .arg(copy.url())
                .arg(&dump)
                .output()
                .expect("pg_restore");
            assert!(out.status.success(), "pg_restore: {}", text(&out.stderr));
            copy
        };
        assert_ok(
            &restored.run(&["audit", "verify"]),
            &format!("{}: audit verify", restored.label),
        );
        let (mut server, base) = serve(&restored);
        let after = block_on(snapshot(&base));
        server.sigterm();
        server.wait_exit(Duration::from_secs(10));
        assert_eq!(before, after, "{}: the copy answers the same", t.label);
        assert!(before["students"].as_array().unwrap().len() >= 20);
    }
}

/// Identity numbers never reach the log: a server at `trace` level goes through logins (one with
/// an identity number typed as the username), lookups by number, a registration, a refused
/// registration, a transfer filed by identity number and a bad request; then no line of its
/// output holds any identity number of the database.
#[test]
fn no_identity_number_in_any_log_line() {
    for t in targets() {
        assert_ok(&t.run(&["seed", "demo"]), &format!("{}: seed", t.label));
        let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
        args.extend(t.args());
        let mut s = super::spawn_with_env(&args, &[("XUEJI_LOG", "trace")]);
        let (line, _) = s.wait_line(true, "listening on http://", Duration::from_secs(60));
        let base = format!("http://{}", address_in(&line));
        let ids: Vec<String> = block_on(async {
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            let moe = login(&c, &base, "moe").await;
            let admin = login(&c, &base, "4101050001-admin").await;
            let to_admin = login(&c, &base, "4401060001-admin").await;
            let (_, list) = api(
                &c,
                &base,
                reqwest::Method::GET,
                "/api/v1/students?school=4101050001&per_page=500",
                Some(&admin),
                None,
            )
            .await;
            let first = &list[0];
            let no = first["student_no"].as_str().unwrap().to_string();
            let (_, detail) = api(
                &c,
                &base,
                reqwest::Method::GET,
                &format!("/api/v1/students/{no}"),
                Some(&admin),
                None,
            )
            .await;
            let id = detail["id_number"]
                .as_str()
                .expect("the own school sees it")
                .to_string();
            // A user typing an identity number as the username.
            let (st, _) = api(
                &c,
                &base,
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": id, "password": "wrong" })),
            )
            .await;
            assert_eq!(st, 401);
            // Lookups by number, found and not found, in the path and the query.
            for p in [
                format!("/api/v1/students/G{id}"),
                "/api/v1/students/G110101201001011236".to_string(),
                format!("/api/v1/students?q={id}"),
            ] {
                api(&c, &base, reqwest::Method::GET, &p, Some(&moe), None).await;
            }
            // A registration, and one refused as a duplicate of an existing identity number.
            let (_, classes) = api(
                &c,
                &base,
                reqwest::Method::GET,
                "/api/v1/schools/4101050001/classes",
                Some(&admin),
                None,
            )
            .await;
            let class = classes
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["grade"] == "11")
                .unwrap()["id"]
                .as_i64()
                .unwrap();
            let new_id = "410105201910010019";
            for (doc, name) in [(new_id, "王小明"), (id.as_str(), "李重复")] {
                api(
                    &c,
                    &base,
                    reqwest::Method::POST,
                    "/api/v1/students",
                    Some(&admin),
                    Some(json!({
                        "name": name, "gender": "1", "birth_date": "2019-10-01", "ethnicity": "01",
                        "id_type": "1", "id_number": doc, "grade": "11", "class_id": class
                    })),
                )
                .await;
            }
            // A transfer filed by identity number, and one with a wrong name.
            let (_, to_classes) = api(
                &c,
                &base,
                reqwest::Method::GET,
                "/api/v1/schools/4401060001/classes",
                Some(&to_admin),
                None,
            )
            .await;
            let grade = first["grade"].as_str().unwrap();
            let to_class = to_classes
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["grade"] == grade)
                .unwrap()["id"]
                .as_i64()
                .unwrap();
            for name in ["错的名字", first["name"].as_str().unwrap()] {
                api(
                    &c,
                    &base,
                    reqwest::Method::POST,
                    "/api/v1/transfers",
                    Some(&to_admin),
                    Some(json!({
                        "from_province": "410000", "student_name": name, "student_ref": id,
                        "to_grade": grade, "to_class_id": to_class, "reason": "随迁"
                    })),
                )
                .await;
            }
            // A malformed body carrying an identity number.
            let _ = c
                .post(format!("{base}/api/v1/transfers"))
                .bearer_auth(&to_admin)
                .header("content-type", "application/json")
                .body(format!("{{\"student_ref\": \"{id}\", "))
                .send()
                .await;
            let (_, all) = api(
                &c,
                &base,
                reqwest::Method::GET,
                "/api/v1/students?region=410000&per_page=500",
                Some(&moe),
                None,
            )
            .await;
            let mut ids = vec![id.clone(), new_id.to_string()];
            // The masked list is what the national view has; the full numbers come from the detail.
            for st in all.as_array().unwrap().iter().take(40) {
                let no = st["student_no"].as_str().unwrap();
                if let Some(rest) = no.strip_prefix('G') {
                    ids.push(rest.to_string());
                }
            }
            ids
        });
        s.sigterm();
        s.wait_exit(Duration::from_secs(10));
        let mut log: Vec<String> = s.drain_stderr();
        log.extend(s.stdout.try_iter());
        assert!(
            log.len() > 20,
            "{}: the trace log was written ({} lines)",
            t.label,
            log.len()
        );
        for l in &log {
            for id in &ids {
                assert!(
                    !l.contains(id.as_str()),
                    "{}: an identity number in the log: {l}",
                    t.label
                );
            }
        }
    }
}
