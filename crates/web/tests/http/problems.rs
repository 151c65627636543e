//! 问题学籍处理, 升级/毕业, the electronic archive and the records pages over HTTP, on every
//! backend.

use chrono::NaiveDate;
use serde_json::{Value, json};
use xueji_app::identity::SimulatedIdentityService;
use xueji_app::testing::backends;
use xueji_domain::ids::IdNumber;

use crate::{Srv, expect_problem, hidden_csrf, ok, post, total};

const SCHOOL: &str = "4101050001";

async fn grade13_class(s: &Srv, tok: &str) -> i64 {
    let list: Value = s
        .get(&format!("/api/v1/schools/{SCHOOL}/classes"), tok)
        .await
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["grade"] == "13")
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Registers a student over the API and lets the simulated identity check fail them.
async fn failed_student(s: &Srv, tok: &str, id: &IdNumber, name: &str) -> String {
    let class = grade13_class(s, tok).await;
    let r = ok(
        post(
            s,
            tok,
            "/api/v1/students",
            json!({ "name": name, "gender": "male", "birth_date": id.birth_date().to_string(),
                    "ethnicity": "01", "id_type": "1", "id_number": id.as_str(), "grade": "13",
                    "class_id": class }),
        )
        .await,
        201,
    )
    .await;
    let sim = SimulatedIdentityService::from_csv(&format!(
        "id_number,result\n{},not_found\n",
        id.as_str()
    ))
    .unwrap();
    s.app.run_identity_checks(&sim, 1000).await.unwrap();
    r["student_no"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn problem_records_promotion_and_the_archive_over_the_api() {
    for b in backends() {
        let s = Srv::start(b).await;
        let school = s.login(&format!("{SCHOOL}-admin")).await;
        let county = s.login("edu410105").await;
        let other = s.login("4101020001-admin").await;
        let id = IdNumber::from_parts("410105", NaiveDate::from_ymd_opt(2018, 9, 9).unwrap(), 715);
        let no = failed_student(&s, &school, &id, "司马青").await;

        let res = s
            .get(
                &format!("/api/v1/problems?kind=id_not_found&q={no}"),
                &school,
            )
            .await;
        assert_eq!(total(&res), 1);
        let list: Value = res.json().await.unwrap();
        let pid = list[0]["id"].as_i64().unwrap();
        assert_eq!(list[0]["status"], "open");
        assert_eq!(list[0]["student_no"], no.as_str());
        assert!(
            list[0]["id_number_masked"]
                .as_str()
                .unwrap()
                .contains("****")
        );
        expect_problem(
            s.get("/api/v1/problems?kind=x", &school).await,
            422,
            "validation_failed",
        )
        .await;
        // Outsiders get not_found.
        expect_problem(
            s.get(&format!("/api/v1/problems/{pid}"), &other).await,
            404,
            "not_found",
        )
        .await;

        let path = format!("/api/v1/problems/{pid}/actions");
        expect_problem(
            post(
                &s,
                &school,
                &path,
                json!({ "action": "confirm", "reason": "" }),
            )
            .await,
            422,
            "reason_required",
        )
        .await;
        let d = ok(
            post(
                &s,
                &school,
                &path,
                json!({ "action": "confirm", "reason": "户口簿为证" }),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(d["status"], "pending");
        assert_eq!(d["actions"][0]["action"], "confirm");
        // The authority's work list; the school cannot decide.
        let res = s.get("/api/v1/problems?todo=true", &county).await;
        let todo: Value = res.json().await.unwrap();
        assert!(todo.as_array().unwrap().iter().any(|p| p["id"] == pid));
        let decide = format!("/api/v1/problems/{pid}/decision");
        expect_problem(
            post(&s, &school, &decide, json!({ "decision": "approve" })).await,
            403,
            "forbidden",
        )
        .await;
        expect_problem(
            post(&s, &county, &decide, json!({ "decision": "refuse" })).await,
            422,
            "reason_required",
        )
        .await;
        // While the action waits the student is locked: promotion is refused, naming them.
        let blockers = ok(
            s.get("/api/v1/promotions/blockers?year=2026", &county)
                .await,
            200,
        )
        .await;
        assert_eq!(blockers[0]["student_no"], no.as_str());
        assert_eq!(blockers[0]["business"], "problem_record");
        let refusal = expect_problem(
            post(&s, &county, "/api/v1/promotions", json!({ "year": 2026 })).await,
            409,
            "transfer_in_progress",
        )
        .await;
        assert!(refusal["detail"].as_str().unwrap().contains(&no));
        let d = ok(
            post(
                &s,
                &county,
                &decide,
                json!({ "decision": "approve", "opinion": "材料属实" }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(d["status"], "resolved");
        assert_eq!(d["resolution"], "confirmed");
        let formal = format!("G{}", id.as_str());
        assert_eq!(d["student_no"], formal.as_str());

        // Promotion: authorities only; once per year.
        expect_problem(
            post(&s, &school, "/api/v1/promotions", json!({ "year": 2026 })).await,
            403,
            "forbidden",
        )
        .await;
        let r = ok(
            post(&s, &county, "/api/v1/promotions", json!({ "year": 2026 })).await,
            200,
        )
        .await;
        assert_eq!(r["schools_done"], 3);
        assert!(r["promoted"].as_u64().unwrap() > 0 && r["graduated"].as_u64().unwrap() > 0);
        let again = ok(
            post(&s, &county, "/api/v1/promotions", json!({ "year": 2026 })).await,
            200,
        )
        .await;
        assert_eq!(
            (
                again["schools_skipped"].as_u64(),
                again["promoted"].as_u64()
            ),
            (Some(3), Some(0))
        );

        // The archive: numbers L → G, the identity checks, the problem record with its action,
        // the promoted enrollment.
        let a = ok(
            s.get(&format!("/api/v1/students/{formal}/archive"), &school)
                .await,
            200,
        )
        .await;
        assert_eq!(a["student_no"], formal.as_str());
        assert_eq!(
            a["id_number"],
            id.as_str(),
            "the own school sees the number"
        );
        assert_eq!(a["numbers"].as_array().unwrap().len(), 2);
        let results: Vec<&str> = a["identity_checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["result"].as_str().unwrap())
            .collect();
        assert_eq!(results, ["not_found", "confirmed_by_evidence"]);
        assert_eq!(a["problems"][0]["actions"][0]["status"], "approved");
        assert_eq!(a["enrollments"][0]["grade"], "14");
        assert_eq!(a["enrollments"][1]["status"], "promoted");
        let a = ok(
            s.get(&format!("/api/v1/students/{formal}/archive"), &county)
                .await,
            200,
        )
        .await;
        assert_eq!(a["id_number"], Value::Null, "authorities see it masked");
        expect_problem(
            s.get(&format!("/api/v1/students/{formal}/archive"), &other)
                .await,
            404,
            "not_found",
        )
        .await;
        s.stop().await;
    }
}

/// The registration form keeps what was typed and says what is wrong beside the field.
#[tokio::test]
async fn the_registration_form_keeps_the_input_and_the_archive_page_shows_the_history() {
    for b in backends() {
        let s = Srv::start(b).await;
        let c = s.web_login(&format!("{SCHOOL}-admin")).await;
        let page = c
            .get(format!("{}/students/register", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        let csrf = hidden_csrf(&html);
        assert!(html.contains("学籍注册") && html.contains("name=\"id_number\""));
        let tok = s.login(&format!("{SCHOOL}-admin")).await;
        let class = grade13_class(&s, &tok).await.to_string();
        let id = IdNumber::from_parts(
            "410105",
            NaiveDate::from_ymd_opt(2018, 10, 11).unwrap(),
            725,
        );
        let mut wrong = id.as_str().to_string();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(17..18, last);
        let form = |number: &str| {
            vec![
                ("_csrf", csrf.clone()),
                ("name", "东方晓".to_string()),
                ("gender", "male".into()),
                ("birth_date", id.birth_date().to_string()),
                ("ethnicity", "01".into()),
                ("id_type", "1".into()),
                ("id_number", number.to_string()),
                ("grade", "13".into()),
                ("class_id", class.clone()),
            ]
        };
        let res = c
            .post(format!("{}/students/register", s.base))
            .form(&form(&wrong))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422);
        let html = res.text().await.unwrap();
        assert!(html.contains("value=\"东方晓\""), "the name is kept");
        assert!(
            html.contains(&format!("value=\"{wrong}\"")),
            "the number is kept"
        );
        assert!(html.contains(&format!("value=\"{}\"", id.birth_date())));
        let err_at = html
            .find("id=\"id_number-error\"")
            .expect("the error beside 证件号码");
        assert!(
            html[err_at..].contains("校验"),
            "{}",
            &html[err_at..err_at + 300]
        );
        assert!(
            html.contains(&format!("<option value=\"{class}\" selected")),
            "the class stays chosen"
        );

        let res = c
            .post(format!("{}/students/register", s.base))
            .form(&form(id.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let to = res.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/students/L410105"), "{to}");
        let no = to.trim_start_matches("/students/").to_string();

        // A transfer filed for the student shows in the archive with its steps.
        let gd = s.login("4401060001-admin").await;
        let gd_class: Value = s
            .get("/api/v1/schools/4401060001/classes", &gd)
            .await
            .json()
            .await
            .unwrap();
        let gd_class = gd_class
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["grade"] == "13")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        ok(
            post(
                &s,
                &gd,
                "/api/v1/transfers",
                json!({ "from_province": "410000", "student_name": "东方晓", "student_ref": no,
                        "to_grade": "13", "to_class_id": gd_class, "reason": "随父母工作调动" }),
            )
            .await,
            201,
        )
        .await;
        let html = c
            .get(format!("{}/students/{no}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for part in [
            "电子学籍档案",
            "公安比对",
            "待公安比对",
            "转学记录",
            "跨省转学",
            "转入学校审核",
            "未审核",
            "学籍异动",
            "打印学籍卡",
        ] {
            assert!(html.contains(part), "archive page lacks {part}");
        }
        // The printable card: the whole number for the own school, masked for the authority.
        let card = c
            .get(format!("{}/students/{no}/card", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(card.status().as_u16(), 200);
        let card = card.text().await.unwrap();
        assert!(card.contains("学生基本信息表") && card.contains(id.as_str()));
        assert!(!card.contains("style="), "no inline style (CSP)");
        let county = s.web_login("edu410105").await;
        let card = county
            .get(format!("{}/students/{no}/card", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(card.contains("学生基本信息表") && !card.contains(id.as_str()));
        assert!(card.contains("已脱敏"));
        s.stop().await;
    }
}

/// A multipart body of text fields and one file.
fn multipart(fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "----xuejiTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    let (name, filename, bytes) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Polls the job's progress until it reports finished.
async fn wait_for(c: &reqwest::Client, base: &str, job: &str) {
    for _ in 0..200 {
        let p: Value = c
            .get(format!("{base}{job}/progress.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if p["finished"] == true {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the import job did not finish");
}

/// Three 三年级 rows for SCHOOL; the second has a bad check digit.
fn import_file() -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (col, h) in xueji_app::import::HEADERS.iter().enumerate() {
        ws.write_string(0, col as u16, *h).unwrap();
    }
    for r in 0..3u32 {
        let id = IdNumber::from_parts(
            "410105",
            NaiveDate::from_ymd_opt(2018, 4, 10 + r).unwrap(),
            801,
        );
        let mut number = id.as_str().to_string();
        if r == 1 {
            let last = if number.ends_with('0') { "1" } else { "0" };
            number.replace_range(17..18, last);
        }
        let name = ["欧阳一", "欧阳二", "欧阳三"][r as usize];
        let cells = [
            name,
            "男",
            &id.birth_date().to_string(),
            "汉族",
            "居民身份证",
            &number,
            "三年级",
            "三年级（1）班",
        ];
        for (col, v) in cells.iter().enumerate() {
            ws.write_string(r + 1, col as u16, *v).unwrap();
        }
    }
    wb.save_to_buffer().unwrap()
}

#[tokio::test]
async fn problem_pages_and_the_import_job_with_its_progress() {
    for b in backends() {
        let s = Srv::start(b).await;
        let tok = s.login(&format!("{SCHOOL}-admin")).await;
        let id = IdNumber::from_parts(
            "410105",
            NaiveDate::from_ymd_opt(2018, 11, 12).unwrap(),
            735,
        );
        let no = failed_student(&s, &tok, &id, "慕容雪").await;
        let c = s.web_login(&format!("{SCHOOL}-admin")).await;
        let html = c
            .get(format!("{}/problems", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("慕容雪") && html.contains("身份证号码不存在"));
        let list: Value = s
            .get(&format!("/api/v1/problems?q={no}"), &tok)
            .await
            .json()
            .await
            .unwrap();
        let pid = list[0]["id"].as_i64().unwrap();
        // The school files 删除 with an evidence file through the page's multipart form.
        let html = c
            .get(format!("{}/problems/{pid}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("提交审核"));
        let csrf = hidden_csrf(&html);
        let (ct, body) = multipart(
            &[
                ("_csrf", &csrf),
                ("action", "delete"),
                ("reason", "重复录入的学籍"),
            ],
            ("evidence", "说明.pdf", b"%PDF-1.4 statement"),
        );
        let res = c
            .post(format!("{}/problems/{pid}/action", s.base))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        // The authority approves on its page.
        let county = s.web_login("edu410105").await;
        let html = county
            .get(format!("{}/problems/{pid}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("说明.pdf") && html.contains("重复录入的学籍"));
        let csrf = hidden_csrf(&html);
        // 不同意 without an opinion: refused beside the field.
        let res = county
            .post(format!("{}/problems/{pid}/decision", s.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("decision", "refuse"),
                ("opinion", " "),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422);
        assert!(res.text().await.unwrap().contains("id=\"opinion-error\""));
        let res = county
            .post(format!("{}/problems/{pid}/decision", s.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("decision", "approve"),
                ("opinion", ""),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let d: Value = s
            .get(&format!("/api/v1/problems/{pid}"), &tok)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(d["resolution"], "deleted");
        assert_eq!(d["actions"][0]["evidence"][0]["filename"], "说明.pdf");
        // The promotion page lists nothing to clean up and runs.
        let html = county
            .get(format!("{}/promotion?year=2026", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("在办业务清理") && html.contains("没有在办业务"));

        // Import: a file of three rows (one with a bad check digit) is validated in a background
        // job; the page then offers the report and writes the valid rows on request.
        let html = c
            .get(format!("{}/students/import", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("/students/import/template.xlsx"));
        let template = c
            .get(format!("{}/students/import/template.xlsx", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(template.status().as_u16(), 200);
        let csrf = hidden_csrf(&html);
        let file = import_file();
        let (ct, body) = multipart(&[("_csrf", &csrf)], ("file", "students.xlsx", &file));
        let res = c
            .post(format!("{}/students/import", s.base))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let job = res.headers()["location"].to_str().unwrap().to_string();
        wait_for(&c, &s.base, &job).await;
        let html = c
            .get(format!("{}{job}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("下载校验报告") && html.contains("写入2条有效记录"),
            "{html}"
        );
        assert!(
            html.contains("<td>3</td><td>证件号码</td><td class=\"mono\">F3</td>"),
            "{html}"
        );
        let report = c
            .get(format!("{}{job}/report.xlsx", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(report.status().as_u16(), 200);
        assert!(report.bytes().await.unwrap().starts_with(b"PK"));
        let count = format!("/api/v1/students?school={SCHOOL}&grade=13");
        let before = total(&s.get(&count, &tok).await);
        let csrf = hidden_csrf(&html);
        let res = c
            .post(format!("{}{job}/commit", s.base))
            .form(&[("_csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        wait_for(&c, &s.base, &job).await;
        let html = c
            .get(format!("{}{job}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("已写入2名学生的学籍"), "{html}");
        assert_eq!(total(&s.get(&count, &tok).await), before + 2);
        // Another user cannot read the job.
        let other = s.web_login("4101050002-admin").await;
        let res = other.get(format!("{}{job}", s.base)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 404);
        // The progress script is a static file (CSP: no inline script).
        let js = c
            .get(format!("{}/static/import.js", s.base))
            .send()
            .await
            .unwrap();
        assert!(
            js.headers()["content-type"]
                .to_str()
                .unwrap()
                .contains("javascript")
        );
        s.stop().await;
    }
}
