//! Scenario "lists": the work lists and queries people open all day — the 督办 dashboard, the
//! transfer query with its filters, the student list — at `n` transfers in the province, timed
//! one request at a time over HTTP (p50 / p99 / max per query).
//!
//! The transfers are written straight into the tables (not a scenario): 河南-internal
//! transfers between schools of different counties, filed evenly over the past year; those of
//! the last 30 days are open (waiting at one of the four reviews, or approved), the older ones
//! completed, 5 % withdrawn or rejected.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeZone, Utc};
use serde_json::Value;
use xueji_app::{App, Backend, Db, on_pool};

use super::dataset::Province;
use super::{V, bulk_insert, drop_indexes, peak_rss_mb, percentile, restore_indexes};

const STEP_CODES: [(&str, &str, &str, &str); 4] = [
    ("in_school", "in", "school_review", "school"),
    ("in_authority", "in", "authority_review", "authority"),
    ("out_school", "out", "school_review", "school"),
    ("out_authority", "out", "authority_review", "authority"),
];

struct School {
    code: String,
    region: String,
}

/// Writes `n` transfers with their steps; returns how many were written.
/// Values per generated transfer row (the columns listed in `generate`).
const TRANSFER_COLUMNS: usize = 26;

async fn generate(db: &Db, n: usize) -> anyhow::Result<usize> {
    let schools: HashMap<i64, School> = on_pool!(db.read(), p => sqlx::query_as::<_, (i64, String, String)>(
        "SELECT id, code, region_code FROM schools WHERE code > '4100000000' AND code < '4200000000'"
    ).fetch_all(p).await)?
    .into_iter()
    .map(|(id, code, region)| (id, School { code, region }))
    .collect();
    let mut first_class: HashMap<(i64, String), i64> = HashMap::new();
    for (id, school, grade) in on_pool!(db.read(), p => sqlx::query_as::<_, (i64, i64, String)>(
        "SELECT id, school_id, grade FROM classes ORDER BY id DESC"
    ).fetch_all(p).await)?
    {
        first_class.insert((school, grade), id);
    }
    let filer: i64 = on_pool!(db.read(), p => sqlx::query_scalar("SELECT MIN(id) FROM users").fetch_one(p).await)?;
    let (lo, hi): (i64, i64) = on_pool!(db.read(), p => sqlx::query_as(
        "SELECT MIN(id), MAX(id) FROM students WHERE region_code LIKE '41%'"
    ).fetch_one(p).await)?;
    let step = (((hi - lo + 1) as usize) / n.max(1)).max(1) as i64;
    let dropped = drop_indexes(db, "'transfers', 'transfer_steps'").await?;
    let today = Utc
        .with_ymd_and_hms(2026, 11, 27, 8, 0, 0)
        .single()
        .context("time")?;
    let mut written = 0usize;
    let mut from = lo;
    let t0 = Instant::now();
    while from <= hi && written < n {
        let to = from + 20_000 * step;
        let rows: Vec<(i64, String, String, i64, String)> = on_pool!(db.read(), p => sqlx::query_as(
            "SELECT id, student_no, name, school_id, grade FROM students WHERE id >= $1 AND id < $2 AND (id - $1) % $3 = 0 ORDER BY id"
        ).bind(from).bind(to).bind(step).fetch_all(p).await)?;
        from = to;
        let mut transfers = vec![];
        let mut steps = vec![];
        let base_id: i64 = on_pool!(db.read(), p => sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM transfers").fetch_one(p).await)?;
        for (sid, no, name, school, grade) in rows {
            if written + transfers.len() / TRANSFER_COLUMNS >= n {
                break;
            }
            // The same kind of school ten codes on: another county, the same grades.
            if !schools.contains_key(&school) {
                continue;
            }
            let Some(to_school_id) = [school + 10, school - 10].into_iter().find(|s| {
                schools.contains_key(s) && first_class.contains_key(&(*s, grade.clone()))
            }) else {
                continue;
            };
            let (f, t) = (&schools[&school], &schools[&to_school_id]);
            let tid = base_id + 1 + (transfers.len() / TRANSFER_COLUMNS) as i64;
            // Age and status from a hash of the id: the ids are taken at a fixed stride, and
            // `id % 20` at a stride of 10 gave only two statuses (no work list at all).
            let h = (sid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
            let age = (h % 365) as i64;
            let filed = today - chrono::Duration::days(age);
            // Filed in the last 30 days: still open at one of the four reviews, or approved;
            // older: completed, 5 % withdrawn or rejected (the share of a real year).
            let (status, current) = match (age < 30, (h / 365) % 20) {
                (true, 0..=3) => ("in_school_review", 0i64),
                (true, 4..=7) => ("in_authority_review", 1),
                (true, 8..=11) => ("out_school_review", 2),
                (true, 12..=15) => ("out_authority_review", 3),
                (true, _) => ("approved", 4),
                (false, 0) => ("withdrawn", 0),
                (false, 1) => ("rejected", 2),
                (false, _) => ("completed", 4),
            };
            let done = status == "completed";
            transfers.extend([
                V::I(tid),
                V::T("intra_province".into()),
                V::T(status.into()),
                V::I(sid),
                V::T(no),
                V::T(name),
                V::I(school),
                V::I(to_school_id),
                V::T(f.code.clone()),
                V::T(t.code.clone()),
                V::T(f.region.clone()),
                V::T(t.region.clone()),
                V::T(f.region.clone()),
                V::T(t.region.clone()),
                V::T(grade.clone()),
                V::T(grade.clone()),
                V::I(first_class[&(to_school_id, grade.clone())]),
                V::T("随迁".into()),
                V::I(filer),
                V::I(current),
                V::I(1),
                V::Tm(filed),
                V::Tm(filed + chrono::Duration::days(3)),
                V::OT(done.then(|| format!("Q{tid:011}"))),
                V::OT(None),
                // The waiting step's due date (see the steps below), while under review.
                V::OD(
                    status
                        .ends_with("_review")
                        .then(|| (filed + chrono::Duration::days(current * 2 + 14)).date_naive()),
                ),
            ]);
            for (idx, (code, side, role, kind)) in STEP_CODES.iter().enumerate() {
                let party_region = if *side == "in" { &t.region } else { &f.region }.clone();
                let party = match (*side, *kind) {
                    ("in", "school") => t.code.clone(),
                    ("in", _) => t.region.clone(),
                    (_, "school") => f.code.clone(),
                    _ => f.region.clone(),
                };
                let decided = (idx as i64) < current || done;
                let waiting =
                    (idx as i64) == current && !done && !matches!(status, "withdrawn" | "rejected");
                let began = filed + chrono::Duration::days(idx as i64 * 2);
                steps.push(vec![
                    V::I(tid),
                    V::I(idx as i64),
                    V::T((*code).into()),
                    V::T((*side).into()),
                    V::T((*role).into()),
                    V::T((*kind).into()),
                    V::T(party),
                    V::B(false),
                    V::OT(decided.then(|| "approve".into())),
                    V::OT(decided.then(|| "同意".into())),
                    V::D(began.date_naive()),
                    V::OD(
                        (decided || waiting)
                            .then(|| (began + chrono::Duration::days(14)).date_naive()),
                    ),
                    V::T(party_region),
                    V::Mark(waiting),
                ]);
            }
        }
        let count = transfers.len() / TRANSFER_COLUMNS;
        if count == 0 {
            continue;
        }
        let mut rows: Vec<Vec<V>> = vec![];
        let mut it = transfers.into_iter().peekable();
        while it.peek().is_some() {
            rows.push(it.by_ref().take(TRANSFER_COLUMNS).collect());
        }
        let mut tx = db.begin().await?;
        bulk_insert(
            &mut tx,
            "transfers",
            &[
                "id",
                "kind",
                "status",
                "student_id",
                "student_no",
                "student_name",
                "from_school_id",
                "to_school_id",
                "from_school",
                "to_school",
                "from_authority",
                "to_authority",
                "from_region",
                "to_region",
                "from_grade",
                "to_grade",
                "to_class_id",
                "reason",
                "filed_by",
                "current_step",
                "version",
                "created_at",
                "updated_at",
                "query_code",
                "withdraw_reason",
                "waiting_due",
            ],
            rows,
        )
        .await?;
        insert_steps(&mut tx, steps).await?;
        tx.commit().await?;
        written += count;
        if t0.elapsed() > Duration::from_secs(10) && written % 200_000 < count {
            eprintln!("  … {written} of {n} transfers written");
        }
    }
    restore_indexes(db, &dropped).await?;
    // The ids were given explicitly: PostgreSQL's sequence must move past them.
    if db.backend() == Backend::Postgres {
        on_pool!(db.write(), p => sqlx::query(
            "SELECT setval(pg_get_serial_sequence('transfers', 'id'), (SELECT MAX(id) FROM transfers))"
        ).execute(p).await.map(|_| ()))?;
    }
    Ok(written)
}

async fn insert_steps(tx: &mut xueji_app::db::Tx, rows: Vec<Vec<V>>) -> anyhow::Result<()> {
    bulk_insert(
        tx,
        "transfer_steps",
        &[
            "transfer_id",
            "idx",
            "code",
            "side",
            "role",
            "party_kind",
            "party_code",
            "shared",
            "decision",
            "opinion",
            "began_on",
            "due_date",
            "party_region",
            "waiting",
        ],
        rows,
    )
    .await?;
    Ok(())
}

/// Times `urls` one request at a time; every answer must be a 200.
async fn time_urls(
    client: &reqwest::Client,
    token: &str,
    urls: &[String],
) -> anyhow::Result<(f64, f64, f64, usize)> {
    let mut lat = vec![];
    let mut rows = 0usize;
    for u in urls {
        let t = Instant::now();
        let r = client.get(u).bearer_auth(token).send().await?;
        let status = r.status();
        let body: Value = r.json().await?;
        lat.push(t.elapsed());
        anyhow::ensure!(status.is_success(), "{u}: {status} {}", body["code"]);
        rows += body.as_array().map(Vec::len).unwrap_or(1);
    }
    lat.sort();
    Ok((
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        rows,
    ))
}

pub async fn run(app: &App, db: &Db, province: &Province, n: usize) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let written = generate(db, n).await?;
    println!();
    println!(
        "lists: {written} transfers written in {:.1}s; each query below run over HTTP one at a time",
        t0.elapsed().as_secs_f64()
    );
    let server = xueji_web::Server::start(app.clone(), "127.0.0.1:0").await?;
    let base = server.url();
    let client = reqwest::Client::new();
    let province_token = super::login(&client, &base, "edu410000").await?;
    let counties: Vec<&String> = province.counties.iter().take(20).collect();
    let mut county_tokens = vec![];
    for c in &counties {
        county_tokens.push((
            (*c).clone(),
            super::login(&client, &base, &format!("edu{c}")).await?,
        ));
    }
    let schools: Vec<&String> = province.school_codes.iter().step_by(97).take(50).collect();
    let reps = 50usize;
    let mut table: Vec<(String, (f64, f64, f64, usize))> = vec![];
    // The province's 督办 dashboard and a city's drill-down.
    let urls: Vec<String> = (0..reps)
        .map(|_| format!("{base}/api/v1/oversight/dashboard"))
        .collect();
    table.push((
        "dashboard, province (edu410000)".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    let mut lat_county = vec![];
    for (i, (_, tok)) in county_tokens.iter().enumerate().take(10) {
        let urls = vec![format!("{base}/api/v1/oversight/dashboard"); reps / 10 + (i % 2)];
        lat_county.push(time_urls(&client, tok, &urls).await?);
    }
    table.push(("dashboard, county authority".into(), worst(&lat_county)));
    let statuses = [
        "in_school_review",
        "in_authority_review",
        "out_school_review",
        "out_authority_review",
        "approved",
    ];
    let urls: Vec<String> = (0..reps)
        .map(|i| {
            format!(
                "{base}/api/v1/transfers?status={}&page={}",
                statuses[i % statuses.len()],
                1 + i % 5
            )
        })
        .collect();
    table.push((
        "transfers by status, province, pages 1–5".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    let urls: Vec<String> = (0..reps)
        .map(|i| {
            let day = 1 + (i % 28);
            format!("{base}/api/v1/transfers?from_date=2026-03-{day:02}&to_date=2026-04-{day:02}&kind=intra_province")
        })
        .collect();
    table.push((
        "transfers by filing dates + kind, province".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    let urls: Vec<String> = (0..reps)
        .map(|i| format!("{base}/api/v1/transfers?overdue=true&page={}", 1 + i % 5))
        .collect();
    table.push((
        "transfers overdue, province, pages 1–5".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    let surnames = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"];
    let urls: Vec<String> = (0..reps)
        .map(|i| format!("{base}/api/v1/transfers?q={}", surnames[i % surnames.len()]))
        .collect();
    table.push((
        "transfers by a surname alone, province".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    let mut todo = vec![];
    let mut overdue = vec![];
    for (_, tok) in &county_tokens {
        todo.push(
            time_urls(
                &client,
                tok,
                &[
                    format!("{base}/api/v1/transfers?todo=true"),
                    format!("{base}/api/v1/transfers?todo=true&direction=in"),
                ],
            )
            .await?,
        );
        overdue.push(
            time_urls(
                &client,
                tok,
                &[
                    format!("{base}/api/v1/transfers?overdue=true"),
                    format!("{base}/api/v1/transfers?status=completed&page=3"),
                ],
            )
            .await?,
        );
    }
    table.push(("work list (todo), county authority".into(), worst(&todo)));
    table.push((
        "overdue / completed page 3, county authority".into(),
        worst(&overdue),
    ));
    let urls: Vec<String> = schools
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{base}/api/v1/students?school={s}&page={}", 1 + i % 3))
        .collect();
    table.push((
        "students of a school, province".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    let urls: Vec<String> = (0..reps)
        .map(|i| format!("{base}/api/v1/students?q={}", surnames[i % surnames.len()]))
        .collect();
    table.push((
        "students by a surname alone, province".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    // What people type most: a whole name, taken from the generated students.
    let names: Vec<String> = on_pool!(db.read(), p => sqlx::query_scalar(
        "SELECT name FROM students WHERE id % 1009 = 7 LIMIT 200"
    ).fetch_all(p).await)?;
    anyhow::ensure!(!names.is_empty(), "no students to take names from");
    let urls: Vec<String> = (0..reps)
        .map(|i| format!("{base}/api/v1/students?q={}", names[i % names.len()]))
        .collect();
    table.push((
        "students by full name, province".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    let urls: Vec<String> = (0..reps)
        .map(|i| format!("{base}/api/v1/transfers?q={}", names[i % names.len()]))
        .collect();
    table.push((
        "transfers by full name, province".into(),
        time_urls(&client, &province_token, &urls).await?,
    ));
    server.stop().await?;
    println!(
        "  {:<48} {:>9} {:>9} {:>9} {:>7}",
        "query", "p50 ms", "p99 ms", "max ms", "rows"
    );
    for (name, (p50, p99, max, rows)) in &table {
        println!("  {name:<48} {p50:>9.1} {p99:>9.1} {max:>9.1} {rows:>7}");
    }
    println!("  peak RSS {:.0} MB", peak_rss_mb());
    Ok(())
}

/// The worst of several groups' figures (p50 the median of medians).
fn worst(groups: &[(f64, f64, f64, usize)]) -> (f64, f64, f64, usize) {
    let mut p50: Vec<f64> = groups.iter().map(|g| g.0).collect();
    p50.sort_by(f64::total_cmp);
    (
        p50.get(p50.len() / 2).copied().unwrap_or(0.0),
        groups.iter().map(|g| g.1).fold(0.0, f64::max),
        groups.iter().map(|g| g.2).fold(0.0, f64::max),
        groups.iter().map(|g| g.3).sum(),
    )
}
