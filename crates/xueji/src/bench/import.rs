//! The import scenario: N generated valid rows (one .xlsx file for one school) through the whole
//! import path — reading the file, validation, 全国查重, numbering, students + number history +
//! enrollments + one audit row per student — against a bare bulk INSERT (SQLite: prepared,
//! batched; PostgreSQL: COPY) of the same rows into a scratch copy of `students` with the same
//! columns, indexes and foreign keys, measured in the same run.
//!
//! The scratch table starts empty while the import writes into the loaded database, so at a large
//! `--students` the bare figure has the easier job: the ratio errs on the import's side of caution.

use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, NaiveDate, Utc};
use xueji_app::import::{Commit, ImportOptions, XlsxSource, no_progress, write_rows_xlsx};
use xueji_app::{App, Db, on_pool};
use xueji_domain::ids::{Gender, Grade, IdNumber};

const SURNAMES: &str = include_str!("../../../../data/surnames.txt");
const GIVEN_CHARS: &str = include_str!("../../../../data/given_chars.txt");

/// The school the rows go to (a demo school; its classes get room for every row).
const SCHOOL: &str = "4101050002";
/// Born in 湖北 (42): no identity number of the demo or the generated 河南 province.
const BIRTH_COUNTIES: [&str; 8] = [
    "420102", "420103", "420104", "420105", "420106", "420107", "420111", "420112",
];
/// Rows per bare INSERT statement and per bare transaction.
const BARE_ROWS_PER_STATEMENT: usize = 500;
const SCHOOL_YEAR: i32 = 2026;

fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Row `i` of the file: a distinct person (name, gender and birth date never repeat within the
/// file, so no row is a 疑似重复 of another), a class of the school, a birth date that fits it.
fn row(
    i: usize,
    classes: &[(i64, String, String)],
    surnames: &[&str],
    given: &[char],
) -> [String; 8] {
    let (_, grade, class) = &classes[i % classes.len()];
    let g = Grade::parse(grade).expect("class grades are valid");
    let birth = NaiveDate::from_ymd_opt(SCHOOL_YEAR - g.usual_age() - 1, 9, 2).expect("date")
        + chrono::Duration::days((i % 365) as i64);
    let rest = i / 365;
    let county = BIRTH_COUNTIES[(rest / 1000) % BIRTH_COUNTIES.len()];
    let id = IdNumber::from_parts(county, birth, (rest % 1000) as u16);
    let mut name = surnames[i % surnames.len()].to_string();
    let mut k = i / surnames.len();
    loop {
        name.push(given[k % given.len()]);
        k /= given.len();
        if k == 0 {
            break;
        }
    }
    if name.chars().count() < 3 {
        name.push(given[(i * 7) % given.len()]);
    }
    let gender = if id.gender() == Gender::Male {
        "男"
    } else {
        "女"
    };
    [
        name,
        gender.into(),
        birth.to_string(),
        "汉族".into(),
        "居民身份证".into(),
        id.as_str().into(),
        g.label_zh().into(),
        class.clone(),
    ]
}

/// Runs the scenario with `rows` rows and prints its figures.
pub async fn run(app: &App, db: &Db, rows: usize) -> anyhow::Result<()> {
    let classes: Vec<(i64, String, String)> = on_pool!(db.read(), p => sqlx::query_as(
        "SELECT c.id, c.grade, c.name FROM classes c JOIN schools s ON s.id = c.school_id \
         WHERE s.code = $1 ORDER BY c.id"
    ).bind(SCHOOL).fetch_all(p).await)?;
    if classes.is_empty() {
        bail!("import: school {SCHOOL} has no classes (is the demo loaded?)");
    }
    on_pool!(db.write(), p => sqlx::query(
        "UPDATE classes SET capacity = 100000000 WHERE school_id = (SELECT id FROM schools WHERE code = $1)"
    ).bind(SCHOOL).execute(p).await.map(|r| r.rows_affected()))?;
    if rows > 365 * 1000 * BIRTH_COUNTIES.len() {
        bail!("import: at most {} rows", 365 * 1000 * BIRTH_COUNTIES.len());
    }
    let surnames = lines(SURNAMES);
    let given: Vec<char> = lines(GIVEN_CHARS)
        .iter()
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_ascii())
        .collect();
    let path = std::env::temp_dir().join(format!("xueji-bench-import-{}.xlsx", std::process::id()));
    let t = Instant::now();
    {
        let (classes, surnames, given, path) = (
            classes.clone(),
            surnames.clone(),
            given.clone(),
            path.clone(),
        );
        let surnames: Vec<String> = surnames.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let s: Vec<&str> = surnames.iter().map(String::as_str).collect();
            write_rows_xlsx(&path, (0..rows).map(|i| row(i, &classes, &s, &given)))
        })
        .await??;
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "import: {rows} rows for school {SCHOOL} written to an .xlsx of {:.1} MB in {:.1}s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    super::reset_peak_rss();
    // What the process held before (the generated dataset's leftovers, the pools' page caches):
    // the import's own memory is the peak beyond it.
    let before = super::rss_mb();
    db.sqlite_heap_reset_peak();
    let t = Instant::now();
    let report = app
        .import_students_as_operator(
            SCHOOL,
            XlsxSource::Path(path.clone()),
            ImportOptions {
                commit: Commit::ValidRows,
                confirm_suspected: false,
            },
            &no_progress,
        )
        .await?;
    let secs = t.elapsed().as_secs_f64();
    let peak = super::peak_rss_mb();
    let sqlite_peak = db.sqlite_heap().map(|(_, p)| p as f64 / 1e6);
    let _ = std::fs::remove_file(&path);
    let rate = report.written as f64 / secs;
    println!(
        "import: {} rows, {} valid, {} invalid, {} written in {secs:.2}s: {rate:.0} rows/s; peak RSS {peak:.0} MB, {:.0} MB beyond the {before:.0} MB held before it",
        report.rows,
        report.valid,
        report.invalid,
        report.written,
        peak - before
    );
    if let Some(sqlite_peak) = sqlite_peak {
        println!(
            "import: SQLite's heap at its peak during the import (page caches of the writer and readers, statements) {sqlite_peak:.0} MB"
        );
    }

    let (bare_rows, bare_secs) = bare(db).await?;
    let bare_rate = bare_rows as f64 / bare_secs;
    let what = match db {
        Db::Sqlite { .. } => "bare prepared batched INSERT",
        Db::Postgres(_) => "bare COPY",
    };
    println!(
        "import: {what} of the same {bare_rows} rows into a scratch copy of students: {bare_secs:.2}s, {bare_rate:.0} rows/s"
    );
    println!(
        "import: {rate:.0} rows/s vs {bare_rate:.0} rows/s bare = {:.0} % of bare; peak RSS {peak:.0} MB",
        rate / bare_rate * 100.0
    );
    Ok(())
}

/// The columns of a student row, as the import writes them.
const COLS: [&str; 16] = [
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
    "identity_status",
];

#[derive(sqlx::FromRow)]
struct StudentRow {
    id: i64,
    student_no: String,
    id_type: String,
    id_number: String,
    name: String,
    gender: String,
    birth_date: NaiveDate,
    ethnicity: String,
    status: String,
    school_id: Option<i64>,
    grade: Option<String>,
    class_id: Option<i64>,
    region_code: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    identity_status: String,
}

/// The imported rows again, a page at a time (reading is not timed).
async fn page(db: &Db, after: i64) -> anyhow::Result<Vec<StudentRow>> {
    Ok(on_pool!(db.read(), p => sqlx::query_as(
        "SELECT id, student_no, id_type, id_number, name, gender, birth_date, ethnicity, status, school_id, grade, \
         class_id, region_code, version, created_at, updated_at, identity_status FROM students \
         WHERE id > $1 AND id_number LIKE '42%' ORDER BY id LIMIT 50000"
    ).bind(after).fetch_all(p).await)?)
}

/// Creates `bench_students` like `students` (columns, indexes, foreign keys), empty.
async fn scratch_table(db: &Db) -> anyhow::Result<()> {
    match db {
        Db::Sqlite { .. } => {
            let ddl: Vec<String> = on_pool!(db.read(), p => sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'students' AND sql IS NOT NULL ORDER BY type DESC"
            ).fetch_all(p).await)?;
            let mut tx = db.begin().await?;
            xueji_app::on_tx!(&mut tx, c => sqlx::query("DROP TABLE IF EXISTS bench_students")
                .execute(&mut *c).await.map(|r| r.rows_affected()))?;
            for d in ddl {
                let d = d
                    .replacen("CREATE TABLE students", "CREATE TABLE bench_students", 1)
                    .replace(" ON students ", " ON bench_students ")
                    .replace("INDEX students_", "INDEX bench_students_");
                xueji_app::on_tx!(&mut tx, c => sqlx::query(sqlx::AssertSqlSafe(d))
                    .execute(&mut *c).await.map(|r| r.rows_affected()))?;
            }
            tx.commit().await?;
        }
        Db::Postgres(pool) => {
            for sql in [
                "DROP TABLE IF EXISTS bench_students",
                "CREATE TABLE bench_students (LIKE students INCLUDING ALL)",
                "ALTER TABLE bench_students ADD FOREIGN KEY (id_type) REFERENCES id_types (code)",
                "ALTER TABLE bench_students ADD FOREIGN KEY (ethnicity) REFERENCES ethnicities (code)",
                "ALTER TABLE bench_students ADD FOREIGN KEY (school_id) REFERENCES schools (id)",
                "ALTER TABLE bench_students ADD FOREIGN KEY (class_id) REFERENCES classes (id)",
            ] {
                sqlx::query(sql).execute(pool).await?;
            }
        }
    }
    Ok(())
}

/// The bare bulk load of the imported rows; returns (rows, seconds spent writing).
async fn bare(db: &Db) -> anyhow::Result<(usize, f64)> {
    scratch_table(db).await?;
    let mut after = 0i64;
    let mut n = 0usize;
    let mut spent = 0.0;
    match db {
        Db::Sqlite { .. } => {
            // One transaction, like the import; anonymous parameters (see audit::values_list).
            let mut tx = db.begin().await?;
            loop {
                let rows = page(db, after).await?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                let t = Instant::now();
                for part in rows.chunks(BARE_ROWS_PER_STATEMENT) {
                    let sql = format!(
                        "INSERT INTO bench_students ({}) VALUES {}",
                        COLS.join(", "),
                        xueji_app::audit::values_list(true, part.len(), COLS.len())
                    );
                    xueji_app::on_tx!(&mut tx, c => {
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                        for r in part {
                            q = q.bind(&r.student_no).bind(&r.id_type).bind(&r.id_number).bind(&r.name)
                                .bind(&r.gender).bind(r.birth_date).bind(&r.ethnicity).bind(&r.status)
                                .bind(r.school_id).bind(&r.grade).bind(r.class_id).bind(&r.region_code)
                                .bind(r.version).bind(r.created_at).bind(r.updated_at).bind(&r.identity_status);
                        }
                        q.execute(&mut *c).await.map(|r| r.rows_affected())
                    })?;
                }
                n += rows.len();
                spent += t.elapsed().as_secs_f64();
            }
            let t = Instant::now();
            tx.commit().await?;
            spent += t.elapsed().as_secs_f64();
        }
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            let mut copy = conn
                .copy_in_raw(&format!(
                    "COPY bench_students ({}) FROM STDIN",
                    COLS.join(", ")
                ))
                .await
                .context("COPY")?;
            loop {
                let rows = page(db, after).await?;
                let Some(last) = rows.last() else { break };
                after = last.id;
                let t = Instant::now();
                let mut buf = String::with_capacity(rows.len() * 200);
                let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "\\N".into());
                let opt_i =
                    |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "\\N".into());
                for r in &rows {
                    // Text format: tab-separated; generated values hold no tab, newline or backslash.
                    let f = [
                        r.student_no.clone(),
                        r.id_type.clone(),
                        r.id_number.clone(),
                        r.name.clone(),
                        r.gender.clone(),
                        r.birth_date.to_string(),
                        r.ethnicity.clone(),
                        r.status.clone(),
                        opt_i(r.school_id),
                        opt(&r.grade),
                        opt_i(r.class_id),
                        opt(&r.region_code),
                        r.version.to_string(),
                        r.created_at.to_rfc3339(),
                        r.updated_at.to_rfc3339(),
                        r.identity_status.clone(),
                    ];
                    buf.push_str(&f.join("\t"));
                    buf.push('\n');
                }
                copy.send(buf.into_bytes()).await?;
                n += rows.len();
                spent += t.elapsed().as_secs_f64();
            }
            let t = Instant::now();
            copy.finish().await?;
            spent += t.elapsed().as_secs_f64();
        }
    }
    let _ = on_pool!(db.write(), p => sqlx::query("DROP TABLE bench_students").execute(p).await.map(|r| r.rows_affected()));
    Ok((n, spent))
}
