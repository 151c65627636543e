//! The authorisation matrix (issue 7.3): every operation of the published OpenAPI document ×
//! thirteen principals (each role; inside and outside the jurisdiction; the student's own school
//! and another), on every backend. Each cell is `A` (allowed: the handler ran — a 2xx, or a
//! refusal about the request itself such as 409/422), `F` (403) or `N` (404, the resource is not
//! revealed). The expected table below is the design written down (DESIGN.md §3, the 三员分立 gate);
//! the test prints the table it observed and fails on any cell that differs.
//!
//! Requests are generated: path parameters name fixtures (a student `S` of school A, a transfer
//! `T` from A to school B waiting for B's reviewer, a sanction, a change request, a problem
//! record), request bodies are built from the operation's JSON schema (required fields only, with
//! placeholder values), so a new operation joins the matrix by itself — and fails until its row is
//! written here.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value, json};
use xueji_app::Backend;
use xueji_app::sanctions::NewSanction;
use xueji_app::students::StudentFilter;
use xueji_app::testing::backends;
use xueji_app::transfers::NewTransfer;

use crate::Srv;

/// The principals, in column order: key, account.
const PRINCIPALS: [(&str, &str); 13] = [
    ("a_adm", "4101050001-admin"),    // school A's 学籍管理员 (holds S)
    ("a_rev", "4101050001-reviewer"), // school A's reviewer
    ("a2_adm", "4101050002-admin"),   // another school of A's county
    ("a_cty", "edu410105"),           // A's county authority
    ("a_prv", "edu410000"),           // A's province authority
    ("b_adm", "4401060001-admin"),    // school B (receiving T)
    ("b_rev", "4401060001-reviewer"), // school B's reviewer
    ("b_cty", "edu440106"),           // B's county authority
    ("x_cty", "edu110108"),           // an authority with no part in any of it (北京)
    ("moe", "moe"),                   // national administrator
    ("sys", "sysadmin"),              // 系统管理员
    ("sec", "secadmin"),              // 安全管理员
    ("aud", "auditor"),               // 安全审计员
];

/// The design, one row per operation: a character per principal in the order above.
const EXPECTED: &[(&str, &str)] = &[
    // Accounts and the separated administrators' own routes.
    ("POST /api/v1/accounts", "FFFFFFFFFFAFF"),
    // 账号管理: the system administrator only (acting on an account no principal uses).
    ("GET /api/v1/accounts", "FFFFFFFFFFAFF"),
    ("POST /api/v1/accounts/{username}/disable", "FFFFFFFFFFAFF"),
    ("POST /api/v1/accounts/{username}/enable", "FFFFFFFFFFAFF"),
    (
        "POST /api/v1/accounts/{username}/password-reset",
        "FFFFFFFFFFAFF",
    ),
    ("PUT /api/v1/accounts/{username}/role", "FFFFFFFFFFAFF"),
    ("POST /api/v1/accounts/{username}/unseal", "NNNAANNNNANAF"),
    (
        "POST /api/v1/accounts/{username}/totp-reset",
        "FFFFFFFFFFFAF",
    ),
    (
        "POST /api/v1/accounts/{username}/totp-exempt",
        "FFFFFFFFFFFAF",
    ),
    ("GET /api/v1/audit", "FFFFFFFFFFFFA"),
    ("GET /api/v1/security/settings", "FFFFFFFFFFFAF"),
    // Every signed-in user manages their own sign-in.
    ("POST /api/v1/auth/login", "AAAAAAAAAAAAA"),
    ("GET /api/v1/auth/me", "AAAAAAAAAAAAA"),
    ("POST /api/v1/auth/password", "AAAAAAAAAAAAA"),
    ("POST /api/v1/auth/totp", "FFFAAFFAAAAAA"),
    ("POST /api/v1/auth/totp/confirm", "AAAAAAAAAAAAA"),
    ("POST /api/v1/auth/logout-all", "AAAAAAAAAAAAA"),
    ("POST /api/v1/auth/logout", "AAAAAAAAAAAAA"),
    // Reference data and the calendar: every business user reads; the national admin edits days.
    ("GET /api/v1/regions", "AAAAAAAAAAFFF"),
    ("GET /api/v1/schools", "AAAAAAAAAAFFF"),
    ("GET /api/v1/schools/{code}/classes", "AANAANNNNAFFF"),
    ("GET /api/v1/calendar/add-working-days", "AAAAAAAAAAAAA"),
    ("GET /api/v1/calendar/days", "AAAAAAAAAAFFF"),
    ("PUT /api/v1/calendar/days/{date}", "FFFFFFFFFAFFF"),
    ("DELETE /api/v1/calendar/days/{date}", "FFFFFFFFFAFFF"),
    ("GET /api/v1/notifications", "AAAAAAAAAAFFF"),
    ("POST /api/v1/notifications/read", "AAAAAAAAAAFFF"),
    ("POST /api/v1/public/transfer-progress", "AAAAAAAAAAAAA"),
    // Student records: lists are scoped in SQL (an empty list, not a refusal); a single record is
    // read by its school and the authorities above it, written by its school's administrator.
    ("GET /api/v1/students", "AAAAAAAAAAFFF"),
    ("POST /api/v1/students", "AFAFFAFFFFFFF"),
    ("GET /api/v1/students.xlsx", "AAAAAAAAAAFFF"),
    ("GET /api/v1/students/template.xlsx", "AANAANNNNAFFF"),
    ("POST /api/v1/students/import", "AFNFFNNNNFFFF"),
    ("POST /api/v1/students/import/report.xlsx", "AFNFFNNNNFFFF"),
    ("GET /api/v1/students/{student_no}", "AANAANNNNAFFF"),
    ("PATCH /api/v1/students/{student_no}", "AFNFFNNNNFFFF"),
    ("GET /api/v1/students/{student_no}/archive", "AANAANNNNAFFF"),
    (
        "POST /api/v1/students/{student_no}/changes",
        "AFNFFNNNNFFFF",
    ),
    (
        "GET /api/v1/students/{student_no}/sanctions",
        "AANAANNNNAFFF",
    ),
    (
        "POST /api/v1/students/{student_no}/sanctions",
        "AFNFFNNNNFFFF",
    ),
    ("POST /api/v1/sanctions/{id}/revoke", "AFNFFNNNNFFFF"),
    ("GET /api/v1/identity-checks", "FFFFAFFFFAFFF"),
    ("POST /api/v1/identity-checks/run", "FFFFAFFFFAFFF"),
    // Change requests (学籍异动): filed by A, confirmed by A's reviewer, approved by A's county.
    ("GET /api/v1/changes", "AAAAAAAAAAFFF"),
    ("GET /api/v1/changes/{id}", "AANAANNNNAFFF"),
    (
        "GET /api/v1/changes/{id}/evidence/{evidence_id}",
        "AANAANNNNAFFF",
    ),
    ("POST /api/v1/changes/{id}/review", "FANFFNNNNFFFF"),
    ("POST /api/v1/changes/{id}/withdraw", "AFNFFNNNNFFFF"),
    // Problem records: acted on by the school's administrator, decided by its authority.
    ("GET /api/v1/problems", "AAAAAAAAAAFFF"),
    ("GET /api/v1/problems/{id}", "AANAANNNNAFFF"),
    ("POST /api/v1/problems/{id}/actions", "AFNFFNNNNFFFF"),
    ("POST /api/v1/problems/{id}/decision", "FFNAANNNNFFFF"),
    // Transfers: T is read by both schools, the authorities over either and the national admin;
    // each action by its party only.
    ("GET /api/v1/transfers", "AAAAAAAAAAFFF"),
    ("POST /api/v1/transfers", "AFAFFAFFFFFFF"),
    ("GET /api/v1/transfers.xlsx", "AAAAAAAAAAFFF"),
    ("GET /api/v1/transfers/{id}", "AANAAAAANAFFF"),
    (
        "GET /api/v1/transfers/{id}/evidence/{evidence_id}",
        "AANAAAAANAFFF",
    ),
    ("POST /api/v1/transfers/{id}/review", "FFNFFFAFNFFFF"),
    ("POST /api/v1/transfers/{id}/withdraw", "FFNFFAAFNFFFF"),
    ("POST /api/v1/transfers/{id}/pull-file", "FFNFFAAFNFFFF"),
    ("POST /api/v1/transfers/{id}/paper-file", "AANFFFFFNFFFF"),
    ("POST /api/v1/transfers/{id}/close", "FFNFAFFFNAFFF"),
    // Provincial policy: everyone reads; the province's own authority writes.
    ("GET /api/v1/policies/{province}", "AAAAAAAAAAFFF"),
    ("PUT /api/v1/policies/{province}", "FFFFAFFFFAFFF"),
    ("GET /api/v1/policies/{province}/versions", "AAAAAAAAAAFFF"),
    // Oversight and statistics: authorities and the national admin.
    ("GET /api/v1/oversight/dashboard", "FFFAAFFAAAFFF"),
    ("GET /api/v1/oversight/stale", "FFFAAFFAAAFFF"),
    ("POST /api/v1/oversight/run-deadlines", "FFFFFFFFFAFFF"),
    ("GET /api/v1/statistics", "FFFAAFFAAAFFF"),
    ("GET /api/v1/statistics.xlsx", "FFFAAFFAAAFFF"),
    // 升级/毕业: authorities over their schools and the national admin.
    // Docking administration: the national administrator only.
    ("GET /api/v1/dock/provinces", "FFFFFFFFFAFFF"),
    ("PUT /api/v1/dock/provinces/{code}", "FFFFFFFFFAFFF"),
    ("GET /api/v1/dock/messages", "FFFFFFFFFAFFF"),
    // The provincial node's own routes: on the hub there is no node (404), except the work
    // list, which is simply empty; its state and log are for authorities.
    ("GET /api/v1/node/status", "FFFNNFFNNNFFF"),
    ("GET /api/v1/node/todo", "AAAAAAAAAAFFF"),
    ("GET /api/v1/node/transfers", "FFFAAFFAAAFFF"),
    ("POST /api/v1/node/transfers", "NNNNNNNNNNFFF"),
    ("GET /api/v1/node/messages", "FFFAAFFAAAFFF"),
    (
        "POST /api/v1/node/transfers/{id}/decisions",
        "NNNNNNNNNNFFF",
    ),
    ("GET /api/v1/promotions/blockers", "AAAAAAAAAAFFF"),
    ("POST /api/v1/promotions", "FFFAAFFAAAFFF"),
];

/// Operations that change the fixture they act on get their own copy, and the principals the
/// design allows act last (after them the state has moved).
const OWN_FIXTURE: &[&str] = &[
    "POST /api/v1/transfers/{id}/review",
    "POST /api/v1/transfers/{id}/withdraw",
    "POST /api/v1/transfers/{id}/pull-file",
    "POST /api/v1/transfers/{id}/paper-file",
    "POST /api/v1/transfers/{id}/close",
    "POST /api/v1/changes/{id}/review",
    "POST /api/v1/changes/{id}/withdraw",
    "POST /api/v1/sanctions/{id}/revoke",
    "POST /api/v1/problems/{id}/actions",
    "POST /api/v1/problems/{id}/decision",
];

/// Run after everything else: they end sessions or move every student up a grade.
const LAST: &[&str] = &[
    "POST /api/v1/promotions",
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/logout-all",
];

struct Fixtures {
    student: String,
    /// 查询码 and name of T's student, for the parents' query.
    query_code: String,
    t_name: String,
    transfer: i64,
    transfer_evidence: i64,
    change: i64,
    change_evidence: i64,
    sanction: i64,
    problem: i64,
}

/// Students of school A free of any open business, one per fixture.
async fn free_students(s: &Srv) -> Vec<(String, String, String)> {
    let a = crate::user_of(&s.app, "4101050001-admin").await;
    let f = StudentFilter {
        school: Some("4101050001".into()),
        ..Default::default()
    };
    let page = xueji_app::paging::Page {
        page: 1,
        per_page: 500,
    };
    s.app
        .students(&a, &f, page)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|x| x.open_business.is_none())
        .map(|x| (x.student_no, x.name, x.grade.unwrap_or_default()))
        .collect()
}

/// A one-page PDF as evidence (the type is sniffed from the leading bytes).
fn pdf() -> xueji_app::transfers::Evidence {
    xueji_app::transfers::Evidence {
        filename: "证明.pdf".into(),
        bytes: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n".to_vec(),
    }
}

async fn fixtures(s: &Srv, pool: &mut Vec<(String, String, String)>) -> Fixtures {
    let app = &s.app;
    let a_adm = crate::user_of(app, "4101050001-admin").await;
    let b_adm = crate::user_of(app, "4401060001-admin").await;
    let (student, _, _) = pool.pop().expect("a free student");
    // T: a student of A moving to B, waiting for B's reviewer.
    let (t_no, t_name, t_grade) = pool.pop().expect("a free student");
    let class = app
        .classes(&b_adm, "4401060001")
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.grade == t_grade)
        .unwrap()
        .id;
    let t = app
        .file_transfer(
            &b_adm,
            &NewTransfer {
                from_province: "410000".into(),
                student_name: t_name.clone(),
                student_ref: t_no,
                to_grade: t_grade,
                to_class_id: class,
                reason: "随迁".into(),
            },
            vec![pdf()],
        )
        .await
        .unwrap();
    // C: a 休学 request of another student of A, waiting for A's reviewer.
    let (c_no, _, _) = pool.pop().expect("a free student");
    let c: Value = serde_json::to_value(
        app.file_change(
            &a_adm,
            &c_no,
            &serde_json::from_value(json!({
                "kind": "suspension", "reason": "因病休学",
                "from_date": "2026-11-02", "until_date": "2027-06-30"
            }))
            .unwrap(),
            vec![pdf()],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let sanction = app
        .record_sanction(
            &a_adm,
            &student,
            &NewSanction {
                kind: "warning".into(),
                reason: "旷课".into(),
                decided_on: chrono::NaiveDate::from_ymd_opt(2026, 10, 8).unwrap(),
                ends_on: None,
            },
        )
        .await
        .unwrap()
        .id;
    // A problem record (疑似重复) on S, as the identity check would leave one.
    let problem: i64 = xueji_app::on_pool!(app.db.write(), p => sqlx::query_scalar(
        "INSERT INTO problem_records (student_id, kind, status, detail, created_at) \
         SELECT student_id, 'suspected_duplicate', 'open', '矩阵测试', CURRENT_TIMESTAMP \
         FROM student_numbers WHERE student_no = $1 RETURNING id"
    ).bind(&student).fetch_one(p).await)
    .unwrap();
    Fixtures {
        student,
        query_code: t
            .query_code
            .clone()
            .expect("the receiving school sees the code"),
        t_name,
        transfer: t.id,
        transfer_evidence: t.evidence[0].id,
        change: c["id"].as_i64().unwrap(),
        change_evidence: c["evidence"][0]["id"]
            .as_i64()
            .expect("the change's evidence"),
        sanction,
        problem,
    }
}

/// Bodies the generator cannot guess: words checked by the handler (decisions, actions, kinds).
/// With a placeholder, every caller would get the same 422 before the handler looked at who asks.
fn body_for(key: &str, f: &Fixtures) -> Option<Value> {
    Some(match key {
        "POST /api/v1/transfers/{id}/review"
        | "POST /api/v1/changes/{id}/review"
        | "POST /api/v1/problems/{id}/decision" => {
            json!({ "decision": "approve", "opinion": "同意" })
        }
        "POST /api/v1/transfers/{id}/paper-file" => json!({ "action": "sent", "method": "EMS" }),
        "PUT /api/v1/calendar/days/{date}" => json!({ "kind": "holiday", "name": "矩阵测试" }),
        "POST /api/v1/problems/{id}/actions" => {
            json!({ "action": "confirm", "reason": "户口簿佐证" })
        }
        "POST /api/v1/public/transfer-progress" => {
            json!({ "code": f.query_code, "student_name": f.t_name })
        }
        _ => return None,
    })
}

/// A placeholder value of a JSON schema (required fields only), `$ref`s resolved.
fn sample(doc: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        return sample(doc, &doc["components"]["schemas"][name], depth + 1);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|s| s.get("type") != Some(&json!("null"))))
        {
            return sample(doc, first, depth + 1);
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        return e.first().cloned().unwrap_or(Value::Null);
    }
    let ty = match &schema["type"] {
        Value::Array(a) => a
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        t => t.clone(),
    };
    match ty.as_str().unwrap_or("object") {
        "string" => match schema["format"].as_str() {
            Some("date") => json!("2026-11-02"),
            Some("date-time") => json!("2026-11-02T01:00:00Z"),
            _ => json!("x"),
        },
        "integer" | "number" => json!(1),
        "boolean" => json!(false),
        "array" => json!([]),
        _ => {
            let mut m = Map::new();
            if let Some(req) = schema["required"].as_array() {
                for k in req.iter().filter_map(Value::as_str) {
                    m.insert(
                        k.to_string(),
                        sample(doc, &schema["properties"][k], depth + 1),
                    );
                }
            }
            Value::Object(m)
        }
    }
}

fn concrete(path: &str, f: &Fixtures) -> String {
    let id = if path.starts_with("/api/v1/transfers/") {
        f.transfer
    } else if path.starts_with("/api/v1/changes/") {
        f.change
    } else if path.starts_with("/api/v1/sanctions/") {
        f.sanction
    } else {
        f.problem
    };
    let code = if path.starts_with("/api/v1/dock/") {
        "110000"
    } else {
        "4101050001"
    };
    let p = path
        .replace("{student_no}", &f.student)
        .replace("{id}", &id.to_string())
        .replace(
            "{evidence_id}",
            &if path.starts_with("/api/v1/changes/") {
                f.change_evidence
            } else {
                f.transfer_evidence
            }
            .to_string(),
        )
        .replace("{code}", code)
        .replace("{province}", "410000")
        .replace("{date}", "2026-12-07")
        .replace(
            "{username}",
            // Unsealing and TOTP resets act on school A's administrator; the system
            // administrator's actions (which end sessions) on an account no principal uses.
            if path.ends_with("/unseal") || path.ends_with("/totp-reset") {
                "4101050001-admin"
            } else {
                "4101050002-reviewer"
            },
        );
    let query = match path {
        "/api/v1/students/template.xlsx" => "?school=4101050001",
        "/api/v1/calendar/add-working-days" => "?from=2026-11-02&days=3",
        "/api/v1/students/import" | "/api/v1/students/import/report.xlsx" => "?school=4101050001",
        _ => "",
    };
    format!("{p}{query}")
}

fn class_of(status: u16) -> char {
    match status {
        403 => 'F',
        404 => 'N',
        401 => 'U',
        _ => 'A',
    }
}

async fn run(backend: Backend) -> BTreeMap<String, String> {
    let s = Srv::start(backend).await;
    let doc: Value = serde_json::from_str(&xueji_web::openapi_json()).unwrap();
    let mut ops: Vec<(String, String, String)> = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        // The docking interface authenticates provincial systems by signature, not people by
        // role: its own tests cover it.
        if path.starts_with("/api/dock/") {
            continue;
        }
        for m in ["get", "post", "put", "patch", "delete"] {
            if item.get(m).is_some() {
                ops.push((
                    m.to_uppercase(),
                    path.clone(),
                    format!("{} {path}", m.to_uppercase()),
                ));
            }
        }
    }
    ops.sort_by_key(|(_, _, key)| LAST.iter().position(|l| l == key).unwrap_or(0));
    let expected: BTreeMap<&str, &str> = EXPECTED.iter().copied().collect();
    let mut pool = free_students(&s).await;
    let shared = fixtures(&s, &mut pool).await;
    let mut tokens = BTreeMap::new();
    for (k, u) in PRINCIPALS {
        tokens.insert(k, s.login(u).await);
    }
    // A real file for the import routes: school A's own template (no rows, so nothing is written).
    let template = s
        .get(
            "/api/v1/students/template.xlsx?school=4101050001",
            &tokens["a_adm"],
        )
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mut observed = BTreeMap::new();
    for (method, path, key) in ops {
        let want = expected.get(key.as_str()).unwrap_or_else(|| {
            panic!("no row in the matrix for {key}: write down who may call it")
        });
        let own;
        let f = if OWN_FIXTURE.contains(&key.as_str()) {
            own = fixtures(&s, &mut pool).await;
            &own
        } else {
            &shared
        };
        if key == "POST /api/v1/auth/logout-all" {
            // `logout` just ended each principal's token: sign in again.
            for (k, u) in PRINCIPALS {
                tokens.insert(k, s.login(u).await);
            }
        }
        let url = concrete(&path, f);
        let op = &doc["paths"][&path][method.to_lowercase()];
        let body = op["requestBody"]["content"]["application/json"]["schema"].clone();
        let body = body_for(&key, f).or_else(|| (!body.is_null()).then(|| sample(&doc, &body, 0)));
        let xlsx = op["requestBody"]["content"]
            .as_object()
            .is_some_and(|c| c.keys().any(|k| k.contains("spreadsheetml")));
        // Those the design allows act last: after them the fixture's state may have moved.
        let mut order: Vec<usize> = (0..PRINCIPALS.len()).collect();
        order.sort_by_key(|i| want.as_bytes()[*i] == b'A');
        let mut row = vec![' '; PRINCIPALS.len()];
        for i in order {
            let (k, _) = PRINCIPALS[i];
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let mut rb = s.req(m, &url, Some(&tokens[k]));
            if key == "POST /api/v1/auth/login" {
                rb = s.req(Method::POST, &url, None).json(&json!({
                    "username": PRINCIPALS[i].1, "password": crate::PASSWORD
                }));
            } else if let Some(b) = &body {
                rb = rb.json(b);
            } else if xlsx {
                rb = rb
                    .header(
                        "content-type",
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    )
                    .body(template.clone());
            }
            let res = rb.send().await.unwrap();
            let status = res.status().as_u16();
            if std::env::var("XUEJI_MATRIX_DEBUG").is_ok_and(|v| key.contains(&v)) {
                let text = res.text().await.unwrap_or_default();
                eprintln!("{key} as {k}: {status} {}", &text[..text.len().min(160)]);
            }
            assert!(status < 500, "{key} as {k}: {status}");
            row[i] = class_of(status);
        }
        observed.insert(key, row.into_iter().collect::<String>());
    }
    s.stop().await;
    observed
}

#[tokio::test]
async fn every_route_by_every_principal_is_what_the_design_says() {
    for backend in backends() {
        let observed = run(backend).await;
        let expected: BTreeMap<&str, &str> = EXPECTED.iter().copied().collect();
        let mut table = format!(
            "\nauthorisation matrix ({backend:?}): A allowed, F 403, N 404; columns: {}\n",
            PRINCIPALS
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut wrong = vec![];
        for (op, got) in &observed {
            let want = expected[op.as_str()];
            let mark = if *got == want { "" } else { "   <- expected " };
            table.push_str(&format!(
                "{got}  {op}{mark}{}\n",
                if mark.is_empty() { "" } else { want }
            ));
            if *got != want {
                wrong.push(op.clone());
            }
        }
        let cells = observed.len() * PRINCIPALS.len();
        table.push_str(&format!(
            "{cells} cells checked, {} operations differ\n",
            wrong.len()
        ));
        println!("{table}");
        assert!(wrong.is_empty(), "{table}");
        assert_eq!(
            observed.len(),
            EXPECTED.len(),
            "every row of the matrix names a published operation"
        );
    }
}

/// The pages a signed-in user reads (GET), by the same principals; `R` is a redirect (the
/// separated administrators' landing page; a school's user sent from 学校列表 to its own school).
/// The printable 转学联系函 is for the parties named in it, not for every authority that may read
/// the case. Forms post to the
/// same use cases as the API, whose matrix is above; these rows show the pages refuse the same way.
const PAGES: &[(&str, &str)] = &[
    ("/", "AAAAAAAAAARRR"),
    ("/students", "AAAAAAAAAAFFF"),
    ("/students/{student_no}", "AANAANNNNAFFF"),
    ("/students/{student_no}/card", "AANAANNNNAFFF"),
    ("/students/{student_no}/sanctions", "AANAANNNNAFFF"),
    ("/students/register", "AFAFFAFFFFFFF"),
    ("/students/import", "AFAFFAFFFFFFF"),
    ("/schools", "RRRAARRAAAFFF"),
    ("/schools/{code}", "AANAANNNNAFFF"),
    ("/transfers", "AAAAAAAAAAFFF"),
    ("/transfers/{id}", "AANAAAAANAFFF"),
    ("/transfers/{id}/notice", "AANAFAAANFFFF"),
    ("/changes", "AAAAAAAAAAFFF"),
    ("/changes/{id}", "AANAANNNNAFFF"),
    ("/problems", "AAAAAAAAAAFFF"),
    ("/problems/{id}", "AANAANNNNAFFF"),
    ("/promotion", "FFFAAFFAAAFFF"),
    ("/messages", "AAAAAAAAAAFFF"),
    ("/calendar", "AAAAAAAAAAFFF"),
    ("/policy", "AAAAAAAAAAFFF"),
    ("/oversight", "FFFAAFFAAAFFF"),
    ("/oversight/stale", "FFFAAFFAAAFFF"),
    ("/statistics", "FFFAAFFAAAFFF"),
    ("/dock", "FFFFFFFFFAFFF"),
    ("/node", "AAAAAAAAAAFFF"),
    ("/account", "AAAAAAAAAAAAA"),
    ("/account/totp", "AAAAAAAAAAAAA"),
    ("/accounts", "FFFFFFFFFFAFF"),
    ("/audit", "FFFFFFFFFFFFA"),
];

#[tokio::test]
async fn every_page_by_every_principal_is_what_the_design_says() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let mut pool = free_students(&s).await;
        let f = fixtures(&s, &mut pool).await;
        let mut clients = vec![];
        for (_, u) in PRINCIPALS {
            clients.push(s.web_login(u).await);
        }
        let mut table = format!(
            "\npage matrix ({backend:?}): A 200, F 403, N 404, R redirect; columns: {}\n",
            PRINCIPALS
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut wrong = 0;
        for (path, want) in PAGES {
            let url = path
                .replace("{student_no}", &f.student)
                .replace("{code}", "4101050001")
                .replace(
                    "{id}",
                    &if path.starts_with("/changes") {
                        f.change
                    } else if path.starts_with("/problems") {
                        f.problem
                    } else {
                        f.transfer
                    }
                    .to_string(),
                );
            let mut got = String::new();
            for c in &clients {
                let st = c
                    .get(format!("{}{url}", s.base))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                assert!(st < 500, "{path}: {st}");
                got.push(match st {
                    300..=399 => 'R',
                    s => class_of(s),
                });
            }
            let mark = if got == *want {
                String::new()
            } else {
                wrong += 1;
                format!("   <- expected {want}")
            };
            table.push_str(&format!("{got}  GET {path}{mark}\n"));
        }
        table.push_str(&format!(
            "{} cells checked, {wrong} pages differ\n",
            PAGES.len() * PRINCIPALS.len()
        ));
        println!("{table}");
        assert_eq!(wrong, 0, "{table}");
        s.stop().await;
    }
}
