//! Oversight of deadlines (督办): for every authority, the transfers waiting in its region —
//! waiting for it, due soon, overdue by how much — per school and per subordinate authority,
//! rolled up from county to city to province to nation; and stale cases for the province to
//! close with a reason (never purged silently).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{RegionCode, RegionLevel};
use xueji_domain::transfer::TransferStatus;
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditEvent};
use crate::auth::{CurrentUser, Scope};
use crate::error::{AppError, AppResult};
use crate::notifications::notify;
use crate::transfers::DUE_SOON_DAYS;
use crate::{App, on_pool, on_tx};

/// Counts for one row of the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// Steps waiting (not yet due soon nor overdue included).
    pub waiting: i64,
    pub due_soon: i64,
    pub overdue: i64,
    /// The largest overdue, in working days.
    pub max_overdue_days: i64,
}

impl Counts {
    /// Adds one party's group of steps.
    fn add(&mut self, g: &OpenGroup, max_overdue_days: i64) {
        self.waiting += g.n;
        self.overdue += g.overdue;
        self.due_soon += g.soon;
        self.max_overdue_days = self.max_overdue_days.max(max_overdue_days);
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DashboardRow {
    /// Region code (subordinate authority) or school code.
    pub code: String,
    pub name: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OverdueItem {
    pub transfer_id: i64,
    pub student_name: String,
    pub party_name: String,
    pub step_label: String,
    pub due_date: NaiveDate,
    pub overdue_days: i64,
    pub escalated_to: Option<String>,
}

/// The dashboard of one region (the caller's, or a subordinate one for drill-down).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// The region shown (null: the nation).
    pub region: Option<String>,
    pub region_name: String,
    /// Every open step whose acting party lies in the region.
    pub total: Counts,
    /// Steps waiting for the region's own authority (including escalated ones).
    pub own: Counts,
    /// Per subordinate region (cities of a province, counties of a city; provinces for the nation).
    pub by_region: Vec<DashboardRow>,
    /// Per school of the region (their own steps: school reviews), by school code; when more
    /// than 200 schools have steps waiting (a province), only the 200 most pressing (most
    /// overdue, then most waiting).
    pub by_school: Vec<DashboardRow>,
    /// How many schools of the region have steps waiting (`by_school` may show fewer).
    pub schools_waiting: i64,
    /// The most overdue steps first (at most 100).
    pub overdue: Vec<OverdueItem>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StaleItem {
    pub transfer_id: i64,
    pub kind: String,
    pub status: String,
    pub status_label: String,
    pub student_name: String,
    pub from_school_name: String,
    pub to_school_name: String,
    pub created_at: DateTime<Utc>,
    pub open_days: i64,
}

/// Open steps counted per party (the dashboard's unit of work): how many, how many overdue or
/// due soon (by the threshold dates of [`due_thresholds`]), the earliest due date. Read from
/// the JSON array of [`dashboard_sql::groups_json`], one array per group in field order.
#[derive(serde::Deserialize)]
struct OpenGroup {
    party_kind: String,
    party_code: String,
    party_region: String,
    escalated_to: Option<String>,
    n: i64,
    overdue: i64,
    soon: i64,
    earliest: Option<NaiveDate>,
}

/// One overdue step for the dashboard's list, read from the JSON array of
/// [`dashboard_sql::overdue_json`] in field order.
#[derive(serde::Deserialize)]
struct OverdueStep {
    transfer_id: i64,
    student_name: String,
    party_region: String,
    party_name: Option<String>,
    code: String,
    due_date: Option<NaiveDate>,
    escalated_to: Option<String>,
}

/// The steps waiting in a region (`$1`..`$2`) whose party lies in it: a range of the partial
/// index `transfer_steps_waiting` (0016), read from the index alone and in the order the
/// dashboard groups by. A waiting step is its transfer's current step while under review, so
/// no transfer is looked up to count them.
const IN_REGION: &str =
    "FROM transfer_steps WHERE waiting = 1 AND party_region >= $1 AND party_region < $2";

/// The waiting steps escalated into the region whose party lies outside it (disjoint from
/// [`IN_REGION`]).
const ESCALATED_IN: &str = "FROM transfer_steps WHERE escalated_to >= $1 AND escalated_to < $2 \
     AND waiting = 1 AND NOT (party_region >= $1 AND party_region < $2)";

/// The waiting party's name, joined after limiting (not once per waiting step).
const PARTY_NAME: &str = "LEFT JOIN schools sc ON g.party_kind = 'school' AND sc.code = g.party_code \
     LEFT JOIN authorities a ON g.party_kind = 'authority' AND a.region_code = g.party_code";

/// The dashboard's two statements (`$1`..`$2` the region's range, `$3`..`$4` the threshold
/// dates), public for the test that checks their plans.
#[doc(hidden)]
pub mod dashboard_sql {
    use super::{ESCALATED_IN, IN_REGION, PARTY_NAME};

    /// Waiting steps of parties in `$1`..`$2` counted per party and escalation: `$3` due before
    /// it is overdue, `$4` due from `$3` and before it is due soon.
    pub fn groups(backend: crate::Backend) -> String {
        format!("{} {IN_REGION} {BY}", cols(backend))
    }

    /// The same for the steps escalated into the region from outside it (`$1`..`$2` the whole
    /// region): their groups are disjoint from [`groups`]'s, whose party is in the region.
    pub fn escalated_groups(backend: crate::Backend) -> String {
        format!("{} {ESCALATED_IN} {BY}", cols(backend))
    }

    /// `inner` ([`groups`], [`escalated_groups`]) as one row: a JSON array of the groups.
    /// A province has thousands of groups, and the driver hands rows over one at a time between
    /// threads (about 2 µs each, more than SQLite takes to count them); one text is one hand-over.
    pub fn groups_json(backend: crate::Backend, inner: &str) -> String {
        // In the field order of `OpenGroup`, which serde reads from an array.
        json_rows(
            backend,
            inner,
            "party_kind, party_code, party_region, escalated_to, n, overdue, soon, earliest",
        )
    }

    /// [`overdue`] as one row, a JSON array in the field order of `OverdueStep`: its 300 rows
    /// one by one waited each for a turn on a core that the groups' counting kept busy (25 ms
    /// for 2 ms of work in a province).
    pub fn overdue_json(backend: crate::Backend, by_due_date: bool) -> String {
        json_rows(
            backend,
            &overdue(backend, by_due_date),
            "transfer_id, student_name, party_region, party_name, code, due_date, escalated_to",
        )
    }

    /// The rows of `inner` as one JSON array of arrays of `cols` (`[]` when none).
    fn json_rows(backend: crate::Backend, inner: &str, cols: &str) -> String {
        match backend {
            crate::Backend::Sqlite => {
                format!("SELECT json_group_array(json_array({cols})) FROM ({inner}) g")
            }
            crate::Backend::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_array({cols}))::text, '[]') FROM ({inner}) g"
            ),
        }
    }

    /// Every waiting step's due date is compared with both dates, as it is
    /// ([`crate::Backend::date_as_is`]).
    fn cols(backend: crate::Backend) -> String {
        let due = format!("{}due_date", backend.date_as_is());
        format!(
            "SELECT party_kind, party_code, party_region, escalated_to, COUNT(*) AS n, \
             SUM(CASE WHEN {due} < $3 THEN 1 ELSE 0 END) AS overdue, \
             SUM(CASE WHEN {due} >= $3 AND {due} < $4 THEN 1 ELSE 0 END) AS soon, \
             MIN(due_date) AS earliest"
        )
    }
    const BY: &str = "GROUP BY party_region, party_kind, party_code, escalated_to";

    /// The longest overdue steps first (`$3`: due before it is overdue), then their transfers
    /// and parties, 300 at most. `by_due_date` (a province, the nation): the region's steps are
    /// read in due-date order from `transfer_steps_waiting_due` (0020) and the first 300 taken,
    /// where a city or county reads its own, smaller range of `transfer_steps_waiting` and sorts.
    /// SQLite is told the index (its planner prefers the region's range whatever its size);
    /// PostgreSQL's weighs the region's share of the steps itself.
    pub fn overdue(backend: crate::Backend, by_due_date: bool) -> String {
        let cols = "SELECT transfer_id, party_kind, party_code, party_region, code, due_date, escalated_to";
        let in_region = match (backend, by_due_date) {
            (crate::Backend::Sqlite, true) => IN_REGION.replacen(
                "FROM transfer_steps",
                "FROM transfer_steps INDEXED BY transfer_steps_waiting_due",
                1,
            ),
            _ => IN_REGION.to_string(),
        };
        format!(
            "SELECT g.transfer_id, t.student_name, g.party_region, COALESCE(sc.name, a.name) AS party_name, g.code, \
             g.due_date, g.escalated_to FROM ({cols} {in_region} AND due_date < $3 \
             UNION ALL {cols} {ESCALATED_IN} AND due_date < $3 ORDER BY due_date, transfer_id LIMIT 300) g \
             JOIN transfers t ON t.id = g.transfer_id {PARTY_NAME} ORDER BY g.due_date, g.transfer_id"
        )
    }
}

/// The two dates the dashboard counts by: a step due before the first is overdue on `today`
/// (at least one working day past its due date), one due from the first and before the second
/// is due soon (within [`DUE_SOON_DAYS`] working days). The same rule as
/// `overdue_working_days` and `working_days_between`, turned into dates once per request.
fn due_thresholds(
    cal: &xueji_domain::calendar::WorkCalendar,
    today: NaiveDate,
) -> (NaiveDate, NaiveDate) {
    let mut overdue_before = today;
    while let Some(prev) = overdue_before.pred_opt()
        && cal.overdue_working_days(prev, today) == 0
    {
        overdue_before = prev;
    }
    let mut soon_before = today.succ_opt().unwrap_or(today);
    while cal.working_days_between(today, soon_before) <= DUE_SOON_DAYS {
        match soon_before.succ_opt() {
            Some(next) => soon_before = next,
            None => break,
        }
    }
    (overdue_before, soon_before)
}

/// The dashboard lists at most this many schools: a province has thousands with steps
/// waiting, which no one reads on one page (and which made its answer megabytes).
pub const SCHOOLS_SHOWN: usize = 200;

/// The schools to show, in code order: all of them, or the most pressing [`SCHOOLS_SHOWN`].
fn most_pressing(mut rows: Vec<DashboardRow>) -> Vec<DashboardRow> {
    if rows.len() > SCHOOLS_SHOWN {
        rows.sort_by(|a, b| {
            (
                b.counts.overdue,
                b.counts.max_overdue_days,
                b.counts.waiting,
            )
                .cmp(&(
                    a.counts.overdue,
                    a.counts.max_overdue_days,
                    a.counts.waiting,
                ))
                .then_with(|| a.code.cmp(&b.code))
        });
        rows.truncate(SCHOOLS_SHOWN);
        rows.sort_by(|a, b| a.code.cmp(&b.code));
    }
    rows
}

fn step_label(code: &str) -> &'static str {
    match code {
        "in_school" => "转入学校审核",
        "out_school" => "转出学校审核",
        "in_authority" => "转入学籍主管部门审核",
        "out_authority" => "转出学籍主管部门审核",
        "shared_authority" => "学籍主管部门审核",
        c if c.ends_with("leader") => "主管部门领导确认",
        _ => "审核",
    }
}

impl App {
    /// The region a dashboard may show for the caller: its own region, or one inside it.
    fn dashboard_region(
        &self,
        user: &CurrentUser,
        region: Option<&str>,
    ) -> AppResult<Option<RegionCode>> {
        let own = match user.scope() {
            Scope::National => None,
            Scope::Region(r) => Some(r),
            Scope::School { .. } => return Err(Error::forbidden("督办统计面向学籍主管部门").into()),
        };
        match region.filter(|r| !r.is_empty()) {
            None => Ok(own),
            Some(r) => {
                let r = RegionCode::parse(r).map_err(|e| e.at("region"))?;
                match &own {
                    Some(o) if !o.contains(r.as_str()) => Err(Error::not_found("该地区").into()),
                    _ => Ok(Some(r)),
                }
            }
        }
    }

    /// A `wide` region's (a province's, the nation's) code range cut in two at its middle
    /// subordinate region (a province at its middle city); any other whole: contiguous, together
    /// exactly `lo..hi`.
    async fn dashboard_pieces(
        &self,
        region: Option<&RegionCode>,
        wide: bool,
        lo: &str,
        hi: &str,
    ) -> AppResult<Vec<(String, String)>> {
        if wide {
            let children = self.regions(region.map(|r| r.as_str())).await?;
            if let Some(mid) = children.get(children.len() / 2).map(|c| c.code.clone())
                && mid.as_str() > lo
                && mid.as_str() < hi
            {
                return Ok(vec![(lo.to_string(), mid.clone()), (mid, hi.to_string())]);
            }
        }
        Ok(vec![(lo.to_string(), hi.to_string())])
    }

    /// Names by code from `table` (`schools` or `regions`), in one statement.
    async fn names_by_code(
        &self,
        table: &'static str,
        codes: &[&str],
    ) -> AppResult<HashMap<String, String>> {
        if codes.is_empty() {
            return Ok(HashMap::new());
        }
        let marks: Vec<String> = (1..=codes.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT code, name FROM {table} WHERE code IN ({})",
            marks.join(", ")
        );
        let rows: Vec<(String, String)> = on_pool!(self.db.read(), p => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            for c in codes {
                q = q.bind(*c);
            }
            q.fetch_all(p).await
        })?;
        Ok(rows.into_iter().collect())
    }

    pub async fn dashboard(
        &self,
        user: &CurrentUser,
        region: Option<&str>,
    ) -> AppResult<Dashboard> {
        let region = self.dashboard_region(user, region)?;
        let (lo, hi) = region
            .as_ref()
            .map(|r| r.subtree_range())
            .unwrap_or(("000000".into(), "999999".into()));
        // Counted in the database per party, overdue and due soon against two threshold dates:
        // a province has tens of thousands of open steps but one row per waiting party.
        let cal = self.calendar();
        let today = self.clock.today();
        let (overdue_before, soon_before) = due_thresholds(&cal, today);
        // A province or the nation: tens of thousands of waiting steps.
        let wide = region
            .as_ref()
            .is_none_or(|r| r.level() == RegionLevel::Province);
        // A wide region's waiting steps are grouped in two halves at once, on two reader
        // connections; the escalated ones and the overdue list beside them.
        let pieces = self
            .dashboard_pieces(region.as_ref(), wide, &lo, &hi)
            .await?;
        let backend = self.db.backend();
        let read_groups = |inner: String, a: String, b: String| async move {
            let sql = dashboard_sql::groups_json(backend, &inner);
            let json: String = on_pool!(self.db.read(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&a).bind(&b).bind(overdue_before).bind(soon_before).fetch_one(p).await)?;
            serde_json::from_str::<Vec<OpenGroup>>(&json)
                .map_err(|e| AppError::Other(format!("dashboard groups: {e}")))
        };
        let groups_in =
            |(a, b): (String, String)| read_groups(dashboard_sql::groups(backend), a, b);
        let escalated = read_groups(
            dashboard_sql::escalated_groups(backend),
            lo.clone(),
            hi.clone(),
        );
        // The longest overdue first: the earliest due dates, with a margin for ties in working days.
        let late = async {
            let sql = dashboard_sql::overdue_json(backend, wide);
            let json: String = on_pool!(self.db.read(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&lo).bind(&hi).bind(overdue_before).fetch_one(p).await)?;
            serde_json::from_str::<Vec<OverdueStep>>(&json)
                .map_err(|e| AppError::Other(format!("dashboard overdue: {e}")))
        };
        let mut pieces = pieces.into_iter();
        let (first, second) = (pieces.next(), pieces.next());
        let (mut groups, more, escalated, late) = tokio::try_join!(
            groups_in(first.unwrap_or((lo.clone(), hi.clone()))),
            async {
                match second {
                    Some(piece) => groups_in(piece).await,
                    None => Ok(vec![]),
                }
            },
            escalated,
            late,
        )?;
        groups.extend(more);
        groups.extend(escalated);
        let child_of = |code: &str| -> String {
            match region.as_ref().map(|r| r.level()) {
                None => format!("{}0000", &code[0..2]),
                Some(RegionLevel::Province) => format!("{}00", &code[0..4]),
                Some(_) => code.to_string(),
            }
        };
        let own_code = region.as_ref().map(|r| r.as_str().to_string());
        let mut total = Counts::default();
        let mut own = Counts::default();
        let mut by_region: BTreeMap<String, Counts> = BTreeMap::new();
        let mut by_school: BTreeMap<String, Counts> = BTreeMap::new();
        let mut overdue = vec![];
        // Thousands of groups share a few dozen earliest due dates.
        let mut overdue_days: HashMap<NaiveDate, i64> = HashMap::new();
        for r in &groups {
            let od = match r.earliest {
                Some(d) if r.overdue > 0 => *overdue_days
                    .entry(d)
                    .or_insert_with(|| cal.overdue_working_days(d, today)),
                _ => 0,
            };
            let in_region =
                r.party_region.as_str() >= lo.as_str() && r.party_region.as_str() < hi.as_str();
            if in_region {
                total.add(r, od);
                let child = child_of(&r.party_region);
                if Some(&child) != own_code.as_ref() || r.party_kind == "school" {
                    by_region.entry(child).or_default().add(r, od);
                }
                if r.party_kind == "school" {
                    by_school
                        .entry(r.party_code.clone())
                        .or_default()
                        .add(r, od);
                }
            }
            let mine = (r.party_kind == "authority" && Some(&r.party_code) == own_code.as_ref())
                || (r.escalated_to.is_some() && r.escalated_to == own_code);
            if mine {
                own.add(r, od);
            }
        }
        for r in &late {
            let od = r
                .due_date
                .map(|d| cal.overdue_working_days(d, today))
                .unwrap_or(0);
            let in_region =
                r.party_region.as_str() >= lo.as_str() && r.party_region.as_str() < hi.as_str();
            if od > 0 && in_region {
                overdue.push(OverdueItem {
                    transfer_id: r.transfer_id,
                    student_name: r.student_name.clone(),
                    party_name: r.party_name.clone().unwrap_or_default(),
                    step_label: step_label(&r.code).into(),
                    due_date: r.due_date.unwrap_or(today),
                    overdue_days: od,
                    escalated_to: r.escalated_to.clone(),
                });
            }
        }
        overdue.sort_by(|a, b| {
            b.overdue_days
                .cmp(&a.overdue_days)
                .then(a.transfer_id.cmp(&b.transfer_id))
        });
        overdue.truncate(100);
        // The subordinate regions' names and the region's own, in one statement.
        let mut wanted: Vec<&str> = by_region.keys().map(String::as_str).collect();
        if let Some(r) = &region {
            wanted.push(r.as_str());
        }
        let region_names = self.names_by_code("regions", &wanted).await?;
        let regions = by_region
            .into_iter()
            .map(|(code, counts)| DashboardRow {
                name: region_names
                    .get(&code)
                    .cloned()
                    .unwrap_or_else(|| code.clone()),
                code,
                counts,
            })
            .collect();
        let schools_waiting = by_school.len() as i64;
        let mut by_school = most_pressing(
            by_school
                .into_iter()
                .map(|(code, counts)| DashboardRow {
                    code,
                    name: String::new(),
                    counts,
                })
                .collect(),
        );
        // Named after choosing: a province has thousands of schools with steps waiting.
        let codes: Vec<&str> = by_school.iter().map(|r| r.code.as_str()).collect();
        let names = self.names_by_code("schools", &codes).await?;
        for row in &mut by_school {
            row.name = names.get(&row.code).cloned().unwrap_or_default();
        }
        let region_name = match &region {
            Some(r) => region_names.get(r.as_str()).cloned().unwrap_or_default(),
            None => "全国".into(),
        };
        Ok(Dashboard {
            region: region.map(|r| r.as_str().to_string()),
            region_name,
            total,
            own,
            by_region: regions,
            schools_waiting,
            by_school,
            overdue,
        })
    }

    /// Open cases older than `days` calendar days in the caller's region (default 183: six months).
    pub async fn stale_transfers(
        &self,
        user: &CurrentUser,
        days: Option<i64>,
    ) -> AppResult<Vec<StaleItem>> {
        let region = self.dashboard_region(user, None)?;
        let (lo, hi) = region
            .as_ref()
            .map(|r| r.subtree_range())
            .unwrap_or(("000000".into(), "999999".into()));
        let days = days.unwrap_or(183).clamp(1, 3650);
        let now = self.clock.now();
        let cutoff = now - chrono::Duration::days(days);
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            kind: String,
            status: String,
            student_name: String,
            from_name: String,
            to_name: String,
            created_at: DateTime<Utc>,
        }
        let rows: Vec<Row> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT t.id, t.kind, t.status, t.student_name, fs.name AS from_name, ts.name AS to_name, t.created_at \
             FROM transfers t JOIN schools fs ON fs.id = t.from_school_id JOIN schools ts ON ts.id = t.to_school_id \
             WHERE t.status IN ('in_school_review','in_authority_review','out_school_review','out_authority_review','approved') \
             AND t.created_at < $1 AND ((t.to_region >= $2 AND t.to_region < $3) OR (t.from_region >= $2 AND t.from_region < $3)) \
             ORDER BY t.created_at LIMIT 1000"
        ).bind(cutoff).bind(&lo).bind(&hi).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let st = TransferStatus::parse(&r.status).unwrap_or(TransferStatus::Approved);
                StaleItem {
                    transfer_id: r.id,
                    kind: r.kind,
                    status: r.status,
                    status_label: st.label_zh().into(),
                    student_name: r.student_name,
                    from_school_name: r.from_name,
                    to_school_name: r.to_name,
                    open_days: (now - r.created_at).num_days(),
                    created_at: r.created_at,
                }
            })
            .collect())
    }

    /// Closes a stale case with a reason: a provincial authority of either side, or the national
    /// administrator. The student is unlocked; both schools are told; the row stays.
    pub async fn close_transfer(
        &self,
        user: &CurrentUser,
        id: i64,
        reason: &str,
    ) -> AppResult<crate::transfers::TransferDetail> {
        let Some((t, _)) = self.load(id).await? else {
            return Err(Error::not_found("该转学申请").into());
        };
        let allowed = match (&user.org, user.role) {
            (_, Role::NationalAdmin) => true,
            (OrgRef::Authority(r), Role::AuthorityAdmin) => {
                r.ends_with("0000")
                    && (t.from_region.starts_with(&r[0..2]) || t.to_region.starts_with(&r[0..2]))
            }
            _ => false,
        };
        if !allowed {
            // Others who may see it learn they may not act; outsiders learn nothing.
            self.transfer(user, id).await?;
            return Err(Error::forbidden("超期案件只能由省级学籍主管部门关闭").into());
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::new(ErrorCode::ReasonRequired, "关闭案件须填写理由")
                .at("reason")
                .into());
        }
        let st = TransferStatus::parse(&t.status).unwrap_or(TransferStatus::Completed);
        if !(st.is_review() || st == TransferStatus::Approved) {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("该转学当前{}，不能关闭", st.label_zh()),
            )
            .into());
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE transfers SET status = 'closed', closed_reason = $1, waiting_due = NULL, version = version + 1, updated_at = $2 WHERE id = $3 AND version = $4"
        ).bind(reason).bind(now).bind(id).bind(t.version).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if n != 1 {
            return Err(Error::conflict().into());
        }
        on_tx!(&mut tx, c => sqlx::query("DELETE FROM open_businesses WHERE student_id = $1 AND kind = 'transfer' AND ref_id = $2")
            .bind(t.student_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        on_tx!(&mut tx, c => sqlx::query(crate::transfers::STOP_WAITING_SQL).bind(id)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        let text = format!(
            "学生{}的转学申请已由省级学籍主管部门关闭：{reason}",
            t.student_name
        );
        for org in [
            OrgRef::School(t.to_school.clone()),
            OrgRef::School(t.from_school.clone()),
        ] {
            notify(&mut tx, &org, "closed", Some(id), &text, now).await?;
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "transfer.close",
                entity_type: "transfer",
                entity_id: id.to_string(),
                before: Some(serde_json::json!({ "status": t.status })),
                after: Some(serde_json::json!({ "status": "closed", "reason": reason })),
            },
            None,
        )
        .await?;
        crate::dock::outbox(&mut tx, id, "transfer.close", now).await?;
        tx.commit().await?;
        self.transfer(user, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_dates_count_as_the_per_date_rule_does() {
        let cal = xueji_domain::calendar::WorkCalendar::embedded();
        let start = NaiveDate::from_ymd_opt(2026, 9, 20).unwrap();
        // Weekends, the National Day week and its make-up working days included.
        for t in 0..40 {
            let today = start + chrono::Duration::days(t);
            let (overdue_before, soon_before) = due_thresholds(&cal, today);
            for d in -40..40 {
                let due = today + chrono::Duration::days(d);
                let od = cal.overdue_working_days(due, today);
                let soon = od == 0 && cal.working_days_between(today, due) <= DUE_SOON_DAYS;
                assert_eq!(
                    due < overdue_before,
                    od > 0,
                    "overdue: due {due}, today {today}"
                );
                assert_eq!(
                    due >= overdue_before && due < soon_before,
                    soon,
                    "due soon: due {due}, today {today}"
                );
            }
        }
    }

    #[test]
    fn a_province_lists_its_most_pressing_schools_in_code_order() {
        let row = |i: i64, overdue: i64, waiting: i64| DashboardRow {
            code: format!("41{i:08}"),
            name: format!("学校{i}"),
            counts: Counts {
                waiting,
                due_soon: 0,
                overdue,
                max_overdue_days: overdue,
            },
        };
        // A county's few schools: all of them, as they came.
        let few: Vec<_> = (0..5).map(|i| row(i, 0, 1)).collect();
        assert_eq!(most_pressing(few.clone()).len(), 5);
        // A province's thousands: the overdue first, then the most waiting; shown by code.
        let many: Vec<_> = (0..1000)
            .map(|i| row(i, if i % 10 == 0 { i } else { 0 }, i % 7))
            .collect();
        let shown = most_pressing(many);
        assert_eq!(shown.len(), SCHOOLS_SHOWN);
        assert!(shown.windows(2).all(|w| w[0].code < w[1].code));
        let overdue = shown.iter().filter(|r| r.counts.overdue > 0).count();
        assert_eq!(
            overdue, 99,
            "every school with steps overdue (school 0 has none)"
        );
        assert!(
            shown
                .iter()
                .filter(|r| r.counts.overdue == 0)
                .all(|r| r.counts.waiting == 6),
            "then those with the most waiting"
        );
    }
}
