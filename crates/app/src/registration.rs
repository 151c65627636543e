//! 学籍注册: a school administrator registers one student; the Excel import (`import.rs`)
//! registers many through the same field rules.
//!
//! Every path validates the identity document the same way: for a 居民身份证 the GB 11643 check
//! digit, a birth date and gender that agree with the number, a region prefix that is a known
//! province; a birth date plausible for the grade; a class of the school in that grade with room.
//! 查重 (一人一籍) is nationwide: the same document anywhere is refused (`duplicate_person`, and
//! the unique key refuses it too); the same name + gender + birth date without a document match is
//! a suspected duplicate (疑似重复) that needs the caller's explicit confirmation, recorded in the
//! audit row and as an open problem record for people to decide.
//!
//! A new record is 在籍 (`enrolled`) with a temporary number `L` + the school's area code + birth
//! date + 4 random digits, and waits for the identity check (公安比对, `identity.rs`) that turns it
//! into a formal `G` number.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use serde::{Deserialize, Serialize};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{Gender, Grade, IdNumber, StudentNo, mask_document};
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditEvent};
use crate::auth::CurrentUser;
use crate::db::Tx;
use crate::error::{AppError, AppResult};
use crate::reference::SchoolOut;
use crate::students::StudentDetail;
use crate::{App, on_pool, on_tx};

/// The code of 居民身份证 in the 身份证件类型 table.
pub const RESIDENT_ID: &str = "1";

/// How many random 4-digit suffixes to try before giving up on a temporary number.
const TEMPORARY_NO_TRIES: usize = 50;

/// What a school administrator submits to register one student (学籍注册).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStudent {
    pub name: String,
    /// `male` / `female` (also `1` / `2`, 男 / 女).
    pub gender: String,
    /// `YYYY-MM-DD` (also `YYYY/MM/DD`, `YYYYMMDD`).
    pub birth_date: String,
    /// 民族 code, e.g. `01` 汉族 (the name is accepted too).
    pub ethnicity: String,
    /// 身份证件类型 code: `1` 居民身份证, `A` 护照, … (the name is accepted too).
    pub id_type: String,
    /// 证件号码.
    pub id_number: String,
    /// Grade code `11`–`33`.
    pub grade: String,
    /// A class of the caller's school in that grade.
    pub class_id: i64,
    /// Set after a `suspected_duplicate` refusal, when the school has checked that the student is
    /// not the person already on record.
    #[serde(default)]
    pub confirm_suspected: bool,
}

/// A registered student: the record as the detail shows it, and its identity check state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Registered {
    #[serde(flatten)]
    pub student: StudentDetail,
    /// `pending` (waiting for 公安比对), `passed`, `failed` or `not_applicable`.
    pub identity_status: String,
    /// Masked document numbers of the suspected duplicates the caller confirmed (疑似重复).
    pub suspected_confirmed: Vec<String>,
}

/// The fields of a student record, in the template's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Name,
    Gender,
    BirthDate,
    Ethnicity,
    IdType,
    IdNumber,
    Grade,
    Class,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::Name,
        Field::Gender,
        Field::BirthDate,
        Field::Ethnicity,
        Field::IdType,
        Field::IdNumber,
        Field::Grade,
        Field::Class,
    ];

    /// The API's field name.
    pub fn api_name(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Gender => "gender",
            Field::BirthDate => "birth_date",
            Field::Ethnicity => "ethnicity",
            Field::IdType => "id_type",
            Field::IdNumber => "id_number",
            Field::Grade => "grade",
            Field::Class => "class_id",
        }
    }

    /// The template's column header.
    pub fn header_zh(self) -> &'static str {
        match self {
            Field::Name => "姓名",
            Field::Gender => "性别",
            Field::BirthDate => "出生日期",
            Field::Ethnicity => "民族",
            Field::IdType => "证件类型",
            Field::IdNumber => "证件号码",
            Field::Grade => "年级",
            Field::Class => "班级",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A refusal of one field: its code (`validation_failed`, `invalid_id_number`, `class_full`,
/// `duplicate_person`, `suspected_duplicate`) and a Chinese message saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub code: ErrorCode,
    pub message: String,
}

impl FieldError {
    pub fn new(field: Field, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }

    fn invalid(field: Field, message: impl Into<String>) -> Self {
        Self::new(field, ErrorCode::ValidationFailed, message)
    }

    pub fn into_error(self) -> Error {
        Error::new(self.code, self.message).at(self.field.api_name())
    }
}

/// The code tables the field rules need, read once per registration or import.
#[derive(Debug, Clone, Default)]
pub struct Refs {
    ethnicities: Vec<(String, String)>,
    id_types: Vec<(String, String)>,
    provinces: HashSet<String>,
}

impl Refs {
    pub async fn load(app: &App) -> AppResult<Self> {
        let ethnicities: Vec<(String, String)> = on_pool!(app.db.read(), p => sqlx::query_as(
            "SELECT code, name FROM ethnicities ORDER BY code"
        ).fetch_all(p).await)?;
        let id_types: Vec<(String, String)> = on_pool!(app.db.read(), p => sqlx::query_as(
            "SELECT code, name FROM id_types ORDER BY code"
        ).fetch_all(p).await)?;
        let provinces: Vec<String> = on_pool!(app.db.read(), p => sqlx::query_scalar(
            "SELECT code FROM regions WHERE level = 'province'"
        ).fetch_all(p).await)?;
        Ok(Self {
            ethnicities,
            id_types,
            provinces: provinces.into_iter().map(|c| c[0..2].to_string()).collect(),
        })
    }

    pub fn ethnicities(&self) -> &[(String, String)] {
        &self.ethnicities
    }

    pub fn id_types(&self) -> &[(String, String)] {
        &self.id_types
    }

    /// A code table entry by code (`01`, `1` → `01`), name (`汉族`) or both (`01 汉族`).
    fn lookup(table: &[(String, String)], input: &str, pad: usize) -> Option<String> {
        let s = input.trim();
        let padded = if pad > 0 && s.len() < pad && s.bytes().all(|b| b.is_ascii_digit()) {
            format!("{s:0>pad$}")
        } else {
            s.to_ascii_uppercase()
        };
        table
            .iter()
            .find(|(code, name)| {
                *code == padded
                    || name == s
                    || s.strip_prefix(code.as_str())
                        .is_some_and(|rest| rest.trim_start_matches([' ', '-', '　']) == name)
            })
            .map(|(code, _)| code.clone())
    }

    pub fn ethnicity(&self, input: &str) -> Result<String, FieldError> {
        Self::lookup(&self.ethnicities, input, 2).ok_or_else(|| {
            FieldError::invalid(
                Field::Ethnicity,
                "民族不在代码表中：请从下拉列表中选择（如“汉族”），或填写两位民族代码（如01）",
            )
        })
    }

    pub fn id_type(&self, input: &str) -> Result<String, FieldError> {
        Self::lookup(&self.id_types, input, 0).ok_or_else(|| {
            FieldError::invalid(
                Field::IdType,
                "证件类型不在代码表中：请从下拉列表中选择（如“居民身份证”），或填写证件类型代码（如1）",
            )
        })
    }

    pub fn ethnicity_name(&self, code: &str) -> &str {
        self.ethnicities
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, n)| n.as_str())
            .unwrap_or("")
    }
}

pub fn check_name(input: &str) -> Result<String, FieldError> {
    let name = input.trim();
    if name.is_empty() {
        return Err(FieldError::invalid(
            Field::Name,
            "姓名不能为空：请填写学生姓名",
        ));
    }
    if name.chars().count() > 50 {
        return Err(FieldError::invalid(Field::Name, "姓名过长：不超过50个字"));
    }
    if name.chars().any(|c| c.is_control() || c.is_ascii_digit()) {
        return Err(FieldError::invalid(
            Field::Name,
            "姓名含有数字或不可见字符：请按证件上的姓名填写",
        ));
    }
    Ok(name.to_string())
}

pub fn parse_gender(input: &str) -> Result<Gender, FieldError> {
    Gender::parse(input)
        .ok_or_else(|| FieldError::invalid(Field::Gender, "性别应为“男”或“女”：请从下拉列表中选择"))
}

/// The accepted text forms of a date: `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYYMMDD`.
pub fn parse_date_text(input: &str) -> Option<NaiveDate> {
    let s = input.trim();
    let parsed = if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        NaiveDate::parse_from_str(s, "%Y%m%d").ok()
    } else if s.contains('-') {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
    } else if s.contains('/') {
        NaiveDate::parse_from_str(s, "%Y/%m/%d").ok()
    } else {
        None
    };
    parsed.filter(|d| d.year() >= 1900)
}

pub const DATE_FORMAT_HELP: &str = "出生日期格式不正确：请填写为YYYY-MM-DD（如2015-03-01）、YYYY/MM/DD或YYYYMMDD，或设为Excel日期格式";

pub fn parse_birth_date(input: &str) -> Result<NaiveDate, FieldError> {
    parse_date_text(input).ok_or_else(|| FieldError::invalid(Field::BirthDate, DATE_FORMAT_HELP))
}

/// A grade by code (`13`) or name (`三年级`).
pub fn parse_grade(input: &str) -> Result<Grade, FieldError> {
    let s = input.trim();
    Grade::parse(s)
        .ok()
        .or_else(|| Grade::ALL.into_iter().find(|g| g.label_zh() == s))
        .ok_or_else(|| {
            FieldError::invalid(
                Field::Grade,
                "年级无效：请从下拉列表中选择（如“三年级”），或填写年级代码（小学11–16，初中21–24，高中31–33）",
            )
        })
}

/// The school year a date falls in: September–December → that year, January–August → the
/// previous one.
pub fn school_year_of(date: NaiveDate) -> i32 {
    if date.month() >= 9 {
        date.year()
    } else {
        date.year() - 1
    }
}

/// Checks a document number for its type; a 居民身份证 also against the region table.
/// Answers the normalised number and, for a 居民身份证, the parsed number.
pub fn check_document(
    refs: &Refs,
    id_type: &str,
    input: &str,
) -> Result<(String, Option<IdNumber>), FieldError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(FieldError::invalid(
            Field::IdNumber,
            "证件号码不能为空：请按证件填写",
        ));
    }
    if id_type == RESIDENT_ID {
        let id = IdNumber::parse(s)
            .map_err(|e| FieldError::new(Field::IdNumber, ErrorCode::InvalidIdNumber, e.message))?;
        if !refs.provinces.contains(&id.as_str()[0..2]) {
            return Err(FieldError::new(
                Field::IdNumber,
                ErrorCode::InvalidIdNumber,
                "身份证号码的地区码不是已知的省级行政区划，请核对证件后重新填写",
            ));
        }
        return Ok((id.as_str().to_string(), Some(id)));
    }
    let n = s.chars().count();
    if !(5..=30).contains(&n)
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '(' || c == ')')
    {
        return Err(FieldError::invalid(
            Field::IdNumber,
            "证件号码应为5–30位字母、数字（可含“-”和括号）：请按证件填写",
        ));
    }
    Ok((s.to_ascii_uppercase(), None))
}

/// Cross-field rules: birth date and gender agree with a 居民身份证, the birth date is plausible
/// for the grade.
pub fn cross_check(
    id: Option<&IdNumber>,
    gender: Option<Gender>,
    birth: Option<NaiveDate>,
    grade: Option<Grade>,
    today: NaiveDate,
) -> Vec<FieldError> {
    let mut out = vec![];
    if let (Some(id), Some(b)) = (id, birth)
        && id.birth_date() != b
    {
        out.push(FieldError::invalid(
            Field::BirthDate,
            format!(
                "出生日期与身份证号码中的出生日期（{}）不一致：请核对出生日期或证件号码",
                id.birth_date()
            ),
        ));
    }
    if let (Some(id), Some(g)) = (id, gender)
        && id.gender() != g
    {
        out.push(FieldError::invalid(
            Field::Gender,
            format!(
                "性别与身份证号码（第17位表示{}）不一致：请核对性别或证件号码",
                id.gender().label_zh()
            ),
        ));
    }
    if let Some(b) = birth {
        if b > today {
            out.push(FieldError::invalid(
                Field::BirthDate,
                "出生日期晚于今天：请核对出生日期",
            ));
        } else if let Some(g) = grade
            && !g.fits_birth_date(b, school_year_of(today))
        {
            let year = school_year_of(today);
            out.push(FieldError::invalid(
                Field::BirthDate,
                format!(
                    "出生日期与年级不符：{year}学年{}学生一般为{}至{}岁（按9月1日计），请核对出生日期或年级",
                    g.label_zh(),
                    g.usual_age() - 2,
                    g.usual_age() + 4
                ),
            ));
        }
    }
    out
}

/// One person as validated, ready to be written.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub gender: Gender,
    pub birth_date: NaiveDate,
    pub ethnicity: String,
    pub id_type: String,
    pub id_number: String,
    pub grade: Grade,
    pub class_id: i64,
}

impl Person {
    /// `pending` for a 居民身份证 (the identity check applies), `not_applicable` otherwise.
    pub fn identity_status(&self) -> &'static str {
        if self.id_type == RESIDENT_ID {
            "pending"
        } else {
            "not_applicable"
        }
    }
}

/// A record already on file with the same name, gender and birth date (疑似重复).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SimilarRow {
    pub id: i64,
    pub name: String,
    pub gender: String,
    pub birth_date: NaiveDate,
    pub id_type: String,
    pub id_number: String,
}

/// Random 4-digit suffixes until a temporary number free in `student_numbers` (past numbers
/// included) is found; `taken` holds numbers already chosen in the same batch.
pub(crate) async fn free_temporary_numbers(
    tx: &mut Tx,
    area: &str,
    births: &[NaiveDate],
) -> AppResult<Vec<StudentNo>> {
    let mut chosen: Vec<Option<StudentNo>> = vec![None; births.len()];
    let mut taken: HashSet<String> = HashSet::new();
    for _ in 0..TEMPORARY_NO_TRIES {
        let open: Vec<usize> = (0..births.len()).filter(|&i| chosen[i].is_none()).collect();
        if open.is_empty() {
            break;
        }
        let mut candidates: Vec<(usize, StudentNo)> = vec![];
        {
            let mut rng = rand::rng();
            for i in open {
                let no = StudentNo::temporary(area, births[i], rng.random_range(0..10_000u16));
                if taken.insert(no.as_str().to_string()) {
                    candidates.push((i, no));
                }
            }
        }
        let mut existing: HashSet<String> = HashSet::new();
        for chunk in candidates.chunks(500) {
            let sql = format!(
                "SELECT student_no FROM student_numbers WHERE student_no IN ({})",
                placeholders(1, chunk.len())
            );
            let found: Vec<String> = on_tx!(tx, c => {
                let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()));
                for (_, no) in chunk {
                    q = q.bind(no.as_str().to_string());
                }
                q.fetch_all(&mut *c).await
            })?;
            existing.extend(found);
        }
        for (i, no) in candidates {
            if !existing.contains(no.as_str()) {
                chosen[i] = Some(no);
            }
        }
    }
    chosen
        .into_iter()
        .map(|c| c.ok_or_else(|| AppError::Other("no free temporary student number".into())))
        .collect()
}

/// `$from, $from+1, …` — `n` placeholders.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn first(e: FieldError) -> AppError {
    AppError::from(e.into_error())
}

/// The audit row's picture of a new record: never the whole document number.
pub(crate) fn audit_after(p: &Person, no: &str, school: &str, status: &str) -> serde_json::Value {
    serde_json::json!({
        "student_no": no,
        "name": p.name,
        "gender": p.gender.code(),
        "birth_date": p.birth_date,
        "ethnicity": p.ethnicity,
        "id_type": p.id_type,
        "id_number_masked": mask_document(&p.id_number),
        "school": school,
        "grade": p.grade.code(),
        "class_id": p.class_id,
        "status": "enrolled",
        "identity_status": status,
    })
}

/// The message of a document already on record: nothing about the other school.
pub(crate) fn duplicate_message(same_school: bool) -> &'static str {
    if same_school {
        "该学生已在本校有学籍（一人一籍），请勿重复注册"
    } else {
        "该学生已在其他学校有学籍（一人一籍）：如需来本校就读，请办理转学"
    }
}

impl App {
    /// 学籍注册 of one student by the administrator of the caller's school. Validates every
    /// field, checks for duplicates nationwide, and writes the record, its temporary number, its
    /// enrollment and the audit row in one transaction.
    pub async fn register_student(
        &self,
        user: &CurrentUser,
        req: &NewStudent,
    ) -> AppResult<Registered> {
        let OrgRef::School(code) = &user.org else {
            return Err(Error::forbidden("学籍注册须由学校的学籍管理员办理").into());
        };
        if user.role != Role::SchoolAdmin {
            return Err(Error::forbidden("学籍注册须由学校的学籍管理员办理").into());
        }
        let school = self
            .school_unscoped(code)
            .await?
            .ok_or_else(|| Error::not_found("本校"))?;
        let refs = Refs::load(self).await?;
        let name = check_name(&req.name).map_err(first)?;
        let gender = parse_gender(&req.gender).map_err(first)?;
        let birth = parse_birth_date(&req.birth_date).map_err(first)?;
        let ethnicity = refs.ethnicity(&req.ethnicity).map_err(first)?;
        let id_type = refs.id_type(&req.id_type).map_err(first)?;
        let (id_number, id) = check_document(&refs, &id_type, &req.id_number).map_err(first)?;
        let grade = parse_grade(&req.grade).map_err(first)?;
        if let Some(e) = cross_check(
            id.as_ref(),
            Some(gender),
            Some(birth),
            Some(grade),
            self.clock.today(),
        )
        .into_iter()
        .next()
        {
            return Err(e.into_error().into());
        }
        if !school.grades.contains(&grade.code()) {
            return Err(Error::validation(
                "grade",
                format!("本校不设{}，请核对年级", grade.label_zh()),
            )
            .into());
        }
        let class: Option<(String, i64, i64)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT c.grade, c.capacity, (SELECT COUNT(*) FROM students s WHERE s.school_id = c.school_id \
             AND s.grade = c.grade AND s.class_id = c.id) \
             FROM classes c WHERE c.id = $1 AND c.school_id = $2"
        ).bind(req.class_id).bind(school.id).fetch_optional(p).await)?;
        let Some((class_grade, capacity, enrolled)) = class else {
            return Err(Error::validation("class_id", "所选班级不是本校的班级，请重新选择").into());
        };
        if class_grade != grade.code() {
            return Err(Error::validation("class_id", "所选班级不属于所填年级，请重新选择").into());
        }
        if enrolled >= capacity {
            return Err(Error::new(
                ErrorCode::ClassFull,
                format!("所选班级已满（{enrolled}/{capacity}人），请选择其他班级"),
            )
            .at("class_id")
            .into());
        }
        let person = Person {
            name,
            gender,
            birth_date: birth,
            ethnicity,
            id_type,
            id_number,
            grade,
            class_id: req.class_id,
        };
        // 查重: the same document anywhere.
        let holder: Option<Option<i64>> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT school_id FROM students WHERE id_type = $1 AND id_number = $2"
        ).bind(&person.id_type).bind(&person.id_number).fetch_optional(p).await)?;
        if let Some(holder_school) = holder {
            return Err(Error::new(
                ErrorCode::DuplicatePerson,
                duplicate_message(holder_school == Some(school.id)),
            )
            .at("id_number")
            .into());
        }
        // 疑似重复: the same name, gender and birth date without a document match.
        let similar: Vec<SimilarRow> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, name, gender, birth_date, id_type, id_number FROM students \
             WHERE name = $1 AND gender = $2 AND birth_date = $3 ORDER BY id LIMIT 20"
        ).bind(&person.name).bind(person.gender.code()).bind(person.birth_date).fetch_all(p).await)?;
        let masked: Vec<String> = similar
            .iter()
            .map(|s| mask_document(&s.id_number))
            .collect();
        if !similar.is_empty() && !req.confirm_suspected {
            return Err(Error::new(
                ErrorCode::SuspectedDuplicate,
                format!(
                    "疑似重复：系统中已有{}条同姓名、同性别、同出生日期的学籍（证件号码 {}）。请核实；如确认不是同一人，请勾选“确认不是同一人”后重新提交",
                    similar.len(),
                    masked.join("、")
                ),
            )
            .at("name")
            .into());
        }
        let now = self.clock.now();
        let status = person.identity_status();
        let mut tx = self.db.begin().await?;
        let no = free_temporary_numbers(&mut tx, &school.region, &[person.birth_date])
            .await?
            .remove(0);
        let inserted = on_tx!(&mut tx, c => sqlx::query_scalar::<_, i64>(
            "INSERT INTO students (student_no, id_type, id_number, name, gender, birth_date, ethnicity, status, \
             school_id, grade, class_id, region_code, version, created_at, updated_at, identity_status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'enrolled', $8, $9, $10, $11, 0, $12, $12, $13) RETURNING id"
        ).bind(no.as_str()).bind(&person.id_type).bind(&person.id_number).bind(&person.name)
        .bind(person.gender.code()).bind(person.birth_date).bind(&person.ethnicity).bind(school.id)
        .bind(person.grade.code()).bind(person.class_id).bind(&school.region).bind(now).bind(status)
        .fetch_one(&mut *c).await);
        let student_id = match inserted {
            Ok(id) => id,
            Err(e) => {
                let e = AppError::from(e);
                if e.is_unique_violation() {
                    // Registered meanwhile by someone else: the unique key is the last word.
                    return Err(
                        Error::new(ErrorCode::DuplicatePerson, duplicate_message(false))
                            .at("id_number")
                            .into(),
                    );
                }
                return Err(e);
            }
        };
        on_tx!(&mut tx, c => {
            sqlx::query("INSERT INTO student_numbers (student_no, student_id, kind, assigned_at) VALUES ($1, $2, 'temporary', $3)")
                .bind(no.as_str()).bind(student_id).bind(now).execute(&mut *c).await?;
            sqlx::query(
                "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at) \
                 VALUES ($1, $2, $3, $4, 'active', $5)",
            ).bind(student_id).bind(school.id).bind(person.grade.code()).bind(person.class_id).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected())?
        });
        for s in &similar {
            record_suspected(&mut tx, student_id, s, now).await?;
        }
        let mut after = audit_after(&person, no.as_str(), &school.code, status);
        if !similar.is_empty() {
            after["suspected_duplicates_confirmed"] = serde_json::json!(masked);
            after["confirm_suspected"] = serde_json::json!(true);
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "student.register",
                entity_type: "student",
                entity_id: no.as_str().to_string(),
                before: None,
                after: Some(after),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        let student = self.student(user, no.as_str()).await?;
        Ok(Registered {
            student,
            identity_status: status.to_string(),
            suspected_confirmed: masked,
        })
    }

    /// The school a caller may register or import students into: only its own school's
    /// administrator.
    pub(crate) async fn own_school_for_records(
        &self,
        user: &CurrentUser,
        code: &str,
    ) -> AppResult<SchoolOut> {
        let school = self.school(user, code).await?;
        let own = matches!(&user.org, OrgRef::School(c) if *c == school.code);
        if !own || user.role != Role::SchoolAdmin {
            return Err(Error::forbidden("学籍注册和导入须由本校的学籍管理员办理").into());
        }
        Ok(school)
    }

    /// The classes of a school keyed for the import: (grade code, class name) → (id, capacity,
    /// students now).
    pub(crate) async fn class_table(
        &self,
        school_id: i64,
    ) -> AppResult<HashMap<(String, String), (i64, i64, i64)>> {
        Ok(self
            .classes_of(school_id)
            .await?
            .into_iter()
            .map(|c| ((c.grade, c.name), (c.id, c.capacity, c.enrolled)))
            .collect())
    }
}

/// Opens a 疑似重复 problem record for a new record confirmed by its school.
pub(crate) async fn record_suspected(
    tx: &mut Tx,
    student_id: i64,
    other: &SimilarRow,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    let detail = format!(
        "疑似重复：与已有学籍同姓名（{}）、同性别、同出生日期（{}），证件号码 {}；注册时学校已确认不是同一人",
        other.name,
        other.birth_date,
        mask_document(&other.id_number)
    );
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO problem_records (student_id, kind, status, detail, related_student_id, created_at) \
         VALUES ($1, 'suspected_duplicate', 'open', $2, $3, $4)"
    ).bind(student_id).bind(&detail).bind(other.id).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn dates_in_three_text_forms() {
        for s in [
            "2015-03-01",
            "2015/03/01",
            "20150301",
            "2015-3-1",
            " 2015/3/1 ",
        ] {
            assert_eq!(parse_date_text(s), Some(d(2015, 3, 1)), "{s}");
        }
        for s in [
            "2015.03.01",
            "01/03/2015",
            "2015-02-30",
            "",
            "42064",
            "2015年3月1日",
        ] {
            assert_eq!(parse_date_text(s), None, "{s}");
        }
    }

    #[test]
    fn school_years_switch_in_september() {
        assert_eq!(school_year_of(d(2026, 11, 2)), 2026);
        assert_eq!(school_year_of(d(2027, 8, 31)), 2026);
        assert_eq!(school_year_of(d(2027, 9, 1)), 2027);
    }

    #[test]
    fn code_tables_take_codes_names_and_both() {
        let refs = Refs {
            ethnicities: vec![("01".into(), "汉族".into()), ("03".into(), "回族".into())],
            id_types: vec![
                ("1".into(), "居民身份证".into()),
                ("A".into(), "护照".into()),
            ],
            provinces: HashSet::from(["41".to_string()]),
        };
        assert_eq!(refs.ethnicity("01").unwrap(), "01");
        assert_eq!(refs.ethnicity("1").unwrap(), "01");
        assert_eq!(refs.ethnicity("回族").unwrap(), "03");
        assert_eq!(refs.ethnicity("03 回族").unwrap(), "03");
        assert!(refs.ethnicity("火星族").is_err());
        assert_eq!(refs.id_type("a").unwrap(), "A");
        assert_eq!(refs.id_type("居民身份证").unwrap(), "1");
        let id = IdNumber::from_parts("410105", d(2018, 3, 1), 11);
        assert!(check_document(&refs, "1", id.as_str()).is_ok());
        let other = IdNumber::from_parts("440106", d(2018, 3, 1), 11);
        assert_eq!(
            check_document(&refs, "1", other.as_str()).unwrap_err().code,
            ErrorCode::InvalidIdNumber
        );
        assert_eq!(
            check_document(&refs, "A", "e1234567").unwrap().0,
            "E1234567"
        );
    }

    #[test]
    fn cross_checks_name_the_field_at_fault() {
        let id = IdNumber::from_parts("410105", d(2018, 3, 1), 11);
        let today = d(2026, 11, 2);
        let g = Grade::parse("13").unwrap();
        assert!(
            cross_check(
                Some(&id),
                Some(Gender::Male),
                Some(d(2018, 3, 1)),
                Some(g),
                today
            )
            .is_empty()
        );
        let e = cross_check(
            Some(&id),
            Some(Gender::Female),
            Some(d(2018, 3, 2)),
            Some(g),
            today,
        );
        let fields: Vec<Field> = e.iter().map(|e| e.field).collect();
        assert_eq!(fields, [Field::BirthDate, Field::Gender]);
        let old = cross_check(None, None, Some(d(2008, 3, 1)), Some(g), today);
        assert_eq!(old.len(), 1);
        assert!(old[0].message.contains("年级"));
    }
}
