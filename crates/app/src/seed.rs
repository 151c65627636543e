//! Reference data (regions, authorities, code tables, the holiday calendar) and the
//! deterministic demo dataset of API.md. Both loads are idempotent.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use xueji_domain::calendar::{DayKind, WorkCalendar};
use xueji_domain::ids::{Grade, IdNumber, StudentNo};

use crate::audit::{self, AuditActor, AuditEvent};
use crate::auth::hash_password;
use crate::db::Tx;
use crate::error::AppResult;
use crate::{App, on_pool, on_tx};

const REGIONS_CSV: &str = include_str!("../../../data/regions.csv");
const ETHNICITIES_CSV: &str = include_str!("../../../data/ethnicities.csv");
const ID_TYPES_CSV: &str = include_str!("../../../data/id_types.csv");
const SURNAMES: &str = include_str!("../../../data/surnames.txt");
const GIVEN_CHARS: &str = include_str!("../../../data/given_chars.txt");

/// The password of every demo account (API.md).
pub const DEMO_PASSWORD: &str = "Demo@2026";

/// A value for a batched insert.
#[derive(Debug, Clone)]
pub enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Date(NaiveDate),
    Time(DateTime<Utc>),
    Bool(bool),
}

macro_rules! bind_vals {
    ($q:expr, $vals:expr) => {{
        let mut q = $q;
        for v in $vals {
            q = match v {
                Val::Text(s) => q.bind(s),
                Val::OptText(s) => q.bind(s),
                Val::Int(i) => q.bind(i),
                Val::OptInt(i) => q.bind(i),
                Val::Date(d) => q.bind(d),
                Val::Time(t) => q.bind(t),
                Val::Bool(b) => q.bind(b),
            };
        }
        q
    }};
}

/// Inserts rows in multi-row batches (`ON CONFLICT DO NOTHING`), fast on both backends.
pub async fn insert_rows(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Val>>,
) -> AppResult<()> {
    let per_batch = (30_000 / columns.len()).min(1000);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<Vec<Val>> = rows.by_ref().take(per_batch).collect();
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for (i, _) in batch.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..columns.len() {
                if j > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        let vals: Vec<Val> = batch.into_iter().flatten().collect();
        on_tx!(tx, c => bind_vals!(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), vals).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

fn csv_rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .skip(1)
        .map(|l| l.split(',').collect())
}

/// A parsed row of `data/regions.csv`.
pub struct RegionRow<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub level: &'a str,
    pub parent: Option<&'a str>,
}

pub fn regions_data() -> Vec<RegionRow<'static>> {
    csv_rows(REGIONS_CSV)
        .map(|r| RegionRow {
            code: r[0],
            name: r[1],
            level: r[2],
            parent: r.get(3).copied().filter(|p| !p.is_empty()),
        })
        .collect()
}

/// The name of a region's education authority (学籍主管部门).
pub fn authority_name(
    code: &str,
    name: &str,
    level: &str,
    province: &str,
    city: Option<&str>,
) -> String {
    let municipality = matches!(&code[0..2], "11" | "12" | "31" | "50");
    let grouping = |n: &str| {
        matches!(
            n,
            "市辖区" | "县" | "省直辖县级行政区划" | "自治区直辖县级行政区划"
        )
    };
    match level {
        "province" if municipality => format!("{name}教育委员会"),
        "province" if code == "660000" => "新疆生产建设兵团教育局".into(),
        "province" => format!("{name}教育厅"),
        "city" if grouping(name) => format!("{province}{name}教育主管部门"),
        "city" => format!("{name}教育局"),
        _ => {
            let prefix = city.filter(|c| !grouping(c)).unwrap_or(province);
            if municipality {
                format!("{prefix}{name}教育委员会")
            } else {
                format!("{prefix}{name}教育局")
            }
        }
    }
}

impl App {
    /// Loads regions, authorities, code tables and the holiday calendar.
    pub async fn load_reference_data(&self) -> AppResult<()> {
        let regions = regions_data();
        let name_of: std::collections::HashMap<&str, &str> =
            regions.iter().map(|r| (r.code, r.name)).collect();
        let mut tx = self.db.begin().await?;
        let region_rows = regions
            .iter()
            .map(|r| {
                vec![
                    Val::Text(r.code.into()),
                    Val::Text(r.name.into()),
                    Val::Text(r.level.into()),
                    Val::OptText(r.parent.map(Into::into)),
                    Val::Text(format!("{}0000", &r.code[0..2])),
                ]
            })
            .collect();
        insert_rows(
            &mut tx,
            "regions",
            &["code", "name", "level", "parent_code", "province_code"],
            region_rows,
        )
        .await?;
        let authority_rows = regions
            .iter()
            .map(|r| {
                let province = name_of
                    .get(format!("{}0000", &r.code[0..2]).as_str())
                    .copied()
                    .unwrap_or("");
                let city = if r.level == "county" {
                    r.parent.and_then(|p| name_of.get(p).copied())
                } else {
                    None
                };
                vec![
                    Val::Text(r.code.into()),
                    Val::Text(authority_name(r.code, r.name, r.level, province, city)),
                ]
            })
            .collect();
        insert_rows(
            &mut tx,
            "authorities",
            &["region_code", "name"],
            authority_rows,
        )
        .await?;
        let code_rows = |text: &str| {
            csv_rows(text)
                .map(|r| vec![Val::Text(r[0].into()), Val::Text(r[1].into())])
                .collect::<Vec<_>>()
        };
        insert_rows(
            &mut tx,
            "ethnicities",
            &["code", "name"],
            code_rows(ETHNICITIES_CSV),
        )
        .await?;
        insert_rows(
            &mut tx,
            "id_types",
            &["code", "name"],
            code_rows(ID_TYPES_CSV),
        )
        .await?;
        let holiday_rows = WorkCalendar::embedded()
            .entries()
            .into_iter()
            .map(|(d, k, n)| {
                let kind = if k == DayKind::Workday {
                    "workday"
                } else {
                    "holiday"
                };
                vec![Val::Date(d), Val::Text(kind.into()), Val::Text(n)]
            })
            .collect();
        insert_rows(&mut tx, "holidays", &["day", "kind", "name"], holiday_rows).await?;
        tx.commit().await?;
        self.reload_calendar().await
    }

    /// Whether the demo dataset is present.
    pub async fn has_demo_data(&self) -> AppResult<bool> {
        let n: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username = 'moe'")
            .fetch_one(p).await)?;
        Ok(n > 0)
    }

    /// Loads reference data and the demo dataset (idempotent: a second call changes nothing).
    pub async fn seed_demo(&self) -> AppResult<DemoSummary> {
        self.load_reference_data().await?;
        if self.has_demo_data().await? {
            return self.demo_summary().await;
        }
        let pw = tokio::task::spawn_blocking(|| hash_password(DEMO_PASSWORD))
            .await
            .map_err(|e| crate::AppError::Other(e.to_string()))??;
        let plan = DemoPlan::build();
        let mut tx = self.db.begin().await?;
        plan.write(&mut tx, &pw).await?;
        // The accounts count as created when the dataset is loaded, not on its fixed school-year
        // date: else the sealing job (six months unused) would seal every demo account of a demo
        // started half a year after that date, and API.md's login would fail.
        on_tx!(&mut tx, c => sqlx::query("UPDATE users SET created_at = $1")
            .bind(self.clock.now()).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        // API.md's demo login is the password alone: the demo accounts are exempt from the TOTP
        // second factor their roles must otherwise enrol (README, 账号安全).
        on_tx!(&mut tx, c => sqlx::query("UPDATE users SET totp_exempt = TRUE WHERE password_hash = $1")
            .bind(&pw).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        audit::record(
            &mut tx,
            self.clock.now(),
            &AuditActor::system("seed"),
            AuditEvent {
                action: "seed_demo",
                entity_type: "dataset",
                entity_id: "demo".into(),
                before: None,
                after: Some(serde_json::json!({ "schools": plan.schools.len(), "students": plan.students.len() })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.demo_summary().await
    }

    pub async fn demo_summary(&self) -> AppResult<DemoSummary> {
        let count = |sql: &'static str| async move {
            let n: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(sql).fetch_one(p).await)?;
            AppResult::Ok(n)
        };
        Ok(DemoSummary {
            regions: count("SELECT COUNT(*) FROM regions").await?,
            schools: count("SELECT COUNT(*) FROM schools").await?,
            students: count("SELECT COUNT(*) FROM students").await?,
            users: count("SELECT COUNT(*) FROM users").await?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSummary {
    pub regions: i64,
    pub schools: i64,
    pub students: i64,
    pub users: i64,
}

/// Counties of the demo dataset: (county code, city code). Two cities in 河南 so that transfers
/// between city-level authorities can be shown too.
pub const DEMO_COUNTIES: [&str; 7] = [
    "410105", "410102", "410302", "440106", "440304", "110108", "110105",
];

/// The demo school year: 2026–2027 (starting 1 September 2026).
const SCHOOL_YEAR: i32 = 2026;

/// A deterministic generator (SplitMix64): the demo dataset must be the same on every machine
/// and every version of every crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub struct DemoSchool {
    pub code: String,
    pub name: String,
    pub county: String,
    pub school_type: &'static str,
    pub grades: Vec<Grade>,
}

pub struct DemoStudent {
    pub school: usize,
    pub grade: Grade,
    pub class_no: usize,
    pub name: String,
    pub id: IdNumber,
    pub ethnicity: &'static str,
}

/// The whole demo dataset, computed before anything is written.
pub struct DemoPlan {
    pub schools: Vec<DemoSchool>,
    pub students: Vec<DemoStudent>,
}

pub const CLASSES_PER_GRADE: usize = 2;
pub const STUDENTS_PER_CLASS: usize = 4;

impl DemoPlan {
    pub fn build() -> Self {
        let names: std::collections::HashMap<&str, &str> =
            regions_data().iter().map(|r| (r.code, r.name)).collect();
        let surnames: Vec<&str> = SURNAMES
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let mut section = "";
        let (mut male_chars, mut female_chars, mut neutral_chars) = (vec![], vec![], vec![]);
        for l in GIVEN_CHARS.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(s) = l.strip_prefix('#') {
                section = s.trim();
                continue;
            }
            match section {
                s if s.starts_with("male") => male_chars.push(l),
                s if s.starts_with("female") => female_chars.push(l),
                s if s.starts_with("neutral") => neutral_chars.push(l),
                _ => {}
            }
        }
        let primary: Vec<Grade> = Grade::ALL.into_iter().filter(|g| g.number() < 20).collect();
        let junior: Vec<Grade> = Grade::ALL
            .into_iter()
            .filter(|g| (21..=23).contains(&g.number()))
            .collect();
        let mut schools = vec![];
        for county in DEMO_COUNTIES {
            let cname = names.get(county).copied().unwrap_or("");
            let both: Vec<Grade> = primary.iter().chain(junior.iter()).copied().collect();
            for (seq, (suffix, kind, grades)) in [
                ("第一小学", "小学", primary.clone()),
                ("实验学校", "九年一贯制学校", both),
                ("第一初级中学", "初级中学", junior.clone()),
            ]
            .into_iter()
            .enumerate()
            {
                schools.push(DemoSchool {
                    code: format!("{county}{:04}", seq + 1),
                    name: format!("{cname}{suffix}"),
                    county: county.to_string(),
                    school_type: kind,
                    grades,
                });
            }
        }
        let mut rng = Rng(20_260_901);
        let mut seen = HashSet::new();
        let mut students = vec![];
        let minorities = ["02", "03", "04", "05", "08", "09", "11", "15"];
        for (si, school) in schools.iter().enumerate() {
            for &grade in &school.grades {
                for class_no in 1..=CLASSES_PER_GRADE {
                    for _ in 0..STUDENTS_PER_CLASS {
                        let is_male = rng.below(2) == 0;
                        let age = grade.usual_age();
                        // Born between 2 Sep (SCHOOL_YEAR - age - 1) and 1 Sep (SCHOOL_YEAR - age).
                        let start =
                            NaiveDate::from_ymd_opt(SCHOOL_YEAR - age - 1, 9, 2).expect("date");
                        let birth = start + Duration::days(rng.below(365) as i64);
                        let id = loop {
                            let mut seq = rng.below(1000) as u16;
                            if (seq % 2 == 1) != is_male {
                                seq = (seq + 1) % 1000;
                            }
                            let id = IdNumber::from_parts(&school.county, birth, seq);
                            if seen.insert(id.clone()) {
                                break id;
                            }
                        };
                        let leaning = if is_male { &male_chars } else { &female_chars };
                        let surname = surnames[rng.below(surnames.len().min(60))];
                        let g1 = leaning[rng.below(leaning.len())];
                        let given = if rng.below(3) == 0 {
                            g1.to_string()
                        } else {
                            let second = if rng.below(2) == 0 {
                                &neutral_chars
                            } else {
                                leaning
                            };
                            format!("{g1}{}", second[rng.below(second.len())])
                        };
                        let ethnicity = if rng.below(20) == 0 {
                            minorities[rng.below(minorities.len())]
                        } else {
                            "01"
                        };
                        students.push(DemoStudent {
                            school: si,
                            grade,
                            class_no,
                            name: format!("{surname}{given}"),
                            id,
                            ethnicity,
                        });
                    }
                }
            }
        }
        Self { schools, students }
    }
}

impl DemoPlan {
    async fn write(&self, tx: &mut Tx, password_hash: &str) -> AppResult<()> {
        let at = Utc
            .with_ymd_and_hms(2026, 8, 31, 16, 0, 0)
            .single()
            .expect("time");
        let mut school_ids = vec![];
        let mut class_ids = std::collections::HashMap::new();
        for s in &self.schools {
            let grades: Vec<String> = s.grades.iter().map(|g| g.code()).collect();
            let id: i64 = on_tx!(tx, c => sqlx::query_scalar(
                "INSERT INTO schools (code, name, region_code, authority_region, school_type, grades, created_at) \
                 VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id"
            ).bind(&s.code).bind(&s.name).bind(&s.county).bind(s.school_type).bind(grades.join(","))
            .bind(at).fetch_one(&mut *c).await)?;
            for &g in &s.grades {
                for class_no in 1..=CLASSES_PER_GRADE {
                    let cid: i64 = on_tx!(tx, c => sqlx::query_scalar(
                        "INSERT INTO classes (school_id, grade, name, capacity) VALUES ($1, $2, $3, 45) RETURNING id"
                    ).bind(id).bind(g.code()).bind(format!("{}（{class_no}）班", g.label_zh()))
                    .fetch_one(&mut *c).await)?;
                    class_ids.insert((school_ids.len(), g, class_no), cid);
                }
            }
            school_ids.push(id);
        }
        for st in &self.students {
            let school_id = school_ids[st.school];
            let class_id = class_ids[&(st.school, st.grade, st.class_no)];
            let no = StudentNo::formal(&st.id);
            let county = &self.schools[st.school].county;
            let sid: i64 = on_tx!(tx, c => sqlx::query_scalar(
                "INSERT INTO students (student_no, id_type, id_number, name, gender, birth_date, ethnicity, status, \
                 school_id, grade, class_id, region_code, version, created_at, updated_at) \
                 VALUES ($1, '1', $2, $3, $4, $5, $6, 'enrolled', $7, $8, $9, $10, 0, $11, $11) RETURNING id"
            ).bind(no.as_str()).bind(st.id.as_str()).bind(&st.name).bind(st.id.gender().code())
            .bind(st.id.birth_date()).bind(st.ethnicity).bind(school_id).bind(st.grade.code()).bind(class_id)
            .bind(county).bind(at).fetch_one(&mut *c).await)?;
            on_tx!(tx, c => {
                sqlx::query("INSERT INTO student_numbers (student_no, student_id, kind, assigned_at) VALUES ($1, $2, 'formal', $3)")
                    .bind(no.as_str()).bind(sid).bind(at).execute(&mut *c).await?;
                sqlx::query(
                    "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at) \
                     VALUES ($1, $2, $3, $4, 'active', $5)",
                ).bind(sid).bind(school_id).bind(st.grade.code()).bind(class_id).bind(at).execute(&mut *c).await.map(|r| r.rows_affected())?
            });
        }
        let mut users = vec![vec![
            Val::Text("moe".into()),
            Val::Text(password_hash.into()),
            Val::Text("教育部全国学籍管理员".into()),
            Val::Text("national_admin".into()),
            Val::OptInt(None),
            Val::OptText(None),
            Val::Bool(false),
            Val::Time(at),
        ]];
        // 三员分立: the system, security and audit administrators (national level, no student
        // data). Like every demo account they are not forced to change the demo password.
        for (name, label, role) in [
            ("sysadmin", "系统管理员", "system_admin"),
            ("secadmin", "安全管理员", "security_admin"),
            ("auditor", "安全审计员", "audit_admin"),
        ] {
            users.push(vec![
                Val::Text(name.into()),
                Val::Text(password_hash.into()),
                Val::Text(label.into()),
                Val::Text(role.into()),
                Val::OptInt(None),
                Val::OptText(None),
                Val::Bool(false),
                Val::Time(at),
            ]);
        }
        for r in regions_data() {
            users.push(vec![
                Val::Text(format!("edu{}", r.code)),
                Val::Text(password_hash.into()),
                Val::Text(format!("{}学籍管理员", r.name)),
                Val::Text("authority_admin".into()),
                Val::OptInt(None),
                Val::OptText(Some(r.code.into())),
                Val::Bool(false),
                Val::Time(at),
            ]);
        }
        // A second account for each authority of the demo provinces, for provinces whose policy
        // asks a leader's confirmation (领导确认) after the operator: a different person.
        for r in regions_data()
            .iter()
            .filter(|r| matches!(&r.code[0..2], "41" | "44" | "11"))
        {
            users.push(vec![
                Val::Text(format!("edu{}-leader", r.code)),
                Val::Text(password_hash.into()),
                Val::Text(format!("{}学籍主管领导", r.name)),
                Val::Text("authority_admin".into()),
                Val::OptInt(None),
                Val::OptText(Some(r.code.into())),
                Val::Bool(false),
                Val::Time(at),
            ]);
        }
        for (i, s) in self.schools.iter().enumerate() {
            for (suffix, role, label) in [
                ("admin", "school_admin", "学籍管理员"),
                ("reviewer", "school_reviewer", "学籍主管领导"),
            ] {
                users.push(vec![
                    Val::Text(format!("{}-{suffix}", s.code)),
                    Val::Text(password_hash.into()),
                    Val::Text(format!("{}{label}", s.name)),
                    Val::Text(role.into()),
                    Val::OptInt(Some(school_ids[i])),
                    Val::OptText(None),
                    Val::Bool(false),
                    Val::Time(at),
                ]);
            }
        }
        insert_rows(
            tx,
            "users",
            &[
                "username",
                "password_hash",
                "display_name",
                "role",
                "school_id",
                "authority_region",
                "must_change_password",
                "created_at",
            ],
            users,
        )
        .await
    }
}
