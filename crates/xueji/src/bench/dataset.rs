//! The benchmark's province: `students` students in `schools` schools spread over 河南's
//! counties, deterministic, with valid identity numbers and a realistic spread over grades
//! (小学 six grades, 初中 and 高中 three each, the larger schools in the higher stages).
//!
//! Loading is not a scenario: it writes rows the way a migration from an older system would,
//! with the secondary indexes dropped during the load and built again after it, so that a
//! 10-million run spends its time on the scenarios.

use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use xueji_app::seed::{Val, insert_rows};
use xueji_app::{Backend, Db, on_pool, on_tx};

use super::{drop_indexes, restore_indexes};
use xueji_domain::ids::{Grade, IdNumber, StudentNo};

const SURNAMES: &str = include_str!("../../../../data/surnames.txt");
const GIVEN_CHARS: &str = include_str!("../../../../data/given_chars.txt");

/// The school year the dataset stands in.
const SCHOOL_YEAR: i32 = 2026;
const CLASS_SIZE: usize = 45;
/// Rows per INSERT: small enough that SQLite's parameter lookup stays cheap.
const ROWS_PER_STATEMENT: usize = 64;
/// Rows per transaction.
const ROWS_PER_TX: usize = 50_000;

/// What the load made, for the scenarios.
pub struct Province {
    pub students: usize,
    pub schools: usize,
    pub classes: usize,
    pub load_secs: f64,
    /// Every 97th generated student number: the lookup scenario's keys.
    pub sample_nos: Vec<String>,
    /// The generated schools' codes, in the order made.
    pub school_codes: Vec<String>,
    /// The counties used.
    pub counties: Vec<String>,
}

/// A tiny deterministic generator (xorshift): the same province every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[derive(Clone, Copy)]
enum Kind {
    Primary,
    Junior,
    Senior,
}

impl Kind {
    fn of(i: usize) -> Self {
        // 河南 has about 7 primary schools for every 2 junior and 1 senior high school.
        match i % 10 {
            0..=6 => Kind::Primary,
            7 | 8 => Kind::Junior,
            _ => Kind::Senior,
        }
    }
    fn grades(self) -> Vec<Grade> {
        let want: &[u8] = match self {
            Kind::Primary => &[11, 12, 13, 14, 15, 16],
            Kind::Junior => &[21, 22, 23],
            Kind::Senior => &[31, 32, 33],
        };
        want.iter()
            .map(|n| Grade::parse(&n.to_string()).expect("grade"))
            .collect()
    }
    /// Relative students per grade: junior and senior high schools are larger.
    fn weight(self) -> f64 {
        match self {
            Kind::Primary => 1.0,
            Kind::Junior => 2.4,
            Kind::Senior => 3.2,
        }
    }
    fn label(self) -> (&'static str, &'static str) {
        match self {
            Kind::Primary => ("小学", "小学"),
            Kind::Junior => ("初级中学", "初级中学"),
            Kind::Senior => ("高级中学", "高级中学"),
        }
    }
}

pub async fn load(db: &Db, students: usize, schools: usize) -> anyhow::Result<Province> {
    let t0 = Instant::now();
    // The demo's counties are left out: their students' identity numbers come from the same
    // county codes and birth dates.
    let counties: Vec<String> = on_pool!(db.read(), p => sqlx::query_scalar(
        "SELECT code FROM regions WHERE province_code = '410000' AND level = 'county' \
         AND code NOT IN (SELECT region_code FROM schools) ORDER BY code"
    ).fetch_all(p).await)?;
    anyhow::ensure!(
        !counties.is_empty(),
        "no 河南 counties in the reference data"
    );
    let county_names: std::collections::HashMap<String, String> =
        on_pool!(db.read(), p => sqlx::query_as(
        "SELECT code, name FROM regions WHERE province_code = '410000'"
    ).fetch_all(p).await)?
        .into_iter()
        .collect();
    let surnames = lines(SURNAMES);
    let given = lines(GIVEN_CHARS);
    let at = Utc
        .with_ymd_and_hms(SCHOOL_YEAR, 8, 31, 16, 0, 0)
        .single()
        .context("time")?;

    // Schools, spread over the counties; codes 1001… so as not to meet the demo's 0001….
    let kinds: Vec<Kind> = (0..schools).map(Kind::of).collect();
    let total_weight: f64 = kinds
        .iter()
        .map(|k| k.weight() * k.grades().len() as f64)
        .sum();
    let mut plan = vec![]; // (code, county, kind, students)
    let mut given_out = 0usize;
    for (i, kind) in kinds.iter().enumerate() {
        let county = &counties[i % counties.len()];
        let code = format!("{county}{:04}", 1001 + i / counties.len());
        let share = kind.weight() * kind.grades().len() as f64 / total_weight;
        let n = if i + 1 == schools {
            students - given_out
        } else {
            ((students as f64 * share).round() as usize).min(students - given_out)
        };
        given_out += n;
        plan.push((code, county.clone(), *kind, n));
    }
    let mut tx = db.begin().await?;
    let rows: Vec<Vec<Val>> = plan
        .iter()
        .map(|(code, county, kind, _)| {
            let (suffix, school_type) = kind.label();
            let grades: Vec<String> = kind.grades().iter().map(|g| g.code()).collect();
            vec![
                Val::Text(code.clone()),
                Val::Text(format!(
                    "{}第{}{}",
                    county_names.get(county).map(String::as_str).unwrap_or(""),
                    &code[6..],
                    suffix
                )),
                Val::Text(county.clone()),
                Val::Text(county.clone()),
                Val::Text(school_type.into()),
                Val::Text(grades.join(",")),
                Val::Time(at),
            ]
        })
        .collect();
    insert_rows(
        &mut tx,
        "schools",
        &[
            "code",
            "name",
            "region_code",
            "authority_region",
            "school_type",
            "grades",
            "created_at",
        ],
        rows,
    )
    .await?;
    tx.commit().await?;
    let school_ids: std::collections::HashMap<String, i64> =
        on_pool!(db.read(), p => sqlx::query_as(
        "SELECT code, id FROM schools WHERE region_code LIKE '41%' AND code > '4100000000'"
    ).fetch_all(p).await)?
        .into_iter()
        .collect();

    // Classes: enough 45-student classes per grade, capacity 50.
    let mut class_rows = vec![];
    for (code, _, kind, n) in &plan {
        let grades = kind.grades();
        let per_grade = n.div_ceil(grades.len());
        for g in &grades {
            for c in 0..per_grade.div_ceil(CLASS_SIZE).max(1) {
                class_rows.push(vec![
                    Val::Int(school_ids[code]),
                    Val::Text(g.code()),
                    Val::Text(format!("{}班", c + 1)),
                    Val::Int(50),
                ]);
            }
        }
    }
    let classes = class_rows.len();
    let mut tx = db.begin().await?;
    insert_rows(
        &mut tx,
        "classes",
        &["school_id", "grade", "name", "capacity"],
        class_rows,
    )
    .await?;
    tx.commit().await?;
    let class_list: Vec<(i64, i64, String)> = on_pool!(db.read(), p => sqlx::query_as(
        "SELECT id, school_id, grade FROM classes ORDER BY school_id, grade, id"
    ).fetch_all(p).await)?;
    let mut class_of: std::collections::HashMap<(i64, String), Vec<i64>> = Default::default();
    for (id, school, grade) in class_list {
        class_of.entry((school, grade)).or_default().push(id);
    }
    let first_new: i64 = on_pool!(db.read(), p => sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM students").fetch_one(p).await)?;

    let dropped = drop_indexes(db, "'students', 'student_numbers', 'enrollments'").await?;
    let mut rng = Rng(0x5EED_2026_0901);
    let mut sample_nos = vec![];
    let mut written = 0usize;
    let mut last_report = Instant::now();
    // One county at a time, its students sorted by identity number: the unique indexes on the
    // identity number and the student number then grow at their right edge.
    for county in &counties {
        let mut people: Vec<(IdNumber, String, String, i64, String, i64)> = vec![];
        // Per birth date, the next sequence number in this county.
        let mut next_seq: std::collections::HashMap<NaiveDate, u16> = Default::default();
        for (code, _, kind, n) in plan.iter().filter(|p| &p.1 == county) {
            let sid = school_ids[code];
            let grades = kind.grades();
            for k in 0..*n {
                let g = grades[k % grades.len()];
                let cls = &class_of[&(sid, g.code())];
                let class_id = cls[(k / grades.len()) / CLASS_SIZE % cls.len()];
                let age = g.usual_age();
                let start = NaiveDate::from_ymd_opt(SCHOOL_YEAR - age - 1, 9, 2).context("date")?;
                let mut birth = start + Duration::days(rng.below(365) as i64);
                // At most 500 people per county and birth date (odd and even sequence numbers).
                let seq = loop {
                    let s = next_seq.entry(birth).or_insert(0);
                    if *s < 998 {
                        *s += 1;
                        break *s;
                    }
                    birth += Duration::days(1);
                };
                let id = IdNumber::from_parts(county, birth, seq);
                let surname = surnames[rng.below(surnames.len().min(80))];
                let g1 = given[rng.below(given.len())];
                let name = if rng.below(3) == 0 {
                    format!("{surname}{g1}")
                } else {
                    format!("{surname}{g1}{}", given[rng.below(given.len())])
                };
                let ethnicity = if rng.below(100) < 2 { "02" } else { "01" };
                people.push((id, name, ethnicity.into(), sid, g.code(), class_id));
            }
        }
        people.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for part in people.chunks(ROWS_PER_TX) {
            let mut tx = db.begin().await?;
            for rows in part.chunks(ROWS_PER_STATEMENT) {
                let sql = student_insert(rows.len(), db.backend());
                on_tx!(&mut tx, c => {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (id, name, eth, sid, grade, class_id) in rows {
                        let no = StudentNo::formal(id);
                        q = q.bind(no.as_str().to_string())
                            .bind(id.as_str().to_string())
                            .bind(name.clone())
                            .bind(id.gender().code().to_string())
                            .bind(id.birth_date())
                            .bind(eth.clone())
                            .bind(*sid)
                            .bind(grade.clone())
                            .bind(*class_id)
                            .bind(county.clone())
                            .bind(at)
                            .bind(at);
                    }
                    q.execute(&mut *c).await.map(|_| ())
                })?;
            }
            tx.commit().await?;
            written += part.len();
        }
        for (i, p) in people.iter().enumerate() {
            if i % 97 == 0 {
                sample_nos.push(StudentNo::formal(&p.0).as_str().to_string());
            }
        }
        if last_report.elapsed().as_secs() >= 10 {
            last_report = Instant::now();
            eprintln!(
                "  … {written} of {students} students written ({:.0} s)",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    // Number history and enrollments of the new students, in the database itself.
    eprintln!("  … number history and enrollments");
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO student_numbers (student_no, student_id, kind, assigned_at) \
         SELECT student_no, id, 'formal', created_at FROM students WHERE id > $1"
    ).bind(first_new).execute(&mut *c).await.map(|_| ()))?;
    on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at) \
         SELECT id, school_id, grade, class_id, 'active', created_at FROM students WHERE id > $1"
    ).bind(first_new).execute(&mut *c).await.map(|_| ()))?;
    tx.commit().await?;
    eprintln!(
        "  … building {} indexes again ({:.0} s)",
        dropped.len(),
        t0.elapsed().as_secs_f64()
    );
    restore_indexes(db, &dropped).await?;
    Ok(Province {
        students: written,
        schools,
        classes,
        load_secs: t0.elapsed().as_secs_f64(),
        sample_nos,
        school_codes: plan.into_iter().map(|p| p.0).collect(),
        counties,
    })
}

/// A multi-row INSERT of `n` students. SQLite gets anonymous `?` parameters: sqlx looks `$N` up by
/// name, a linear scan per parameter.
fn student_insert(n: usize, backend: Backend) -> String {
    const COLS: usize = 12;
    let values: Vec<String> = (0..n)
        .map(|i| {
            let p: Vec<String> = (1..=COLS)
                .map(|c| match backend {
                    Backend::Sqlite => "?".to_string(),
                    Backend::Postgres => format!("${}", i * COLS + c),
                })
                .collect();
            format!(
                "({}, '1', {}, {}, {}, {}, {}, 'enrolled', {}, {}, {}, {}, 0, {}, {})",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]
            )
        })
        .collect();
    format!(
        "INSERT INTO students (student_no, id_type, id_number, name, gender, birth_date, ethnicity, status, \
         school_id, grade, class_id, region_code, version, created_at, updated_at) VALUES {}",
        values.join(", ")
    )
}
