//! The transfer query (转学查询) and work lists: `GET /api/v1/transfers` with its filters.
//!
//! The statement is built from the filters actually given, so that each shape of query gets a
//! plan that uses its index: a catch-all statement with `($n IS NULL OR …)` for every filter
//! scans the whole table once transfers number in the millions (docs/performance.md, "lists").
//! The work list of a reviewing party starts from its waiting steps (`transfer_steps_party`).

use chrono::{DateTime, NaiveDate, Utc};
use xueji_domain::Error;
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::transfer::{Side, StepRole, StepSpec, TransferKind, TransferStatus};

use crate::auth::{CurrentUser, Scope};
use crate::error::AppResult;
use crate::paging::{Page, Paged};
use crate::transfers::{DUE_SOON_DAYS, TransferFilter, TransferSummary};
use crate::{App, on_pool};

const OPEN_REVIEW: &str =
    "('in_school_review','in_authority_review','out_school_review','out_authority_review')";

/// The built statements and their arguments (the page's LIMIT and OFFSET last).
struct Built {
    count_sql: String,
    list_sql: String,
    args: Vec<Arg>,
}

/// A bound value of the built statement.
enum Arg {
    I(i64),
    T(String),
    Tm(DateTime<Utc>),
    D(NaiveDate),
}

/// The WHERE clause under construction, with its arguments numbered as they are added.
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    /// Adds an argument and returns its placeholder.
    fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }
    fn sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conds.join(" AND "))
        }
    }
}

/// An OR split into branches that an index each can answer: the count is a sum of counts
/// with signs (inclusion–exclusion), the page a UNION of ids.
struct Split {
    a: String,
    b: String,
    /// Rows may match both: counted once by subtracting `a AND b`.
    overlapping: bool,
}

impl Split {
    fn disjoint(a: String, b: String) -> Self {
        Self {
            a,
            b,
            overlapping: false,
        }
    }
    fn overlapping(a: String, b: String) -> Self {
        Self {
            a,
            b,
            overlapping: true,
        }
    }

    /// Every combination of the splits' branches, ANDed with `base`, with its sign.
    fn expand(base: &[String], splits: &[Split]) -> Vec<(String, i32)> {
        let mut terms: Vec<(Vec<String>, i32)> = vec![(base.to_vec(), 1)];
        for s in splits {
            let mut options = vec![(vec![s.a.clone()], 1), (vec![s.b.clone()], 1)];
            if s.overlapping {
                options.push((vec![s.a.clone(), s.b.clone()], -1));
            }
            terms = terms
                .iter()
                .flat_map(|(conds, sign)| {
                    options.iter().map(move |(more, o)| {
                        let mut c = conds.clone();
                        c.extend(more.iter().cloned());
                        (c, sign * o)
                    })
                })
                .collect();
        }
        terms
            .into_iter()
            .map(|(c, sign)| (c.join(" AND "), sign))
            .collect()
    }
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::I(i) => q.bind(*i),
                Arg::T(s) => q.bind(s.as_str()),
                Arg::Tm(t) => q.bind(*t),
                Arg::D(d) => q.bind(*d),
            };
        }
        q
    }};
}

fn status_of(s: &str) -> TransferStatus {
    TransferStatus::parse(s).unwrap_or(TransferStatus::Closed)
}

impl App {
    /// The transfers the caller's organisation takes part in (authorities: those of the schools in
    /// their region), filtered; `todo` keeps those waiting for the caller.
    fn transfer_query(
        &self,
        user: &CurrentUser,
        f: &TransferFilter,
        page: Page,
    ) -> AppResult<Built> {
        let status = match f.status.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(
                TransferStatus::parse(s)
                    .ok_or_else(|| Error::validation("status", "状态值无效"))?
                    .as_str(),
            ),
            None => None,
        };
        let kind = match f.kind.as_deref().filter(|s| !s.is_empty()) {
            Some(k) => Some(
                TransferKind::parse(k)
                    .ok_or_else(|| {
                        Error::validation("kind", "类型应为 cross_province 或 intra_province")
                    })?
                    .as_str(),
            ),
            None => None,
        };
        let direction = match f.direction.as_deref().filter(|s| !s.is_empty()) {
            Some("in") => Some("in"),
            Some("out") => Some("out"),
            Some(_) => return Err(Error::validation("direction", "方向应为 in 或 out").into()),
            None => None,
        };
        let today = self.clock.today();
        let needs_step = f.todo.unwrap_or(false);
        let by_dates_alone = (f.from_date.is_some() || f.to_date.is_some())
            && status.is_none()
            && f.q.as_deref().is_none_or(|q| q.trim().is_empty())
            && !needs_step;
        let mut w = Where::default();
        // Sets of disjoint alternatives (an OR that is split): the statement becomes the union
        // of one branch per combination, each an AND that one index answers without reading rows.
        let mut alternatives: Vec<Split> = vec![];
        // Whose transfers: the school's own, the region's schools', or all.
        let scope = user.scope();
        match &scope {
            Scope::School { id, .. } => {
                let s = w.arg(Arg::I(*id));
                w.conds.push(match direction {
                    Some("in") => format!("t.to_school_id = {s}"),
                    Some(_) => format!("t.from_school_id = {s}"),
                    None => format!("(t.to_school_id = {s} OR t.from_school_id = {s})"),
                });
            }
            Scope::Region(r) => {
                let (lo, hi) = r.subtree_range();
                let (lo, hi) = (w.arg(Arg::T(lo)), w.arg(Arg::T(hi)));
                let to = format!("(t.to_region >= {lo} AND t.to_region < {hi})");
                let from = format!("(t.from_region >= {lo} AND t.from_region < {hi})");
                match direction {
                    Some("in") => w.conds.push(to),
                    Some(_) => w.conds.push(from),
                    // Filing dates lead one covering index (`transfers_created`) whose entries
                    // carry both regions: one pass over the dates tests the OR inside the index,
                    // where two halves would walk the same range twice and merge their ids.
                    None if by_dates_alone => w.conds.push(format!("({to} OR {from})")),
                    // Two disjoint halves, each searched by its own index (see `Built`).
                    None if !needs_step => alternatives
                        .push(Split::disjoint(to.clone(), format!("{from} AND NOT {to}"))),
                    None => w.conds.push(format!("({to} OR {from})")),
                }
            }
            Scope::National => {}
        }
        if let Some(s) = status {
            let p = w.arg(Arg::T(s.into()));
            w.conds.push(format!("t.status = {p}"));
        }
        if let Some(k) = kind {
            let p = w.arg(Arg::T(k.into()));
            w.conds.push(format!("t.kind = {p}"));
        }
        if let Some(q) =
            f.q.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_uppercase)
        {
            let exact = w.arg(Arg::T(q.clone()));
            let prefix = w.arg(Arg::T(format!("{q}%")));
            // A prefix is also a range of code points, which the name index walks: SQLite
            // compares text bytewise; PostgreSQL's index is in the "C" collation (0018), and a
            // range bound by parameters stays an index range in its generic plans.
            let collate = self.db.backend().code_point_order();
            let lo = w.arg(Arg::T(q.clone()));
            let hi = w.arg(Arg::T(format!("{q}\u{10FFFF}")));
            let name = format!(
                "t.student_name LIKE {prefix} AND t.student_name{collate} >= {lo} AND t.student_name{collate} < {hi}"
            );
            if needs_step {
                w.conds
                    .push(format!("(t.student_no = {exact} OR ({name}))"));
            } else {
                alternatives.push(Split::overlapping(format!("t.student_no = {exact}"), name));
            }
        }
        // Filing dates are Beijing days.
        if let Some(from) = f
            .from_date
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc() - chrono::Duration::hours(8))
        {
            let p = w.arg(Arg::Tm(from));
            w.conds.push(format!("t.created_at >= {p}"));
        }
        if let Some(to) = f
            .to_date
            .and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc() - chrono::Duration::hours(8))
        {
            let p = w.arg(Arg::Tm(to));
            w.conds.push(format!("t.created_at < {p}"));
        }
        if f.overdue.unwrap_or(false) {
            let p = w.arg(Arg::D(today));
            // The waiting step's due date is kept on the transfer while under review (0017). It
            // follows the region in the indexes, so it is compared entry by entry, as it is.
            let as_is = self.db.backend().date_as_is();
            w.conds.push(format!("{as_is}t.waiting_due < {p}"));
        }
        if f.todo.unwrap_or(false) {
            let (org_kind, org_code) = crate::notifications::org_key(&user.org);
            let can_review = matches!(user.role, Role::SchoolReviewer | Role::AuthorityAdmin);
            let mut either = vec![];
            if can_review {
                let k = w.arg(Arg::T(org_kind.to_string()));
                let c = w.arg(Arg::T(org_code.clone()));
                // Starting from the party's undecided steps (and those escalated to it) lets the
                // step indexes drive the query.
                let (mine, escalated) = if org_kind == "authority" {
                    (
                        format!(
                            "t.id IN (SELECT transfer_id FROM transfer_steps WHERE party_kind = {k} AND party_code = {c} AND decision IS NULL \
                             UNION ALL SELECT transfer_id FROM transfer_steps WHERE escalated_to = {c} AND decision IS NULL)"
                        ),
                        format!(" OR cs.escalated_to || '' = {c}"),
                    )
                } else {
                    (
                        format!(
                            "t.id IN (SELECT transfer_id FROM transfer_steps WHERE party_kind = {k} AND party_code = {c} AND decision IS NULL)"
                        ),
                        String::new(),
                    )
                };
                // The current step's party is compared as an expression (`|| ''`), which no
                // index serves: SQLite 3.50 otherwise drives the query from every undecided step
                // of the party (future steps of closed transfers too) through a multi-index OR,
                // 100 ms for a county at a million transfers instead of 2 ms.
                either.push(format!(
                    "({mine} AND cs.decision IS NULL AND t.status IN {OPEN_REVIEW} \
                     AND ((cs.party_kind || '' = {k} AND cs.party_code || '' = {c}){escalated}))"
                ));
            }
            if user.role.is_school()
                && let OrgRef::School(code) = &user.org
            {
                let s = w.arg(Arg::T(code.clone()));
                either.push(format!(
                    "(t.status = 'approved' AND t.to_school = {s}) OR (t.status = 'file_pulled' AND t.from_school = {s}) \
                     OR (t.status = 'paper_sent' AND t.to_school = {s})"
                ));
            }
            if either.is_empty() {
                w.conds.push("1 = 0".into());
            } else {
                w.conds.push(format!("({})", either.join(" OR ")));
            }
        }
        let step_join =
            "LEFT JOIN transfer_steps cs ON cs.transfer_id = t.id AND cs.idx = t.current_step";
        const COLUMNS: &str = "SELECT t.id, t.kind, t.status, t.student_no, t.student_name, t.from_school, fs.name AS from_school_name, \
             t.to_school, ts.name AS to_school_name, t.to_grade, t.created_at, cs.code AS step_code, cs.side AS step_side, \
             cs.role AS step_role, cs.shared AS step_shared, cs.due_date AS step_due, cs.decision AS step_decision \
             FROM transfers t JOIN schools fs ON fs.id = t.from_school_id JOIN schools ts ON ts.id = t.to_school_id";
        if alternatives.is_empty() {
            let where_ = w.sql();
            let count_sql = format!(
                "SELECT COUNT(*) FROM transfers t {} {where_}",
                if needs_step { step_join } else { "" }
            );
            let limit = w.arg(Arg::I(page.per_page));
            let offset = w.arg(Arg::I(page.offset()));
            let list_sql = if by_dates_alone {
                // The page's ids from the covering index first, then only their rows.
                format!(
                    "{COLUMNS} {step_join} WHERE t.id IN (SELECT t.id FROM transfers t {where_} \
                     ORDER BY t.id DESC LIMIT {limit} OFFSET {offset}) ORDER BY t.id DESC"
                )
            } else {
                format!(
                    "{COLUMNS} {step_join} {where_} ORDER BY t.id DESC LIMIT {limit} OFFSET {offset}"
                )
            };
            return Ok(Built {
                count_sql,
                list_sql,
                args: w.args,
            });
        }
        // Without the split, `(to OR from)` makes SQLite read every matching row of the
        // province to test the rest (seconds at a million transfers); each branch here is
        // answered from one covering index, and the page's ids are chosen before any row is read.
        let terms = Split::expand(&w.conds, &alternatives);
        let count_sql = format!(
            "SELECT 0{}",
            terms
                .iter()
                .map(|(c, sign)| format!(
                    " {} (SELECT COUNT(*) FROM transfers t WHERE {c})",
                    if *sign > 0 { '+' } else { '-' }
                ))
                .collect::<String>()
        );
        // Disjoint branches need no removal of duplicates: a UNION put every id of a province's
        // branches through a temporary B-tree before the page's sort (31 against 16 ms for the
        // 26,000 overdue transfers of a province at 10 million students).
        let union = if alternatives.iter().any(|s| s.overlapping) {
            " UNION "
        } else {
            " UNION ALL "
        };
        let ids = terms
            .iter()
            .filter(|(_, sign)| *sign > 0)
            .map(|(c, _)| format!("SELECT t.id FROM transfers t WHERE {c}"))
            .collect::<Vec<_>>()
            .join(union);
        let limit = w.arg(Arg::I(page.per_page));
        let offset = w.arg(Arg::I(page.offset()));
        let list_sql = format!(
            "{COLUMNS} {step_join} WHERE t.id IN (SELECT id FROM ({ids}) page ORDER BY id DESC LIMIT {limit} OFFSET {offset}) \
             ORDER BY t.id DESC"
        );
        Ok(Built {
            count_sql,
            list_sql,
            args: w.args,
        })
    }

    /// The query plans of the transfer query for these filters (count, then page), as the
    /// database explains them: SQLite `EXPLAIN QUERY PLAN` details, PostgreSQL `EXPLAIN` lines.
    /// A test checks that the hot shapes use their indexes.
    pub async fn transfer_query_plans(
        &self,
        user: &CurrentUser,
        f: &TransferFilter,
    ) -> AppResult<(Vec<String>, Vec<String>)> {
        let b = self.transfer_query(user, f, Page::default())?;
        let count_args = &b.args[..b.args.len() - 2];
        let count = self.explain(&b.count_sql, count_args).await?;
        let list = self.explain(&b.list_sql, &b.args).await?;
        Ok((count, list))
    }

    async fn explain(&self, sql: &str, args: &[Arg]) -> AppResult<Vec<String>> {
        Ok(match self.db.backend() {
            crate::Backend::Sqlite => {
                let sql = format!("EXPLAIN QUERY PLAN {sql}");
                let rows: Vec<(i64, i64, i64, String)> = on_pool!(self.db.read(), p => bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), args).fetch_all(p).await)?;
                rows.into_iter().map(|r| r.3).collect()
            }
            crate::Backend::Postgres => {
                let sql = format!("EXPLAIN {sql}");
                on_pool!(self.db.read(), p => bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str())), args).fetch_all(p).await)?
            }
        })
    }

    /// The transfers the caller's organisation takes part in (authorities: those of the schools in
    /// their region), filtered; `todo` keeps those waiting for the caller.
    pub async fn transfers(
        &self,
        user: &CurrentUser,
        f: &TransferFilter,
        page: Page,
    ) -> AppResult<Paged<TransferSummary>> {
        let Built {
            count_sql,
            list_sql,
            args,
        } = self.transfer_query(user, f, page)?;
        let today = self.clock.today();
        let count_args = &args[..args.len() - 2];
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            kind: String,
            status: String,
            student_no: String,
            student_name: String,
            from_school: String,
            from_school_name: String,
            to_school: String,
            to_school_name: String,
            to_grade: String,
            created_at: DateTime<Utc>,
            step_code: Option<String>,
            step_side: Option<String>,
            step_role: Option<String>,
            step_shared: Option<bool>,
            step_due: Option<NaiveDate>,
            step_decision: Option<String>,
        }
        // The count and the page at once, on two readers: at a province's scale each walks tens of
        // thousands of index entries, and one waiting for the other doubled the answer's time.
        let count = async {
            let n: i64 = on_pool!(self.db.read(), p => bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str())), count_args).fetch_one(p).await)?;
            AppResult::Ok(n)
        };
        let listed = async {
            let rows: Vec<Row> = on_pool!(self.db.read(), p => bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(list_sql.as_str())), &args).fetch_all(p).await)?;
            AppResult::Ok(rows)
        };
        let (total, rows) = tokio::try_join!(count, listed)?;
        let cal = self.calendar();
        let items = rows
            .into_iter()
            .map(|r| {
                let st = status_of(&r.status);
                let waiting = st.is_review() && r.step_decision.is_none();
                let spec = (waiting && r.step_side.is_some()).then(|| StepSpec {
                    side: if r.step_side.as_deref() == Some("in") {
                        Side::In
                    } else {
                        Side::Out
                    },
                    party: OrgRef::National,
                    role: match r.step_role.as_deref() {
                        Some("school_review") => StepRole::SchoolReview,
                        Some("leader_confirm") => StepRole::LeaderConfirm,
                        _ => StepRole::AuthorityReview,
                    },
                    shared: r.step_shared.unwrap_or(false),
                });
                let due = if waiting { r.step_due } else { None };
                let overdue_days = due.map(|d| cal.overdue_working_days(d, today)).unwrap_or(0);
                let due_soon = due.is_some_and(|d| {
                    overdue_days == 0 && cal.working_days_between(today, d) <= DUE_SOON_DAYS
                });
                TransferSummary {
                    id: r.id,
                    kind: r.kind,
                    status: r.status,
                    status_label: st.label_zh().to_string(),
                    student_no: r.student_no,
                    student_name: r.student_name,
                    from_school: r.from_school,
                    from_school_name: r.from_school_name,
                    to_school: r.to_school,
                    to_school_name: r.to_school_name,
                    to_grade: r.to_grade,
                    created_at: r.created_at,
                    current_step: if waiting { r.step_code } else { None },
                    waiting_label: spec.map(|s| s.waiting_zh()),
                    due_date: due,
                    overdue_days,
                    due_soon,
                }
            })
            .collect();
        Ok(Paged { items, total })
    }
}
