//! Excel (.xlsx) import and export of student records (学籍注册的批量导入、学生名单导出).
//!
//! The template has the columns 姓名, 性别, 出生日期, 民族, 证件类型, 证件号码, 年级, 班级 with drop-down
//! lists for the coded ones. An import reads the file TWICE, streaming both times (bounded memory:
//! a calamine cell reader on a blocking thread feeds rows through a bounded channel):
//!
//! 1. validation: every row through the same field rules as a single registration
//!    (`registration.rs`), plus what only a file has — formula cells, merged cells, duplicates
//!    within the file (the same document; the same name + gender + birth date as an earlier row
//!    is a 疑似重复 unless confirmed) — and the database 查重, in chunks; the answer is a row-by-row
//!    report.
//! 2. only when the caller asks to commit: the rows found valid, in batches, each batch in one
//!    transaction with its records, temporary numbers, enrollments and audit rows.
//!
//! What pass 1 keeps is proportional to the number of rows, not to their content: the set of
//! invalid row numbers, one entry per identity document and per valid person seen (for duplicates
//! within the file), and the report's errors (capped at [`MAX_REPORTED_ERRORS`]).

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read, Seek};
use std::num::NonZeroI64;
use std::path::PathBuf;
use std::sync::Arc;

use calamine::{DataRef, Dimensions, Reader, Xlsx};
use chrono::{DateTime, NaiveDate, Utc};
use rust_xlsxwriter::{DataValidation, Format, Formula, Workbook, XlsxError};
use serde::Serialize;
use tokio::sync::mpsc;
use xueji_domain::ids::{Grade, mask_document};
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditActor, AuditEvent, BatchEvent, values_list};
use crate::auth::CurrentUser;
use crate::db::{Backend, Tx};
use crate::error::{AppError, AppResult};
use crate::reference::{ClassOut, SchoolOut};
use crate::registration::{
    DATE_FORMAT_HELP, Field, FieldError, Person, RESIDENT_ID, Refs, SimilarRow, check_document,
    check_name, cross_check, duplicate_message, parse_date_text, parse_gender, parse_grade,
    placeholders, record_suspected,
};
use crate::students::{StudentFilter, status_label_zh};
use crate::{App, on_pool, on_tx};

/// The template's columns, in order.
pub const HEADERS: [&str; 8] = [
    "姓名",
    "性别",
    "出生日期",
    "民族",
    "证件类型",
    "证件号码",
    "年级",
    "班级",
];

/// The MIME type of .xlsx files.
pub const XLSX_MIME: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Rows checked against the database per query, and written per transaction.
pub const CHUNK_ROWS: usize = 500;

/// At most this many errors are listed in a report (all are counted).
pub const MAX_REPORTED_ERRORS: usize = 100_000;

/// Rows the template's drop-down lists cover.
const TEMPLATE_ROWS: u32 = 100_000;

/// Most students one export holds.
pub const MAX_EXPORT_ROWS: i64 = 200_000;

fn xlsx_err(e: XlsxError) -> AppError {
    AppError::Other(format!("xlsx: {e}"))
}

/// The file to import: a path (the CLI) or the bytes of an upload (the API).
#[derive(Clone)]
pub enum XlsxSource {
    Path(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

impl XlsxSource {
    fn open(&self) -> Result<Box<dyn ReadSeek>, String> {
        Ok(match self {
            XlsxSource::Path(p) => Box::new(std::io::BufReader::new(
                std::fs::File::open(p).map_err(|e| format!("无法打开文件：{e}"))?,
            )),
            XlsxSource::Bytes(b) => Box::new(Cursor::new(SharedBytes(b.clone()))),
        })
    }
}

/// When an import writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Validate only (the API's `commit=false`).
    Never,
    /// Write when every row is valid, nothing otherwise (the CLI without `--commit-valid`).
    IfAllValid,
    /// Write the valid rows, whatever the others (`commit=true`, `--commit-valid`).
    ValidRows,
}

#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    pub commit: Commit,
    /// Rows that only look like a record on file (疑似重复) are written too, each with an open
    /// problem record, instead of being refused.
    pub confirm_suspected: bool,
}

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    Validating,
    Writing,
}

#[derive(Debug, Clone, Copy)]
pub struct ImportProgress {
    pub phase: ImportPhase,
    /// Rows validated (or written) so far.
    pub done: u64,
    /// Rows in the file (validating: the sheet's declared size, an estimate; writing: the valid
    /// rows).
    pub total: u64,
}

/// One problem of one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportError {
    /// The row as Excel numbers it (the header is row 1).
    pub row: u32,
    /// The column's header, e.g. 证件号码.
    pub column: String,
    /// The cell, e.g. `F12`.
    pub cell: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The row-by-row answer of an import.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Data rows in the file (empty rows are not counted).
    pub rows: u64,
    pub valid: u64,
    pub invalid: u64,
    /// Students written (0 unless the caller asked to commit).
    pub written: u64,
    /// Whether rows were written.
    pub committed: bool,
    /// Errors by row and column (at most 100,000 listed).
    pub errors: Vec<ImportError>,
    /// All errors found, also those beyond the list.
    pub errors_total: u64,
    /// Temporary student numbers given, in file order (at most 1,000 listed).
    pub student_nos: Vec<String>,
}

/// A cell as the import sees it.
#[derive(Debug, Clone, PartialEq, Default)]
enum RawCell {
    #[default]
    Empty,
    Text(String),
    Number(f64),
    Date(NaiveDate),
    /// A formula: refused.
    Formula,
    /// The leftmost cell of a merged range in this row: refused, with the range.
    Merged(String),
    /// Another cell of a merged range: already reported.
    Covered,
    /// An error value, logical value or duration.
    Bad(&'static str),
}

#[derive(Debug)]
struct RawRow {
    /// 0-based sheet row.
    row: u32,
    cells: [RawCell; 8],
}

enum Msg {
    /// The sheet's column of each field, and the sheet's declared last row.
    Header {
        columns: [u32; 8],
        last_row: u32,
    },
    Row(Box<RawRow>),
    /// The file cannot be read as a template.
    Fatal(String),
}

/// `A`, `B`, …, `AA` for a 0-based column.
pub fn column_letter(mut col: u32) -> String {
    let mut s = vec![];
    loop {
        s.push((b'A' + (col % 26) as u8) as char);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    s.iter().rev().collect()
}

fn range_name(d: &Dimensions) -> String {
    format!(
        "{}{}:{}{}",
        column_letter(d.start.1),
        d.start.0 + 1,
        column_letter(d.end.1),
        d.end.0 + 1
    )
}

fn convert(v: &DataRef<'_>) -> RawCell {
    let text = |s: &str| {
        let t = s.trim();
        if t.is_empty() {
            RawCell::Empty
        } else {
            RawCell::Text(t.to_string())
        }
    };
    match v {
        DataRef::Empty => RawCell::Empty,
        DataRef::String(s) => text(s),
        DataRef::SharedString(s) => text(s),
        DataRef::Int(i) => RawCell::Number(*i as f64),
        DataRef::Float(f) => RawCell::Number(*f),
        DataRef::DateTime(dt) if dt.is_datetime() => match dt.as_datetime() {
            Some(t) => RawCell::Date(t.date()),
            None => RawCell::Bad("无法识别的日期"),
        },
        DataRef::DateTime(_) | DataRef::DurationIso(_) => RawCell::Bad("时长"),
        DataRef::DateTimeIso(s) => match s
            .get(0..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        {
            Some(d) => RawCell::Date(d),
            None => text(s),
        },
        DataRef::Bool(_) => RawCell::Bad("逻辑值（TRUE/FALSE）"),
        DataRef::Error(_) => RawCell::Bad("错误值（如#N/A、#VALUE!）"),
    }
}

/// Streams the first worksheet (or the one named 学生信息) row by row into `out`. Runs on a
/// blocking thread; stops early when the receiver is gone.
fn read_sheet(source: &XlsxSource, out: &mpsc::Sender<Msg>) -> Result<(), String> {
    let reader = source.open()?;
    let mut wb: Xlsx<Box<dyn ReadSeek>> = Xlsx::new(reader).map_err(|_| {
        "文件不是有效的Excel（.xlsx）文件：请使用下载的模板填写，并另存为.xlsx格式".to_string()
    })?;
    let names = wb.sheet_names();
    let sheet = names
        .iter()
        .find(|n| n.as_str() == "学生信息")
        .or_else(|| names.first())
        .cloned()
        .ok_or_else(|| "文件中没有工作表".to_string())?;
    let mut merges = wb
        .merge_cells_by_sheet_name(&sheet)
        .map_err(|e| format!("无法读取工作表“{sheet}”：{e}"))?;
    merges.sort_by_key(|d| d.start.0);
    let mut cells = wb
        .worksheet_cells_reader(&sheet)
        .map_err(|e| format!("无法读取工作表“{sheet}”：{e}"))?;
    let last_row = cells.dimensions().end.0;
    let mut columns: Option<[u32; 8]> = None;
    let mut current: Option<u32> = None;
    let mut row_cells: Vec<(u32, RawCell)> = vec![];
    let mut next_merge = 0usize;
    let mut active: Vec<(Dimensions, String)> = vec![];

    // Finishes one sheet row: the header, or a data row mapped to the template's columns.
    let mut finish = |row: u32,
                      row_cells: &mut Vec<(u32, RawCell)>,
                      columns: &mut Option<[u32; 8]>|
     -> Result<bool, String> {
        let cells = std::mem::take(row_cells);
        if cells.iter().all(|(_, c)| *c == RawCell::Empty) {
            return Ok(true);
        }
        let Some(cols) = columns else {
            // The first non-empty row is the header.
            let text = |c: &RawCell| match c {
                RawCell::Text(s) => s.replace(['*', '＊', ' '], ""),
                _ => String::new(),
            };
            let mut found = [u32::MAX; 8];
            for (col, c) in &cells {
                if let Some(i) = HEADERS.iter().position(|h| *h == text(c)) {
                    found[i] = *col;
                }
            }
            let missing: Vec<&str> = HEADERS
                .iter()
                .zip(found)
                .filter(|(_, c)| *c == u32::MAX)
                .map(|(h, _)| *h)
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "第{}行应为模板的表头，缺少列：{}。请使用下载的模板填写",
                    row + 1,
                    missing.join("、")
                ));
            }
            *columns = Some(found);
            return Ok(out
                .blocking_send(Msg::Header {
                    columns: found,
                    last_row,
                })
                .is_ok());
        };
        let mut mapped: [RawCell; 8] = Default::default();
        for (col, c) in cells {
            if let Some(i) = cols.iter().position(|&x| x == col) {
                mapped[i] = c;
            }
        }
        while next_merge < merges.len() && merges[next_merge].start.0 <= row {
            let d = merges[next_merge];
            active.push((d, range_name(&d)));
            next_merge += 1;
        }
        active.retain(|(d, _)| d.end.0 >= row);
        for (d, name) in &active {
            let mut first = true;
            let mut in_range: Vec<(u32, usize)> = cols
                .iter()
                .enumerate()
                .filter(|(_, c)| **c >= d.start.1 && **c <= d.end.1)
                .map(|(i, c)| (*c, i))
                .collect();
            in_range.sort();
            for (_, i) in in_range {
                mapped[i] = if first {
                    RawCell::Merged(name.clone())
                } else {
                    RawCell::Covered
                };
                first = false;
            }
        }
        Ok(out
            .blocking_send(Msg::Row(Box::new(RawRow { row, cells: mapped })))
            .is_ok())
    };

    loop {
        let rec = cells
            .next_cell_with_formula_metadata()
            .map_err(|e| format!("读取文件出错：{e}"))?;
        let Some(rec) = rec else { break };
        let (r, c) = rec.pos;
        if current != Some(r) {
            if let Some(prev) = current
                && !finish(prev, &mut row_cells, &mut columns)?
            {
                return Ok(());
            }
            current = Some(r);
        }
        // Any formula (plain, or an anchor or member of a shared one) is refused.
        let cell = match rec.formula {
            Some(_) => RawCell::Formula,
            None => convert(&rec.value),
        };
        row_cells.push((c, cell));
    }
    if let Some(prev) = current
        && !finish(prev, &mut row_cells, &mut columns)?
    {
        return Ok(());
    }
    if columns.is_none() {
        return Err("文件是空的：请在模板第2行起逐行填写学生信息".into());
    }
    Ok(())
}

/// Starts the reader thread for one pass over the file.
fn start_reader(source: XlsxSource) -> mpsc::Receiver<Msg> {
    let (tx, rx) = mpsc::channel(CHUNK_ROWS * 2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = read_sheet(&source, &tx) {
            let _ = tx.blocking_send(Msg::Fatal(e));
        }
    });
    rx
}

/// The school and code tables an import checks rows against.
struct Context {
    refs: Refs,
    school: SchoolOut,
    /// (grade code, class name) → (class id, capacity, students now).
    classes: HashMap<(String, String), (i64, i64, i64)>,
    /// Class names → the grades that have a class of that name.
    class_grades: HashMap<String, Vec<String>>,
    today: NaiveDate,
}

impl Context {
    async fn load(app: &App, school: SchoolOut) -> AppResult<Self> {
        let refs = Refs::load(app).await?;
        let classes = app.class_table(school.id).await?;
        let mut class_grades: HashMap<String, Vec<String>> = HashMap::new();
        for (grade, name) in classes.keys() {
            class_grades
                .entry(name.clone())
                .or_default()
                .push(grade.clone());
        }
        Ok(Self {
            refs,
            school,
            classes,
            class_grades,
            today: app.clock.today(),
        })
    }
}

/// One data row after the pure field rules.
struct Parsed {
    row: u32,
    errors: Vec<FieldError>,
    /// The identity document, when it parsed (for duplicates within the file and 查重).
    doc: Option<(String, String)>,
    person: Option<Person>,
}

impl Parsed {
    fn add(&mut self, e: FieldError) {
        // One problem per cell: the first found.
        if !self.errors.iter().any(|x| x.field == e.field) {
            self.errors.push(e);
        }
    }
}

fn invalid(field: Field, message: impl Into<String>) -> FieldError {
    FieldError::new(field, ErrorCode::ValidationFailed, message)
}

fn empty_help(field: Field) -> &'static str {
    match field {
        Field::Name => "请填写学生姓名",
        Field::Gender => "请从下拉列表中选择“男”或“女”",
        Field::BirthDate => "请填写出生日期，如2015-03-01",
        Field::Ethnicity => "请从下拉列表中选择民族",
        Field::IdType => "请从下拉列表中选择证件类型",
        Field::IdNumber => "请按证件填写证件号码",
        Field::Grade => "请从下拉列表中选择年级",
        Field::Class => "请从下拉列表中选择班级",
    }
}

/// The text of a cell for `field`; `Err(None)` when the cell's problem is already reported.
fn cell_text(
    field: Field,
    cell: &RawCell,
    resident_id: bool,
) -> Result<String, Option<FieldError>> {
    match cell {
        RawCell::Empty => Err(Some(invalid(
            field,
            format!("{}不能为空：{}", field.header_zh(), empty_help(field)),
        ))),
        RawCell::Text(s) => Ok(s.clone()),
        RawCell::Number(f) => {
            if field == Field::IdNumber && (resident_id || f.abs() >= 1e15) {
                return Err(Some(invalid(
                    field,
                    "证件号码被存成了数字，末几位可能已丢失：请把该列设为“文本”格式后重新填写证件号码",
                )));
            }
            if f.fract() == 0.0 && f.abs() < 1e15 {
                Ok(format!("{}", *f as i64))
            } else {
                Ok(f.to_string())
            }
        }
        RawCell::Date(d) => Ok(d.format("%Y-%m-%d").to_string()),
        RawCell::Formula => Err(Some(invalid(
            field,
            "该单元格是公式：请复制后用“选择性粘贴 → 数值”粘贴为数值，再导入",
        ))),
        RawCell::Merged(range) => Err(Some(invalid(
            field,
            format!("该单元格属于合并单元格（{range}）：请取消合并，每行每列分别填写"),
        ))),
        RawCell::Covered => Err(None),
        RawCell::Bad(what) => Err(Some(invalid(
            field,
            format!("该单元格是{what}：请改为{}的文字", field.header_zh()),
        ))),
    }
}

/// Applies the pure field rules to one row (no database).
fn parse_row(ctx: &Context, raw: &RawRow) -> Parsed {
    let mut p = Parsed {
        row: raw.row,
        errors: vec![],
        doc: None,
        person: None,
    };
    let cell = |f: Field| &raw.cells[f.index()];
    let resident_hint = match cell(Field::IdType) {
        RawCell::Text(s) => ctx
            .refs
            .id_type(s)
            .map(|c| c == RESIDENT_ID)
            .unwrap_or(false),
        RawCell::Number(n) => *n == 1.0,
        _ => false,
    };
    let text = |p: &mut Parsed, f: Field| match cell_text(f, cell(f), resident_hint) {
        Ok(s) => Some(s),
        Err(Some(e)) => {
            p.add(e);
            None
        }
        Err(None) => None,
    };
    let name = text(&mut p, Field::Name).and_then(|s| check_name(&s).map_err(|e| p.add(e)).ok());
    let gender =
        text(&mut p, Field::Gender).and_then(|s| parse_gender(&s).map_err(|e| p.add(e)).ok());
    let birth: Option<NaiveDate> = match cell(Field::BirthDate) {
        RawCell::Date(d) => Some(*d),
        RawCell::Number(n) if n.fract() == 0.0 && (19_000_101.0..=21_001_231.0).contains(n) => {
            let d = parse_date_text(&format!("{}", *n as i64));
            if d.is_none() {
                p.add(invalid(Field::BirthDate, DATE_FORMAT_HELP));
            }
            d
        }
        RawCell::Number(_) => {
            p.add(invalid(Field::BirthDate, DATE_FORMAT_HELP));
            None
        }
        _ => text(&mut p, Field::BirthDate).and_then(|s| {
            let d = parse_date_text(&s);
            if d.is_none() {
                p.add(invalid(Field::BirthDate, DATE_FORMAT_HELP));
            }
            d
        }),
    };
    let ethnicity = text(&mut p, Field::Ethnicity)
        .and_then(|s| ctx.refs.ethnicity(&s).map_err(|e| p.add(e)).ok());
    let id_type =
        text(&mut p, Field::IdType).and_then(|s| ctx.refs.id_type(&s).map_err(|e| p.add(e)).ok());
    let id_text = text(&mut p, Field::IdNumber);
    let (mut id_number, mut id) = (None, None);
    if let (Some(t), Some(s)) = (&id_type, &id_text) {
        match check_document(&ctx.refs, t, s) {
            Ok((n, parsed)) => {
                p.doc = Some((t.clone(), n.clone()));
                id_number = Some(n);
                id = parsed;
            }
            Err(e) => p.add(e),
        }
    }
    let grade = text(&mut p, Field::Grade).and_then(|s| parse_grade(&s).map_err(|e| p.add(e)).ok());
    let grade = grade.and_then(|g| {
        if ctx.school.grades.contains(&g.code()) {
            Some(g)
        } else {
            p.add(invalid(
                Field::Grade,
                format!("本校不设{}：请从下拉列表中选择本校的年级", g.label_zh()),
            ));
            None
        }
    });
    let class_name = text(&mut p, Field::Class);
    let mut class_id = None;
    if let (Some(g), Some(c)) = (grade, &class_name) {
        match ctx.classes.get(&(g.code(), c.clone())) {
            Some((id, _, _)) => class_id = Some(*id),
            None if ctx.class_grades.contains_key(c) => p.add(invalid(
                Field::Class,
                format!(
                    "班级“{c}”不属于{}：请选择该年级的班级，或核对年级",
                    g.label_zh()
                ),
            )),
            None => p.add(invalid(
                Field::Class,
                format!("本校没有名为“{c}”的班级：请从下拉列表中选择本校的班级"),
            )),
        }
    } else if let (None, Some(c)) = (grade, &class_name)
        && !ctx.class_grades.contains_key(c)
    {
        p.add(invalid(
            Field::Class,
            format!("本校没有名为“{c}”的班级：请从下拉列表中选择本校的班级"),
        ));
    }
    for e in cross_check(id.as_ref(), gender, birth, grade, ctx.today) {
        p.add(e);
    }
    if p.errors.is_empty()
        && let (
            Some(name),
            Some(gender),
            Some(birth_date),
            Some(ethnicity),
            Some(id_type),
            Some(id_number),
            Some(grade),
            Some(class_id),
        ) = (
            name, gender, birth, ethnicity, id_type, id_number, grade, class_id,
        )
    {
        p.person = Some(Person {
            name,
            gender,
            birth_date,
            ethnicity,
            id_type,
            id_number,
            grade,
            class_id,
        });
    }
    p
}

/// The first row of a document seen in the file (16 bytes: a million of them are kept).
struct FirstSeen {
    row: u32,
    duplicate_reported: bool,
    /// The class whose place the row holds, while it is valid.
    class_id: Option<NonZeroI64>,
}

/// A document as the key of the per-file maps: type and number in one allocation, 16 bytes in
/// the table instead of the 48 of two `String`s (a million rows: ~100 MB less at the peak).
fn doc_key((kind, number): &(String, String)) -> Box<str> {
    format!("{kind}\u{1}{number}").into_boxed_str()
}

/// Pass 1: what it has learnt so far.
struct Validation {
    report: ImportReport,
    invalid_rows: HashSet<u32>,
    seen: HashMap<Box<str>, FirstSeen>,
    /// (name, gender, birth date) → the first valid row with it: a later row with another
    /// document is a suspected duplicate within the file (疑似重复).
    seen_person: HashMap<(Box<str>, &'static str, NaiveDate), u32>,
    /// Class id → students it would hold (now + valid rows so far).
    load: HashMap<i64, i64>,
    columns: [u32; 8],
    /// A row of an earlier chunk turned out invalid (its document appears again later): what was
    /// written while validating is not the set of valid rows any more.
    retro: bool,
}

impl Validation {
    fn push_error(&mut self, row: u32, e: &FieldError) {
        self.report.errors_total += 1;
        if self.report.errors.len() < MAX_REPORTED_ERRORS {
            let col = self.columns[e.field.index()];
            self.report.errors.push(ImportError {
                row: row + 1,
                column: e.field.header_zh().to_string(),
                cell: format!("{}{}", column_letter(col), row + 1),
                message: e.message.clone(),
            });
        }
    }
}

/// 查重 of a chunk against the database: the documents on record (with the holder's school), and
/// records with the same name + gender + birth date.
async fn on_record(
    app: &App,
    docs: &[(String, String)],
) -> AppResult<HashMap<(String, String), Option<i64>>> {
    let mut out = HashMap::new();
    for (id_type, numbers) in by_type(docs) {
        for chunk in numbers.chunks(CHUNK_ROWS) {
            let sql = held_sql(app.db.backend() == Backend::Sqlite, chunk.len());
            let rows: Vec<(String, String, Option<i64>)> = on_pool!(app.db.read(), p => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id_type.clone());
                for n in chunk {
                    q = q.bind(n.clone());
                }
                q.fetch_all(p).await
            })?;
            for (t, n, s) in rows {
                out.insert((t, n), s);
            }
        }
    }
    Ok(out)
}

/// Documents grouped by type (the unique index leads with the type).
fn by_type(docs: &[(String, String)]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (t, n) in docs {
        out.entry(t.clone()).or_default().push(n.clone());
    }
    out
}

/// `n` parameters from `$from` on (PostgreSQL), or `n` anonymous `?` (SQLite: sqlx resolves
/// `$N` by name, a linear scan in SQLite, so a statement of hundreds of `$N` costs their square).
fn params(sqlite: bool, from: usize, n: usize) -> String {
    if sqlite {
        vec!["?"; n].join(", ")
    } else {
        placeholders(from, n)
    }
}

/// The records holding documents of one type: the type, then the numbers.
fn held_sql(sqlite: bool, n: usize) -> String {
    format!(
        "SELECT id_type, id_number, school_id FROM students WHERE id_type = {} AND id_number IN ({})",
        if sqlite { "?" } else { "$1" },
        params(sqlite, 2, n)
    )
}

/// The records with one of `n` (name, gender, birth date) triples. Asked by the whole triple, so
/// that the `students_person` index finds exactly them: asked by name alone, a province of ten
/// million returns every 王浩 there is (an import into the 10-million benchmark grew to 7.8 GB).
fn similar_sql(sqlite: bool, n: usize) -> String {
    let terms: Vec<String> = (0..n)
        .map(|i| {
            if sqlite {
                "(name = ? AND gender = ? AND birth_date = ?)".to_string()
            } else {
                format!(
                    "(name = ${} AND gender = ${} AND birth_date = ${})",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                )
            }
        })
        .collect();
    format!(
        "SELECT id, name, gender, birth_date, id_type, id_number FROM students WHERE {}",
        terms.join(" OR ")
    )
}

/// The distinct (name, gender code, birth date) triples of some people.
fn triples<'a>(people: impl Iterator<Item = &'a Person>) -> Vec<(String, String, NaiveDate)> {
    people
        .map(|p| (p.name.clone(), p.gender.code().to_string(), p.birth_date))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// Records with the same name, gender and birth date as each person (their own document aside).
fn similar_of<'a>(p: &Person, rows: &'a [SimilarRow]) -> Vec<&'a SimilarRow> {
    rows.iter()
        .filter(|s| {
            s.name == p.name
                && s.gender == p.gender.code()
                && s.birth_date == p.birth_date
                && !(s.id_type == p.id_type && s.id_number == p.id_number)
        })
        .collect()
}

async fn similar_rows(
    app: &App,
    people: &[(String, String, NaiveDate)],
) -> AppResult<Vec<SimilarRow>> {
    let mut out = vec![];
    for chunk in people.chunks(CHUNK_ROWS / 5) {
        let sql = similar_sql(app.db.backend() == Backend::Sqlite, chunk.len());
        let rows: Vec<SimilarRow> = on_pool!(app.db.read(), p => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            for (name, gender, birth) in chunk {
                q = q.bind(name.clone()).bind(gender.clone()).bind(*birth);
            }
            q.fetch_all(p).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

impl Validation {
    /// Marks an earlier row invalid after the fact (it turned out to duplicate a later one).
    fn invalidate_earlier(&mut self, row: u32, e: &FieldError) {
        self.retro = true;
        self.push_error(row, e);
        if self.invalid_rows.insert(row) {
            self.report.valid -= 1;
            self.report.invalid += 1;
        }
    }

    /// Checks one chunk; returns its rows valid so far, in file order.
    async fn check_chunk(
        &mut self,
        app: &App,
        ctx: &Context,
        opts: &ImportOptions,
        mut chunk: Vec<Parsed>,
    ) -> AppResult<Vec<(u32, Person)>> {
        // Duplicates within the file.
        let index: HashMap<u32, usize> =
            chunk.iter().enumerate().map(|(i, p)| (p.row, i)).collect();
        for i in 0..chunk.len() {
            let Some(doc) = chunk[i].doc.as_ref().map(doc_key) else {
                continue;
            };
            let row = chunk[i].row;
            match self.seen.get_mut(&doc) {
                None => {
                    self.seen.insert(
                        doc,
                        FirstSeen {
                            row,
                            duplicate_reported: false,
                            class_id: None,
                        },
                    );
                }
                Some(first) => {
                    let first_row = first.row;
                    chunk[i].add(invalid(
                        Field::IdNumber,
                        format!(
                            "与第{}行的证件号码重复：同一人只能有一条学籍，请删除重复的行",
                            first_row + 1
                        ),
                    ));
                    if !first.duplicate_reported {
                        first.duplicate_reported = true;
                        let e = invalid(
                            Field::IdNumber,
                            format!(
                                "与第{}行的证件号码重复：同一人只能有一条学籍，请删除重复的行",
                                row + 1
                            ),
                        );
                        if let Some(&j) = index.get(&first_row) {
                            chunk[j].add(e);
                        } else {
                            let held = first.class_id.take();
                            if let Some(c) = held {
                                *self.load.entry(c.get()).or_default() -= 1;
                            }
                            self.invalidate_earlier(first_row, &e);
                        }
                    }
                }
            }
        }
        // 查重 against the database (rows with other problems too: the report says all).
        let docs: Vec<(String, String)> = chunk.iter().filter_map(|p| p.doc.clone()).collect();
        let held = on_record(app, &docs).await?;
        for p in chunk.iter_mut() {
            if let Some(doc) = &p.doc
                && let Some(school) = held.get(doc)
            {
                p.add(FieldError::new(
                    Field::IdNumber,
                    ErrorCode::DuplicatePerson,
                    format!(
                        "全国学籍查重：{}",
                        duplicate_message(*school == Some(ctx.school.id))
                    ),
                ));
            }
        }
        // 疑似重复.
        if !opts.confirm_suspected {
            let wanted = triples(
                chunk
                    .iter()
                    .filter(|p| p.errors.is_empty())
                    .filter_map(|p| p.person.as_ref()),
            );
            let similar = similar_rows(app, &wanted).await?;
            for p in chunk.iter_mut() {
                let found: Vec<String> = match &p.person {
                    Some(person) if p.errors.is_empty() => similar_of(person, &similar)
                        .iter()
                        .map(|s| mask_document(&s.id_number))
                        .collect(),
                    _ => vec![],
                };
                if !found.is_empty() {
                    p.add(FieldError::new(
                        Field::Name,
                        ErrorCode::SuspectedDuplicate,
                        format!(
                            "疑似重复：系统中已有同姓名、同性别、同出生日期的学籍（证件号码 {}）：请核实；如确认不是同一人，请选择“确认疑似重复”后重新导入",
                            found.join("、")
                        ),
                    ));
                }
            }
        }
        // 疑似重复 within the file: same name, gender and birth date as an earlier valid row with
        // another document (the same document is a duplicate, reported above).
        for p in chunk.iter_mut() {
            let Some(person) = p.person.as_ref().filter(|_| p.errors.is_empty()) else {
                continue;
            };
            let key = (
                person.name.as_str().into(),
                person.gender.code(),
                person.birth_date,
            );
            match self.seen_person.get(&key) {
                Some(&first) if !opts.confirm_suspected => p.add(FieldError::new(
                    Field::Name,
                    ErrorCode::SuspectedDuplicate,
                    format!(
                        "疑似重复：与第{}行同姓名、同性别、同出生日期，证件号码不同：请核实是否为同一人；如确认不是同一人，请选择“确认疑似重复”后重新导入",
                        first + 1
                    ),
                )),
                Some(_) => {}
                None => {
                    self.seen_person.insert(key, p.row);
                }
            }
        }
        // Class capacity, in file order, then the verdict.
        let mut valid = Vec::with_capacity(chunk.len());
        for mut p in chunk {
            if p.errors.is_empty()
                && let Some(person) = &p.person
            {
                let (_, capacity, now) = ctx
                    .classes
                    .values()
                    .find(|(id, _, _)| *id == person.class_id)
                    .copied()
                    .unwrap_or((person.class_id, 0, 0));
                let load = self.load.entry(person.class_id).or_insert(now);
                if *load >= capacity {
                    p.add(FieldError::new(
                        Field::Class,
                        ErrorCode::ClassFull,
                        format!("班级人数已满（班额{capacity}人）：请选择其他班级，或请学校调整班额后再导入"),
                    ));
                } else {
                    *load += 1;
                    if let Some(doc) = &p.doc
                        && let Some(first) = self.seen.get_mut(&doc_key(doc))
                        && first.row == p.row
                    {
                        first.class_id = NonZeroI64::new(person.class_id);
                    }
                }
            }
            self.report.rows += 1;
            if p.errors.is_empty()
                && let Some(person) = p.person.take()
            {
                self.report.valid += 1;
                valid.push((p.row, person));
            } else {
                if p.errors.is_empty() {
                    p.errors
                        .push(invalid(Field::Name, "该行无法识别：请按模板逐列填写"));
                }
                self.report.invalid += 1;
                self.invalid_rows.insert(p.row);
                let mut errs = std::mem::take(&mut p.errors);
                errs.sort_by_key(|e| e.field);
                for e in &errs {
                    self.push_error(p.row, e);
                }
            }
        }
        Ok(valid)
    }
}

/// Who writes the rows of an import, with their audit rows.
struct Writer {
    app: App,
    ctx: Arc<Context>,
    actor: AuditActor,
    /// The chain of the import's audit rows: the school's (one head per batch, not per row).
    chain: i64,
    confirm_suspected: bool,
    now: DateTime<Utc>,
    batch_no: u64,
    /// Places left per class, counted when writing starts and kept up to date as rows are
    /// written (counting a class per batch would scan it again and again).
    room: HashMap<i64, i64>,
    /// Temporary numbers given by this import (not yet visible to the readers).
    given: HashSet<Box<str>>,
}

/// The outcome of one written batch: the numbers given, and rows refused at write time.
#[derive(Default)]
struct Written {
    numbers: Vec<(u32, String)>,
    refused: Vec<(u32, FieldError)>,
}

/// Rows per multi-row INSERT (at most 16 parameters a row: 8,000 per statement).
const ROWS_PER_STATEMENT: usize = 500;

impl Writer {
    async fn new(
        app: &App,
        ctx: Arc<Context>,
        actor: AuditActor,
        confirm: bool,
    ) -> AppResult<Self> {
        let room = app
            .classes_of(ctx.school.id)
            .await?
            .into_iter()
            .map(|c| (c.id, c.capacity - c.enrolled))
            .collect();
        let chain = audit::chain_of(Some(&ctx.school.region), "school", &ctx.school.code);
        Ok(Self {
            app: app.clone(),
            ctx,
            actor,
            chain,
            confirm_suspected: confirm,
            now: app.clock.now(),
            batch_no: 0,
            room,
            given: HashSet::new(),
        })
    }

    /// One batch in its own transaction (the second pass, when the import could not be written
    /// while validating).
    async fn write_batch(&mut self, batch: Vec<(u32, Person)>) -> AppResult<Written> {
        let mut tx = self.app.db.begin().await?;
        let w = self.write_in(&mut tx, &batch).await?;
        tx.commit().await?;
        Ok(w)
    }

    /// One batch inside `tx`, under a savepoint. Written without looking again: should someone
    /// have registered one of these people since the 查重, the unique key refuses the batch; only
    /// then look, and write the others. (A per-batch look-up is what a plan made while the table
    /// was small turns into a scan on PostgreSQL.)
    async fn write_in(&mut self, tx: &mut Tx, batch: &[(u32, Person)]) -> AppResult<Written> {
        on_tx!(tx, c => sqlx::query("SAVEPOINT xj_import").execute(&mut *c).await.map(|r| r.rows_affected()))?;
        let first = self.try_write(tx, batch, &HashSet::new()).await;
        let w = match first {
            Err(e) if e.is_unique_violation() => {
                on_tx!(tx, c => sqlx::query("ROLLBACK TO SAVEPOINT xj_import").execute(&mut *c).await.map(|r| r.rows_affected()))?;
                let docs: Vec<(String, String)> = batch
                    .iter()
                    .map(|(_, p)| (p.id_type.clone(), p.id_number.clone()))
                    .collect();
                let held: HashSet<(String, String)> =
                    on_record(&self.app, &docs).await?.into_keys().collect();
                self.try_write(tx, batch, &held).await?
            }
            other => other?,
        };
        on_tx!(tx, c => sqlx::query("RELEASE SAVEPOINT xj_import").execute(&mut *c).await.map(|r| r.rows_affected()))?;
        Ok(w)
    }

    /// Temporary numbers free in `student_numbers` (past numbers included) and not given by this
    /// import yet: random 4-digit suffixes, looked up a batch at a time in `tx`.
    async fn free_numbers(&mut self, tx: &mut Tx, births: &[NaiveDate]) -> AppResult<Vec<String>> {
        use rand::Rng;
        let sqlite = matches!(tx, Tx::Sqlite(_));
        let area = self.ctx.school.region.clone();
        let mut chosen: Vec<Option<String>> = vec![None; births.len()];
        for _ in 0..20 {
            let open: Vec<usize> = (0..births.len()).filter(|&i| chosen[i].is_none()).collect();
            if open.is_empty() {
                break;
            }
            let mut candidates: Vec<(usize, String)> = vec![];
            {
                let mut rng = rand::rng();
                for i in open {
                    let no = xueji_domain::ids::StudentNo::temporary(
                        &area,
                        births[i],
                        rng.random_range(0..10_000u16),
                    );
                    if self.given.insert(no.as_str().into()) {
                        candidates.push((i, no.as_str().to_string()));
                    }
                }
            }
            let mut existing: HashSet<String> = HashSet::new();
            for part in candidates.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "SELECT student_no FROM student_numbers WHERE student_no IN ({})",
                    params(sqlite, 1, part.len())
                );
                let found: Vec<String> = on_tx!(tx, c => {
                    let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()));
                    for (_, no) in part {
                        q = q.bind(no.as_str());
                    }
                    q.fetch_all(&mut *c).await
                })?;
                existing.extend(found);
            }
            for (i, no) in candidates {
                if !existing.contains(&no) {
                    chosen[i] = Some(no);
                }
            }
        }
        chosen
            .into_iter()
            .map(|c| c.ok_or_else(|| AppError::Other("no free temporary student number".into())))
            .collect()
    }

    async fn try_write(
        &mut self,
        tx: &mut Tx,
        batch: &[(u32, Person)],
        held: &HashSet<(String, String)>,
    ) -> AppResult<Written> {
        let sqlite = matches!(tx, Tx::Sqlite(_));
        let mut refused = vec![];
        let mut room = self.room.clone();
        let mut rows: Vec<(u32, &Person)> = vec![];
        for (row, p) in batch.iter().map(|(r, p)| (*r, p)) {
            if held.contains(&(p.id_type.clone(), p.id_number.clone())) {
                refused.push((
                    row,
                    FieldError::new(
                        Field::IdNumber,
                        ErrorCode::DuplicatePerson,
                        "全国学籍查重：导入过程中该学生已由其他操作注册学籍，请勿重复导入",
                    ),
                ));
                continue;
            }
            let left = room.entry(p.class_id).or_insert(0);
            if *left <= 0 {
                refused.push((
                    row,
                    FieldError::new(
                        Field::Class,
                        ErrorCode::ClassFull,
                        "导入过程中班级人数已满：请选择其他班级后重新导入该行",
                    ),
                ));
                continue;
            }
            *left -= 1;
            rows.push((row, p));
        }
        if rows.is_empty() {
            self.room = room;
            return Ok(Written {
                numbers: vec![],
                refused,
            });
        }
        let births: Vec<NaiveDate> = rows.iter().map(|(_, p)| p.birth_date).collect();
        let numbers = self.free_numbers(tx, &births).await?;
        let school = self.ctx.school.clone();
        let now = self.now;
        // The records: big statements (anonymous parameters on SQLite). On SQLite this
        // transaction is the only writer, so the ids are the next ones and need not come back;
        // PostgreSQL gives them back (other writers take ids meanwhile).
        let mut next_id: Option<i64> = match tx {
            Tx::Sqlite(t) => Some(
                sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) + 1 FROM students")
                    .fetch_one(t.conn())
                    .await?,
            ),
            Tx::Pg(_) => None,
        };
        let mut ids: Vec<(i64, String)> = Vec::with_capacity(rows.len());
        for (part, part_numbers) in rows
            .chunks(ROWS_PER_STATEMENT)
            .zip(numbers.chunks(ROWS_PER_STATEMENT))
        {
            let sql = format!(
                "INSERT INTO students ({}student_no, id_type, id_number, name, gender, birth_date, ethnicity, status, \
                 school_id, grade, class_id, region_code, version, created_at, updated_at, identity_status) VALUES {}{}",
                if sqlite { "id, " } else { "" },
                values_list(sqlite, part.len(), if sqlite { 17 } else { 16 }),
                if sqlite {
                    ""
                } else {
                    " RETURNING id, student_no"
                }
            );
            let first = next_id;
            let got: Vec<(i64, String)> = on_tx!(tx, c => {
                let mut q = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql.as_str()));
                for (i, ((_, p), no)) in part.iter().zip(part_numbers).enumerate() {
                    if let Some(f) = first {
                        q = q.bind(f + i as i64);
                    }
                    q = q
                        .bind(no.as_str())
                        .bind(p.id_type.as_str())
                        .bind(p.id_number.as_str())
                        .bind(p.name.as_str())
                        .bind(p.gender.code())
                        .bind(p.birth_date)
                        .bind(p.ethnicity.as_str())
                        .bind("enrolled")
                        .bind(school.id)
                        .bind(p.grade.code())
                        .bind(p.class_id)
                        .bind(school.region.as_str())
                        .bind(0i64)
                        .bind(now)
                        .bind(now)
                        .bind(p.identity_status());
                }
                q.fetch_all(&mut *c).await
            })?;
            match first {
                Some(f) => {
                    ids.extend(
                        part_numbers
                            .iter()
                            .enumerate()
                            .map(|(i, no)| (f + i as i64, no.clone())),
                    );
                    next_id = Some(f + part.len() as i64);
                }
                None => ids.extend(got),
            }
        }
        let id_of: HashMap<String, i64> = ids.into_iter().map(|(id, no)| (no, id)).collect();
        let mut sids = Vec::with_capacity(rows.len());
        for no in &numbers {
            sids.push(
                *id_of
                    .get(no.as_str())
                    .ok_or_else(|| AppError::Other("inserted student missing".into()))?,
            );
        }
        for ((part, part_numbers), part_ids) in rows
            .chunks(ROWS_PER_STATEMENT)
            .zip(numbers.chunks(ROWS_PER_STATEMENT))
            .zip(sids.chunks(ROWS_PER_STATEMENT))
        {
            let sql = format!(
                "INSERT INTO student_numbers (student_no, student_id, kind, assigned_at) VALUES {}",
                values_list(sqlite, part.len(), 4)
            );
            on_tx!(tx, c => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for (no, sid) in part_numbers.iter().zip(part_ids) {
                    q = q.bind(no.as_str()).bind(*sid).bind("temporary").bind(now);
                }
                q.execute(&mut *c).await.map(|r| r.rows_affected())
            })?;
            let sql = format!(
                "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at) VALUES {}",
                values_list(sqlite, part.len(), 6)
            );
            on_tx!(tx, c => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for ((_, p), sid) in part.iter().zip(part_ids) {
                    q = q.bind(*sid).bind(school.id).bind(p.grade.code()).bind(p.class_id).bind("active").bind(now);
                }
                q.execute(&mut *c).await.map(|r| r.rows_affected())
            })?;
        }
        // Confirmed suspected duplicates become open problem records.
        let mut suspected: HashMap<String, Vec<String>> = HashMap::new();
        if self.confirm_suspected {
            let wanted = triples(rows.iter().map(|(_, p)| *p));
            let mut similar = vec![];
            for chunk in wanted.chunks(CHUNK_ROWS / 5) {
                let sql = similar_sql(sqlite, chunk.len());
                let found: Vec<SimilarRow> = on_tx!(tx, c => {
                    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
                    for (name, gender, birth) in chunk {
                        q = q.bind(name.clone()).bind(gender.clone()).bind(*birth);
                    }
                    q.fetch_all(&mut *c).await
                })?;
                similar.extend(found);
            }
            for ((_, p), (no, sid)) in rows.iter().zip(numbers.iter().zip(&sids)) {
                for s in similar_of(p, &similar).into_iter().filter(|s| s.id != *sid) {
                    record_suspected(tx, *sid, s, now).await?;
                    suspected
                        .entry(no.clone())
                        .or_default()
                        .push(mask_document(&s.id_number));
                }
            }
        }
        // One audit row per student and one for the batch, appended to the school's chain at once.
        let batch_no = self.batch_no + 1;
        let mut events = Vec::with_capacity(rows.len() + 1);
        for ((row, p), no) in rows.iter().zip(&numbers) {
            let m = suspected.get(no);
            // Serialized from a struct (no map to build): the keys of `registration::audit_after`, sorted as
            // serde_json sorts a map's.
            let after = ImportAfter {
                birth_date: p.birth_date,
                class_id: p.class_id,
                confirm_suspected: m.map(|_| true),
                ethnicity: &p.ethnicity,
                gender: p.gender.code(),
                grade: p.grade.code(),
                id_number_masked: mask_document(&p.id_number),
                id_type: &p.id_type,
                identity_status: p.identity_status(),
                import_batch: batch_no,
                import_row: row + 1,
                name: &p.name,
                school: &school.code,
                status: "enrolled",
                student_no: no,
                suspected_duplicates_confirmed: m,
            };
            events.push(BatchEvent {
                action: "student.register",
                entity_type: "student",
                entity_id: no.clone(),
                before_json: None,
                after_json: Some(
                    serde_json::to_string(&after).map_err(|e| AppError::Other(e.to_string()))?,
                ),
            });
        }
        events.push(BatchEvent {
            action: "student.import_batch",
            entity_type: "school",
            entity_id: school.code.clone(),
            before_json: None,
            after_json: Some(
                serde_json::json!({
                    "batch": batch_no,
                    "written": rows.len(),
                    "refused": refused.len(),
                    "first_row": rows.first().map(|(r, _)| r + 1),
                    "last_row": rows.last().map(|(r, _)| r + 1),
                })
                .to_string(),
            ),
        });
        audit::record_many(tx, self.chain, now, &self.actor, events).await?;
        self.batch_no = batch_no;
        self.room = room;
        Ok(Written {
            numbers: rows
                .iter()
                .zip(numbers)
                .map(|((r, _), no)| (*r, no))
                .collect(),
            refused,
        })
    }
}

/// The audit row of one imported student (what `registration::audit_after` records, plus the row and batch).
#[derive(Serialize)]
struct ImportAfter<'a> {
    birth_date: NaiveDate,
    class_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm_suspected: Option<bool>,
    ethnicity: &'a str,
    gender: &'static str,
    grade: String,
    id_number_masked: String,
    id_type: &'a str,
    identity_status: &'static str,
    import_batch: u64,
    import_row: u32,
    name: &'a str,
    school: &'a str,
    status: &'static str,
    student_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    suspected_duplicates_confirmed: Option<&'a Vec<String>>,
}

/// What the writer did: students written, the first numbers given, rows refused at write time.
#[derive(Default)]
struct Outcome {
    written: u64,
    student_nos: Vec<String>,
    refused: Vec<(u32, FieldError)>,
}

impl Outcome {
    fn add(&mut self, w: Written) {
        self.written += w.numbers.len() as u64;
        for (_, no) in w.numbers {
            if self.student_nos.len() < 1000 {
                self.student_nos.push(no);
            }
        }
        self.refused.extend(w.refused);
    }
}

impl Validation {
    fn take(&mut self, out: Outcome) {
        self.report.written += out.written;
        self.report.student_nos.extend(out.student_nos);
        self.report.student_nos.truncate(1000);
        for (row, e) in out.refused {
            self.invalid_rows.insert(row);
            self.report.valid -= 1;
            self.report.invalid += 1;
            self.push_error(row, &e);
        }
    }
}

/// The writer task of a one-pass import: batches of valid rows in, one transaction out.
struct Speculative {
    batches: mpsc::Sender<Vec<(u32, Person)>>,
    task: tokio::task::JoinHandle<AppResult<Option<(Tx, Outcome)>>>,
}

impl Speculative {
    fn start(mut writer: Writer) -> Self {
        // A few batches ahead: validation goes on while the database writes.
        let (batches, mut rx) = mpsc::channel::<Vec<(u32, Person)>>(4);
        let task = tokio::spawn(async move {
            let mut tx: Option<Tx> = None;
            let mut out = Outcome::default();
            while let Some(batch) = rx.recv().await {
                // Begun at the first batch: nothing is held while the file is opened. A
                // transaction of its own, not a savepoint held over every row (db.rs).
                let t = match tx.as_mut() {
                    Some(t) => t,
                    None => tx.insert(writer.app.db.begin_solo().await?),
                };
                out.add(writer.write_in(t, &batch).await?);
            }
            Ok(tx.map(|t| (t, out)))
        });
        Self { batches, task }
    }

    async fn send(&mut self, batch: Vec<(u32, Person)>) -> AppResult<()> {
        if self.batches.send(batch).await.is_err() {
            // The writer stopped: its error.
            return match (&mut self.task).await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Err(AppError::Other("import writer stopped".into())),
                Err(e) => Err(AppError::Other(format!("import writer: {e}"))),
            };
        }
        Ok(())
    }

    /// Commits what was written.
    async fn finish(self) -> AppResult<Outcome> {
        drop(self.batches);
        match self.task.await {
            Ok(Ok(Some((tx, out)))) => {
                tx.commit().await?;
                Ok(out)
            }
            Ok(Ok(None)) => Ok(Outcome::default()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(AppError::Other(format!("import writer: {e}"))),
        }
    }

    /// Rolls back what was written (the transaction is dropped once the writer is done).
    async fn abandon(self) {
        drop(self.batches);
        let _ = self.task.await;
    }
}

/// A no-op progress callback.
pub fn no_progress(_: ImportProgress) {}

impl App {
    /// Imports students into a school from an .xlsx of the template's columns, for that school's
    /// administrator. Validates every row first; writes according to `opts.commit`.
    pub async fn import_students(
        &self,
        user: &CurrentUser,
        school_code: &str,
        source: XlsxSource,
        opts: ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Send + Sync),
    ) -> AppResult<ImportReport> {
        let school = self.own_school_for_records(user, school_code).await?;
        self.run_import(user.audit_actor(), school, source, opts, progress)
            .await
    }

    /// The same for an operator of the server (the CLI, which has the database itself): the
    /// audit trail names `system:cli-import`.
    pub async fn import_students_as_operator(
        &self,
        school_code: &str,
        source: XlsxSource,
        opts: ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Send + Sync),
    ) -> AppResult<ImportReport> {
        let school = self
            .school_unscoped(school_code.trim())
            .await?
            .ok_or_else(|| Error::not_found("该学校（学校标识码）"))?;
        self.run_import(
            AuditActor::system("cli-import"),
            school,
            source,
            opts,
            progress,
        )
        .await
    }

    async fn run_import(
        &self,
        actor: AuditActor,
        school: SchoolOut,
        source: XlsxSource,
        opts: ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Send + Sync),
    ) -> AppResult<ImportReport> {
        let ctx = Arc::new(Context::load(self, school).await?);
        // One pass: every row is validated, and the rows found valid are written meanwhile by a
        // writer task into ONE transaction (the reader thread, the validation and the database
        // work in parallel). It commits at the end if the rows it wrote are still exactly the
        // rows to write; otherwise (a later row duplicated the document of a row already
        // written, or the caller wants all rows valid and one is not) it is rolled back, and the
        // valid rows are written by a second pass over the file, batch by batch.
        // The price: on SQLite other writers wait while an import writes (≈1 s per 100,000 rows).
        let mut rx = start_reader(source.clone());
        let mut v = Validation {
            report: ImportReport::default(),
            invalid_rows: HashSet::new(),
            seen: HashMap::new(),
            seen_person: HashMap::new(),
            load: HashMap::new(),
            columns: [0; 8],
            retro: false,
        };
        let mut spec = match opts.commit {
            Commit::Never => None,
            _ => Some(Speculative::start(
                Writer::new(self, ctx.clone(), actor.clone(), opts.confirm_suspected).await?,
            )),
        };
        let mut estimate = 0u64;
        let mut chunk = vec![];
        let mut done = 0u64;
        loop {
            let msg = rx.recv().await;
            let end = msg.is_none();
            match msg {
                Some(Msg::Header { columns, last_row }) => {
                    v.columns = columns;
                    estimate = u64::from(last_row);
                    continue;
                }
                Some(Msg::Row(raw)) => chunk.push(parse_row(&ctx, &raw)),
                Some(Msg::Fatal(m)) => {
                    return Err(Error::new(ErrorCode::ValidationFailed, m).at("file").into());
                }
                None => {}
            }
            if chunk.len() >= CHUNK_ROWS || (end && !chunk.is_empty()) {
                let n = chunk.len() as u64;
                let valid = v
                    .check_chunk(self, &ctx, &opts, std::mem::take(&mut chunk))
                    .await?;
                done += n;
                // Before the rows go to the writer: the writer holds the transaction from its
                // first batch on (a progress callback must not write to the database).
                progress(ImportProgress {
                    phase: ImportPhase::Validating,
                    done,
                    total: estimate.max(done),
                });
                let stop = v.retro || (opts.commit == Commit::IfAllValid && v.report.invalid > 0);
                if stop {
                    if let Some(s) = spec.take() {
                        s.abandon().await;
                    }
                } else if let Some(s) = spec.as_mut()
                    && !valid.is_empty()
                {
                    s.send(valid).await?;
                }
            }
            if end {
                break;
            }
        }
        if v.report.rows == 0 {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                "文件中没有学生数据：请从模板第2行起逐行填写",
            )
            .at("file")
            .into());
        }
        let write = match opts.commit {
            Commit::Never => false,
            Commit::IfAllValid => v.report.invalid == 0,
            Commit::ValidRows => v.report.valid > 0,
        };
        match (write, spec) {
            (true, Some(s)) => {
                let out = s.finish().await?;
                v.report.committed = true;
                v.take(out);
                progress(ImportProgress {
                    phase: ImportPhase::Writing,
                    done: v.report.written,
                    total: v.report.valid,
                });
            }
            (true, None) => {
                self.write_valid(&ctx, &actor, &source, &opts, &mut v, progress)
                    .await?;
            }
            (false, Some(s)) => s.abandon().await,
            (false, None) => {}
        }
        let mut report = v.report;
        report.errors.sort_by(|a, b| {
            (a.row, HEADERS.iter().position(|h| *h == a.column))
                .cmp(&(b.row, HEADERS.iter().position(|h| *h == b.column)))
        });
        Ok(report)
    }

    /// The second pass, when the rows could not be written while validating: the valid rows
    /// again from the file, in batches of their own transactions.
    async fn write_valid(
        &self,
        ctx: &Arc<Context>,
        actor: &AuditActor,
        source: &XlsxSource,
        opts: &ImportOptions,
        v: &mut Validation,
        progress: &(dyn Fn(ImportProgress) + Send + Sync),
    ) -> AppResult<()> {
        let mut writer =
            Writer::new(self, ctx.clone(), actor.clone(), opts.confirm_suspected).await?;
        v.report.committed = true;
        let total = v.report.valid;
        let mut rx = start_reader(source.clone());
        let mut batch: Vec<(u32, Person)> = vec![];
        loop {
            let msg = rx.recv().await;
            let end = msg.is_none();
            match msg {
                Some(Msg::Row(raw)) if !v.invalid_rows.contains(&raw.row) => {
                    if let Some(p) = parse_row(ctx, &raw).person {
                        batch.push((raw.row, p));
                    }
                }
                Some(Msg::Fatal(m)) => {
                    return Err(AppError::Other(format!(
                        "second pass over the file failed: {m}"
                    )));
                }
                _ => {}
            }
            if batch.len() >= CHUNK_ROWS || (end && !batch.is_empty()) {
                let w = writer.write_batch(std::mem::take(&mut batch)).await?;
                let mut out = Outcome::default();
                out.add(w);
                v.take(out);
                progress(ImportProgress {
                    phase: ImportPhase::Writing,
                    done: v.report.written,
                    total,
                });
            }
            if end {
                break;
            }
        }
        Ok(())
    }

    /// The import template of a school (its classes in the 班级 list), for anyone who may see the
    /// school.
    pub async fn student_template(
        &self,
        user: &CurrentUser,
        school_code: &str,
    ) -> AppResult<Vec<u8>> {
        let school = self.school(user, school_code).await?;
        let refs = Refs::load(self).await?;
        let classes = self.classes_of(school.id).await?;
        tokio::task::spawn_blocking(move || template_xlsx(&refs, &school, &classes))
            .await
            .map_err(|e| AppError::Other(e.to_string()))?
    }

    /// The students matching the list's filter as an .xlsx, identity numbers masked; audited.
    pub async fn export_students(
        &self,
        user: &CurrentUser,
        filter: &StudentFilter,
    ) -> AppResult<Vec<u8>> {
        let mut wb = Workbook::new();
        let header = Format::new().set_bold().set_background_color("#DDE6F2");
        let ws = wb.add_worksheet_with_constant_memory().map_err(xlsx_err)?;
        ws.set_name("学生名单").map_err(xlsx_err)?;
        let headers = [
            "学籍号",
            "姓名",
            "性别",
            "出生日期",
            "证件号码（脱敏）",
            "年级",
            "班级",
            "学籍状态",
            "在办业务",
        ];
        for (c, w) in [22, 12, 6, 12, 22, 10, 18, 10, 10].iter().enumerate() {
            ws.set_column_width(c as u16, *w).map_err(xlsx_err)?;
        }
        for (c, h) in headers.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, &header)
                .map_err(xlsx_err)?;
        }
        let mut row = 0u32;
        let mut page = 1;
        loop {
            let p = self
                .students(
                    user,
                    filter,
                    crate::paging::Page {
                        page,
                        per_page: 500,
                    },
                )
                .await?;
            let n = p.items.len();
            for s in p.items {
                row += 1;
                let gender = match s.gender.as_str() {
                    "male" => "男",
                    "female" => "女",
                    _ => "",
                };
                let grade = s
                    .grade
                    .as_deref()
                    .and_then(|g| Grade::parse(g).ok())
                    .map(|g| g.label_zh())
                    .unwrap_or("");
                ws.write_string(row, 0, &s.student_no).map_err(xlsx_err)?;
                ws.write_string(row, 1, &s.name).map_err(xlsx_err)?;
                ws.write_string(row, 2, gender).map_err(xlsx_err)?;
                ws.write_string(row, 3, s.birth_date.to_string())
                    .map_err(xlsx_err)?;
                ws.write_string(row, 4, &s.id_number_masked)
                    .map_err(xlsx_err)?;
                ws.write_string(row, 5, grade).map_err(xlsx_err)?;
                ws.write_string(row, 6, s.class_name.as_deref().unwrap_or(""))
                    .map_err(xlsx_err)?;
                ws.write_string(row, 7, status_label_zh(&s.status))
                    .map_err(xlsx_err)?;
                ws.write_string(row, 8, if s.open_business.is_some() { "有" } else { "" })
                    .map_err(xlsx_err)?;
            }
            if n < 500 || i64::from(row) >= MAX_EXPORT_ROWS {
                break;
            }
            page += 1;
        }
        let bytes = tokio::task::spawn_blocking(move || wb.save_to_buffer().map_err(xlsx_err))
            .await
            .map_err(|e| AppError::Other(e.to_string()))??;
        let mut tx = self.db.begin().await?;
        audit::record(
            &mut tx,
            self.clock.now(),
            &user.audit_actor(),
            AuditEvent {
                action: "student.export",
                entity_type: "student_list",
                entity_id: filter.school.clone().unwrap_or_else(|| "-".into()),
                before: None,
                after: Some(serde_json::json!({
                    "rows": row, "school": filter.school, "region": filter.region, "grade": filter.grade,
                    "class_id": filter.class_id, "q": filter.q, "id_numbers": "masked",
                })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(bytes)
    }
}

/// The import template: the data sheet with its headers and drop-down lists, a hidden sheet of
/// the lists' values, and a sheet of instructions.
pub fn template_xlsx(refs: &Refs, school: &SchoolOut, classes: &[ClassOut]) -> AppResult<Vec<u8>> {
    let mut wb = Workbook::new();
    let header = Format::new().set_bold().set_background_color("#DDE6F2");
    let text = Format::new().set_num_format("@");
    let grades: Vec<Grade> = school
        .grades
        .iter()
        .filter_map(|g| Grade::parse(g).ok())
        .collect();
    {
        let ws = wb.add_worksheet();
        ws.set_name("学生信息").map_err(xlsx_err)?;
        for (c, (h, w)) in HEADERS
            .iter()
            .zip([12, 8, 14, 12, 22, 24, 10, 18])
            .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &header)
                .map_err(xlsx_err)?;
            ws.set_column_width(c as u16, w).map_err(xlsx_err)?;
            ws.set_column_format(c as u16, &text).map_err(xlsx_err)?;
        }
        ws.set_freeze_panes(1, 0).map_err(xlsx_err)?;
        let list =
            |col: &str, n: usize| Formula::new(format!("='代码表'!${col}$2:${col}${}", n + 1));
        let lists: [(u16, DataValidation, &str); 5] = [
            (
                1,
                DataValidation::new()
                    .allow_list_strings(&["男", "女"])
                    .map_err(xlsx_err)?,
                "请选择男或女",
            ),
            (
                3,
                DataValidation::new().allow_list_formula(list("A", refs.ethnicities().len())),
                "请从列表中选择民族",
            ),
            (
                4,
                DataValidation::new().allow_list_formula(list("B", refs.id_types().len())),
                "请选择证件类型；居民身份证号码须为18位",
            ),
            (
                6,
                DataValidation::new().allow_list_formula(list("C", grades.len().max(1))),
                "请选择本校的年级",
            ),
            (
                7,
                DataValidation::new().allow_list_formula(list("D", classes.len().max(1))),
                "请选择本校该年级的班级",
            ),
        ];
        for (col, dv, msg) in lists {
            let dv = dv
                .set_input_message(msg)
                .map_err(xlsx_err)?
                .set_error_title("输入值无效")
                .map_err(xlsx_err)?
                .set_error_message("请从下拉列表中选择")
                .map_err(xlsx_err)?;
            ws.add_data_validation(1, col, TEMPLATE_ROWS, col, &dv)
                .map_err(xlsx_err)?;
        }
    }
    {
        let ws = wb.add_worksheet();
        ws.set_name("填写说明").map_err(xlsx_err)?;
        ws.set_column_width(0, 100).map_err(xlsx_err)?;
        let lines = [
            format!("{}（学校标识码 {}）学生信息导入模板", school.name, school.code),
            "1. 在“学生信息”表第2行起每行填写一名学生，不要修改表头，不要合并单元格，不要使用公式（公式请粘贴为数值）。".into(),
            "2. 性别、民族、证件类型、年级、班级请从下拉列表中选择。".into(),
            "3. 出生日期填写为YYYY-MM-DD（如2015-03-01）、YYYY/MM/DD或YYYYMMDD，也可使用Excel日期格式。".into(),
            "4. 居民身份证号码为18位，系统校验最后一位校验码，出生日期、性别须与号码一致。".into(),
            "5. 全国学籍查重：证件号码已有学籍的学生不能再次注册；同姓名、同性别、同出生日期的视为疑似重复，须确认后才能导入。".into(),
            "6. 导入后系统分配临时学籍号（L字头），经公安比对通过后转为正式学籍号（G字头）。".into(),
        ];
        for (r, l) in lines.iter().enumerate() {
            ws.write_string(r as u32, 0, l).map_err(xlsx_err)?;
        }
    }
    {
        let ws = wb.add_worksheet();
        ws.set_name("代码表").map_err(xlsx_err)?;
        for (c, h) in ["民族", "证件类型", "年级", "班级", "班级所属年级"]
            .iter()
            .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *h, &header)
                .map_err(xlsx_err)?;
        }
        for (i, (_, name)) in refs.ethnicities().iter().enumerate() {
            ws.write_string(i as u32 + 1, 0, name).map_err(xlsx_err)?;
        }
        for (i, (_, name)) in refs.id_types().iter().enumerate() {
            ws.write_string(i as u32 + 1, 1, name).map_err(xlsx_err)?;
        }
        for (i, g) in grades.iter().enumerate() {
            ws.write_string(i as u32 + 1, 2, g.label_zh())
                .map_err(xlsx_err)?;
        }
        for (i, c) in classes.iter().enumerate() {
            ws.write_string(i as u32 + 1, 3, &c.name)
                .map_err(xlsx_err)?;
            let g = Grade::parse(&c.grade).map(|g| g.label_zh()).unwrap_or("");
            ws.write_string(i as u32 + 1, 4, g).map_err(xlsx_err)?;
        }
        ws.set_hidden(true);
    }
    wb.save_to_buffer().map_err(xlsx_err)
}

/// Writes rows in the template's columns ([`HEADERS`]) to an .xlsx file, streaming (constant
/// memory: the cells go out as inline strings). For benchmarks and generated test files.
pub fn write_rows_xlsx(
    path: &std::path::Path,
    rows: impl IntoIterator<Item = [String; 8]>,
) -> AppResult<()> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet_with_constant_memory().map_err(xlsx_err)?;
    ws.set_name("学生信息").map_err(xlsx_err)?;
    for (c, h) in HEADERS.iter().enumerate() {
        ws.write_string(0, c as u16, *h).map_err(xlsx_err)?;
    }
    for (r, row) in rows.into_iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            ws.write_string(r as u32 + 1, c as u16, v)
                .map_err(xlsx_err)?;
        }
    }
    wb.save(path).map_err(xlsx_err)
}

/// An import's report as an .xlsx workbook (导入报告).
pub fn import_report_xlsx(report: &ImportReport) -> AppResult<Vec<u8>> {
    let mut wb = Workbook::new();
    let header = Format::new().set_bold().set_background_color("#DDE6F2");
    let ws = wb.add_worksheet_with_constant_memory().map_err(xlsx_err)?;
    ws.set_name("导入报告").map_err(xlsx_err)?;
    for (c, w) in [8, 12, 10, 100].iter().enumerate() {
        ws.set_column_width(c as u16, *w).map_err(xlsx_err)?;
    }
    let summary = format!(
        "共{}行：有效{}行，有误{}行，已写入{}行{}",
        report.rows,
        report.valid,
        report.invalid,
        report.written,
        if report.committed {
            ""
        } else {
            "（未写入任何数据）"
        }
    );
    ws.write_string(0, 0, &summary).map_err(xlsx_err)?;
    for (c, h) in ["行号", "列", "单元格", "问题及修改方法"]
        .iter()
        .enumerate()
    {
        ws.write_string_with_format(2, c as u16, *h, &header)
            .map_err(xlsx_err)?;
    }
    for (i, e) in report.errors.iter().enumerate() {
        let r = i as u32 + 3;
        ws.write_number(r, 0, f64::from(e.row)).map_err(xlsx_err)?;
        ws.write_string(r, 1, &e.column).map_err(xlsx_err)?;
        ws.write_string(r, 2, &e.cell).map_err(xlsx_err)?;
        ws.write_string(r, 3, &e.message).map_err(xlsx_err)?;
    }
    wb.save_to_buffer().map_err(xlsx_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(7), "H");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }

    #[test]
    fn empty_and_blocked_cells_say_what_to_do() {
        let e = cell_text(Field::Grade, &RawCell::Empty, false)
            .unwrap_err()
            .unwrap();
        assert_eq!(e.message, "年级不能为空：请从下拉列表中选择年级");
        let e = cell_text(Field::Name, &RawCell::Formula, false)
            .unwrap_err()
            .unwrap();
        assert!(e.message.contains("粘贴为数值"));
        assert_eq!(
            cell_text(Field::Name, &RawCell::Covered, false).unwrap_err(),
            None
        );
        let e = cell_text(Field::IdNumber, &RawCell::Number(4.101e17), true)
            .unwrap_err()
            .unwrap();
        assert!(e.message.contains("文本"));
        assert_eq!(
            cell_text(Field::Grade, &RawCell::Number(13.0), false).unwrap(),
            "13"
        );
    }
}
