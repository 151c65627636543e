//! The working-day calendar (工作日) by which review deadlines are counted.
//!
//! Art. 14 gives each authority 10 *working days*; in China these follow the State Council's yearly
//! holiday notice, which moves weekend days around (调休). A date listed as [`DayKind::Workday`] is
//! worked even on a weekend, a date listed as [`DayKind::Holiday`] is off, and every other date
//! follows the plain Mon–Fri rule. So years the data does not cover yet (after
//! [`WorkCalendar::last_year`], before the next notice is loaded) fall back to Mon–Fri: the best
//! guess available, corrected as soon as the national administrator loads the new notice.
//!
//! Lookups are binary searches over a sorted `Vec`, and counting uses prefix sums, so list pages
//! that compute a deadline per row pay O(log n) per call and allocate nothing.

use std::sync::LazyLock;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode};

/// The shipped State Council notices, 2013 to the latest announced (`data/holidays.csv`).
pub const EMBEDDED_CSV: &str = include_str!("../../../data/holidays.csv");

static EMBEDDED: LazyLock<WorkCalendar> = LazyLock::new(|| {
    WorkCalendar::from_csv(EMBEDDED_CSV)
        .unwrap_or_else(|e| panic!("data/holidays.csv is malformed: {}", e.message))
});

/// What a holiday notice says about a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// A day off in an announced holiday period (weekend days inside the period may be listed too).
    Holiday,
    /// A make-up working day (调休上班), always a Saturday or Sunday.
    Workday,
}

impl DayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Holiday => "holiday",
            Self::Workday => "workday",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "holiday" => Some(Self::Holiday),
            "workday" => Some(Self::Workday),
            _ => None,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Holiday => "放假",
            Self::Workday => "调休上班",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    date: NaiveDate,
    kind: DayKind,
    name: String,
}

impl Entry {
    /// How this entry changes the Mon–Fri count of its date: a worked weekend adds one, a weekday
    /// off removes one; anything else agrees with Mon–Fri already.
    fn shift(&self) -> i64 {
        match (self.kind, is_weekday(self.date)) {
            (DayKind::Workday, false) => 1,
            (DayKind::Holiday, true) => -1,
            _ => 0,
        }
    }
}

/// The announced holidays and make-up working days, and working-day arithmetic over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCalendar {
    /// Sorted by date, one entry per date.
    entries: Vec<Entry>,
    /// `prefix[i]` = sum of [`Entry::shift`] over `entries[..i]`; length `entries.len() + 1`.
    prefix: Vec<i64>,
}

impl Default for WorkCalendar {
    /// No announcements: plain Mon–Fri.
    fn default() -> Self {
        Self::from_entries(std::iter::empty())
    }
}

impl WorkCalendar {
    /// The calendar shipped in `data/holidays.csv`.
    ///
    /// # Panics
    /// Only if the shipped file is malformed, which a unit test rules out.
    pub fn embedded() -> Self {
        EMBEDDED.clone()
    }

    /// Parses `date,kind,name` lines (`#` comments, blank lines and a `date,kind,name` header are
    /// skipped). Strict, because a wrong date silently moves every deadline: a bad line, a
    /// make-up working day on a weekday, or a date listed twice is refused with its line number.
    pub fn from_csv(text: &str) -> Result<Self, Error> {
        let mut rows: Vec<(usize, Entry)> = Vec::new();
        let mut header_allowed = true;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim_start_matches('\u{feff}').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.splitn(3, ',').map(str::trim).collect();
            if header_allowed && fields == ["date", "kind", "name"] {
                header_allowed = false;
                continue;
            }
            header_allowed = false;
            rows.push((line_no, parse_line(line_no, &fields)?));
        }
        rows.sort_by_key(|(_, e)| e.date);
        for pair in rows.windows(2) {
            let ((first, a), (second, b)) = (&pair[0], &pair[1]);
            if a.date == b.date {
                let (first, second) = ((*first).min(*second), (*first).max(*second));
                return Err(bad_line(
                    second,
                    format!("{} 已在第{first}行列出，请删除重复的一行", a.date),
                ));
            }
        }
        Ok(Self::build(rows.into_iter().map(|(_, e)| e).collect()))
    }

    /// Builds a calendar from rows such as those of the database table. A date given twice keeps
    /// the last row (an edit overrides the shipped value).
    pub fn from_entries(entries: impl IntoIterator<Item = (NaiveDate, DayKind, String)>) -> Self {
        let mut list: Vec<Entry> = entries
            .into_iter()
            .map(|(date, kind, name)| Entry { date, kind, name })
            .collect();
        // Stable sort keeps input order within a date; reversing makes the last one come first,
        // and dedup keeps the first of each run.
        list.reverse();
        list.sort_by_key(|e| e.date);
        list.dedup_by_key(|e| e.date);
        Self::build(list)
    }

    fn build(entries: Vec<Entry>) -> Self {
        let mut prefix = Vec::with_capacity(entries.len() + 1);
        let mut sum = 0;
        prefix.push(sum);
        for e in &entries {
            sum += e.shift();
            prefix.push(sum);
        }
        Self { entries, prefix }
    }

    /// All announced dates, sorted, for loading into the database table.
    pub fn entries(&self) -> Vec<(NaiveDate, DayKind, String)> {
        self.entries
            .iter()
            .map(|e| (e.date, e.kind, e.name.clone()))
            .collect()
    }

    /// What the notices say about `d`, with the festival's name; `None` for an ordinary day.
    pub fn day(&self, d: NaiveDate) -> Option<(DayKind, &str)> {
        self.find(d).map(|e| (e.kind, e.name.as_str()))
    }

    /// The year of the earliest announced date.
    pub fn first_year(&self) -> Option<i32> {
        self.entries.first().map(|e| e.date.year())
    }

    /// The year of the latest announced date; later years follow plain Mon–Fri.
    pub fn last_year(&self) -> Option<i32> {
        self.entries.last().map(|e| e.date.year())
    }

    /// Whether `year` lies within the announced years (so that the UI can warn when a deadline
    /// falls in a year whose notice is not loaded yet).
    pub fn covers_year(&self, year: i32) -> bool {
        matches!((self.first_year(), self.last_year()), (Some(a), Some(b)) if (a..=b).contains(&year))
    }

    fn find(&self, d: NaiveDate) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&d, |e| e.date)
            .ok()
            .map(|i| &self.entries[i])
    }

    /// A make-up working day is worked, a listed holiday is not, any other day is worked Mon–Fri.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        match self.find(d) {
            Some(e) => e.kind == DayKind::Workday,
            None => is_weekday(d),
        }
    }

    /// The `n`-th working day after `from` (`from` itself not counted); `n = 0` gives `from`.
    ///
    /// # Panics
    /// If the result lies beyond chrono's date range (`n` in the tens of millions); callers
    /// taking `n` from users should cap it or use [`Self::checked_add_working_days`].
    pub fn add_working_days(&self, from: NaiveDate, n: u32) -> NaiveDate {
        self.checked_add_working_days(from, n)
            .expect("working-day result beyond the representable date range")
    }

    /// [`Self::add_working_days`], or `None` when the result is not representable.
    pub fn checked_add_working_days(&self, from: NaiveDate, n: u32) -> Option<NaiveDate> {
        let n = i64::from(n);
        if n == 0 {
            return Some(from);
        }
        // The count of working days in (from, d] grows by at most one a day, so the first `d`
        // reaching `n` is itself a working day. Gallop to an upper bound, then bisect.
        let mut span: u64 = 2 * n.unsigned_abs() + 16;
        let mut hi = loop {
            let d = from.checked_add_days(Days::new(span))?;
            if self.working_days_between(from, d) >= n {
                break d;
            }
            span = span.checked_mul(2)?;
        };
        let mut lo = from;
        while (hi - lo).num_days() > 1 {
            let mid = lo + Days::new(((hi - lo).num_days() / 2).unsigned_abs());
            if self.working_days_between(from, mid) >= n {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// The due date of a step begun on `began` with `n` working days: the `n`-th working day
    /// counting `began` itself when it is a working day (a step begun on Friday with n = 1 is due
    /// that Friday; begun on Saturday, due on Monday). `n = 0` gives `began`.
    pub fn due_date(&self, began: NaiveDate, n: u32) -> NaiveDate {
        if n == 0 {
            return began;
        }
        let eve = began
            .checked_sub_days(Days::new(1))
            .expect("date before the representable range");
        self.add_working_days(eve, n)
    }

    /// Working days in `(a, b]`; negative (minus those in `(b, a]`) when `b < a`.
    pub fn working_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        if b < a {
            return -self.working_days_between(b, a);
        }
        let lo = self.entries.partition_point(|e| e.date <= a);
        let hi = self.entries.partition_point(|e| e.date <= b);
        weekdays_through(b) - weekdays_through(a) + self.prefix[hi] - self.prefix[lo]
    }

    /// How many working days a step due on `due` is overdue on `today`: working days in
    /// `(due, today]`, 0 when not overdue.
    pub fn overdue_working_days(&self, due: NaiveDate, today: NaiveDate) -> i64 {
        self.working_days_between(due, today).max(0)
    }
}

fn is_weekday(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Mon–Fri days from 0001-01-01 (a Monday, day number 1) through `d`, so that a difference of two
/// calls counts weekdays in a half-open range without walking it. Day number `x` is a weekday
/// exactly when `x mod 7` is 1..=5; euclidean division keeps this right before year 1 too.
fn weekdays_through(d: NaiveDate) -> i64 {
    let x = i64::from(d.num_days_from_ce());
    x.div_euclid(7) * 5 + x.rem_euclid(7).min(5)
}

fn bad_line(line_no: usize, what: String) -> Error {
    Error::new(
        ErrorCode::ValidationFailed,
        format!("节假日数据第{line_no}行：{what}"),
    )
}

fn parse_line(line_no: usize, fields: &[&str]) -> Result<Entry, Error> {
    let [date, kind, name] = fields else {
        return Err(bad_line(
            line_no,
            "应有“日期,类型,名称”三列，例如 2024-10-01,holiday,国庆节".into(),
        ));
    };
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
        bad_line(
            line_no,
            format!("日期“{date}”无效，请写成 YYYY-MM-DD，例如 2024-10-01"),
        )
    })?;
    let kind = DayKind::parse(kind).ok_or_else(|| {
        bad_line(
            line_no,
            format!("类型“{kind}”无效，请填写 holiday（放假）或 workday（调休上班）"),
        )
    })?;
    if name.is_empty() {
        return Err(bad_line(line_no, "请填写节日名称，例如 国庆节".into()));
    }
    if kind == DayKind::Workday && is_weekday(date) {
        return Err(bad_line(
            line_no,
            format!(
                "{date} 是{}，本来就是工作日；调休上班日应为周六或周日，请核对日期",
                weekday_zh(date.weekday())
            ),
        ));
    }
    Ok(Entry {
        date,
        kind,
        name: (*name).to_owned(),
    })
}

fn weekday_zh(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "星期一",
        Weekday::Tue => "星期二",
        Weekday::Wed => "星期三",
        Weekday::Thu => "星期四",
        Weekday::Fri => "星期五",
        Weekday::Sat => "星期六",
        Weekday::Sun => "星期日",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "\
# 2024 国庆节 and 2025 春节, as announced
date,kind,name
2024-09-29,workday,国庆节
2024-10-01,holiday,国庆节
2024-10-02,holiday,国庆节
2024-10-03,holiday,国庆节
2024-10-04,holiday,国庆节
2024-10-05,holiday,国庆节
2024-10-06,holiday,国庆节
2024-10-07,holiday,国庆节
2024-10-12,workday,国庆节

2025-01-26,workday,春节
2025-01-28,holiday,春节
2025-01-29,holiday,春节
2025-01-30,holiday,春节
2025-01-31,holiday,春节
2025-02-01,holiday,春节
2025-02-02,holiday,春节
2025-02-03,holiday,春节
2025-02-04,holiday,春节
2025-02-08,workday,春节
";

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn sample() -> WorkCalendar {
        WorkCalendar::from_csv(SAMPLE).unwrap()
    }

    #[test]
    fn national_day_2024_deadlines() {
        let c = sample();
        assert_eq!(c.due_date(d("2024-09-27"), 10), d("2024-10-15"));
        assert_eq!(c.add_working_days(d("2024-09-27"), 10), d("2024-10-16"));
        assert!(c.is_working_day(d("2024-09-29")), "Sunday make-up day");
        assert!(!c.is_working_day(d("2024-09-28")), "ordinary Saturday");
        assert!(!c.is_working_day(d("2024-10-07")), "Monday in the holiday");
        assert!(c.is_working_day(d("2024-10-12")), "Saturday make-up day");
        assert_eq!(c.add_working_days(d("2024-09-28"), 1), d("2024-09-29"));
        assert_eq!(c.add_working_days(d("2024-09-30"), 1), d("2024-10-08"));
    }

    #[test]
    fn spring_festival_2025() {
        let c = sample();
        assert!(c.is_working_day(d("2025-01-26")));
        assert!(
            c.is_working_day(d("2025-01-27")),
            "Monday before the holiday is worked"
        );
        assert!(!c.is_working_day(d("2025-02-03")));
        assert!(c.is_working_day(d("2025-02-08")));
        assert_eq!(c.add_working_days(d("2025-01-24"), 1), d("2025-01-26"));
        assert_eq!(c.add_working_days(d("2025-01-27"), 1), d("2025-02-05"));
        assert_eq!(c.due_date(d("2025-01-27"), 1), d("2025-01-27"));
        assert_eq!(c.due_date(d("2025-01-28"), 1), d("2025-02-05"));
        // 01-26, 01-27, 02-05, 02-06, 02-07, 02-08 (Saturday, worked).
        assert_eq!(c.working_days_between(d("2025-01-24"), d("2025-02-09")), 6);
        assert_eq!(c.working_days_between(d("2025-02-09"), d("2025-01-24")), -6);
        assert_eq!(c.day(d("2025-01-30")), Some((DayKind::Holiday, "春节")));
        assert_eq!(c.day(d("2025-03-03")), None);
    }

    #[test]
    fn zero_and_one_day_edges() {
        let c = sample();
        let fri = d("2024-09-27");
        assert_eq!(c.add_working_days(fri, 0), fri);
        assert_eq!(c.due_date(fri, 0), fri);
        assert_eq!(c.due_date(fri, 1), fri, "began on a working day counts");
        assert_eq!(c.due_date(d("2024-09-28"), 1), d("2024-09-29"));
        assert_eq!(c.working_days_between(fri, fri), 0);
    }

    #[test]
    fn overdue_counts_working_days_after_the_due_date() {
        let c = sample();
        let due = d("2024-09-30");
        assert_eq!(c.overdue_working_days(due, d("2024-09-30")), 0);
        assert_eq!(c.overdue_working_days(due, d("2024-09-01")), 0);
        assert_eq!(
            c.overdue_working_days(due, d("2024-10-07")),
            0,
            "holidays only"
        );
        assert_eq!(c.overdue_working_days(due, d("2024-10-08")), 1);
        assert_eq!(c.overdue_working_days(due, d("2024-10-13")), 5);
    }

    #[test]
    fn years_without_data_follow_monday_to_friday() {
        let c = sample();
        assert_eq!(c.first_year(), Some(2024));
        assert_eq!(c.last_year(), Some(2025));
        assert!(c.covers_year(2024) && c.covers_year(2025) && !c.covers_year(2031));
        // 2031-10-01 is a Wednesday: no notice loaded, so it is worked.
        assert_eq!(d("2031-10-01").weekday(), Weekday::Wed);
        assert!(c.is_working_day(d("2031-10-01")));
        assert!(!c.is_working_day(d("2031-10-04")));
        assert_eq!(c.add_working_days(d("2031-10-03"), 1), d("2031-10-06"));
        let empty = WorkCalendar::default();
        assert_eq!(empty.first_year(), None);
        assert_eq!(empty.last_year(), None);
        assert!(!empty.covers_year(2024));
        assert_eq!(empty.add_working_days(d("2024-09-27"), 10), d("2024-10-11"));
    }

    #[test]
    fn csv_accepts_comments_blank_lines_bom_crlf_and_no_header() {
        let text =
            "\u{feff}# c\r\n\r\n2024-10-01 , holiday , 国庆节\r\n2024-09-29,workday,国庆节\r\n";
        let c = WorkCalendar::from_csv(text).unwrap();
        assert_eq!(
            c.entries(),
            vec![
                (d("2024-09-29"), DayKind::Workday, "国庆节".to_owned()),
                (d("2024-10-01"), DayKind::Holiday, "国庆节".to_owned()),
            ]
        );
        assert_eq!(WorkCalendar::from_csv("").unwrap(), WorkCalendar::default());
    }

    fn csv_error(text: &str) -> Error {
        let e = WorkCalendar::from_csv(text).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        e
    }

    #[test]
    fn csv_refuses_bad_lines_with_their_number() {
        let e = csv_error("date,kind,name\n2024-10-01,holiday,国庆节\n2024-13-01,holiday,x\n");
        assert!(
            e.message.contains("第3行") && e.message.contains("2024-13-01"),
            "{e}"
        );
        let e = csv_error("2024-10-01,vacation,国庆节\n");
        assert!(
            e.message.contains("第1行") && e.message.contains("vacation"),
            "{e}"
        );
        let e = csv_error("# c\n2024-10-01,holiday\n");
        assert!(
            e.message.contains("第2行") && e.message.contains("三列"),
            "{e}"
        );
        let e = csv_error("2024-10-01,holiday, \n");
        assert!(e.message.contains("名称"), "{e}");
        // 2024-10-08 is a Tuesday: a make-up working day there is a typo.
        let e = csv_error("2024-10-08,workday,国庆节\n");
        assert!(e.message.contains("星期二"), "{e}");
        let e = csv_error(
            "2024-10-01,holiday,国庆节\n2024-10-02,holiday,国庆节\n2024-10-01,holiday,x\n",
        );
        assert!(
            e.message.contains("第3行") && e.message.contains("第1行"),
            "{e}"
        );
        // A header after data is just a bad line.
        let e = csv_error("2024-10-01,holiday,国庆节\ndate,kind,name\n");
        assert!(e.message.contains("第2行"), "{e}");
    }

    #[test]
    fn from_entries_sorts_and_keeps_the_last_of_a_date() {
        let c = WorkCalendar::from_entries([
            (d("2024-10-02"), DayKind::Holiday, "a".to_owned()),
            (d("2024-10-01"), DayKind::Holiday, "b".to_owned()),
            (d("2024-10-02"), DayKind::Workday, "c".to_owned()),
        ]);
        assert_eq!(
            c.entries(),
            vec![
                (d("2024-10-01"), DayKind::Holiday, "b".to_owned()),
                (d("2024-10-02"), DayKind::Workday, "c".to_owned()),
            ]
        );
        assert!(c.is_working_day(d("2024-10-02")));
        assert_eq!(WorkCalendar::from_entries(c.entries()), c);
    }

    #[test]
    fn day_kind_words() {
        for k in [DayKind::Holiday, DayKind::Workday] {
            assert_eq!(DayKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(DayKind::Workday.label_zh(), "调休上班");
        assert_eq!(DayKind::parse("Holiday"), None);
    }

    #[test]
    fn weekday_count_matches_chrono() {
        assert_eq!(d("0001-01-01").weekday(), Weekday::Mon);
        let c = WorkCalendar::default();
        assert_eq!(c.working_days_between(d("2024-09-27"), d("2024-10-04")), 5);
        assert_eq!(
            c.working_days_between(d("-0003-03-01"), d("-0003-03-08")),
            5
        );
    }

    /// The shipped file: every year 2013..=2026 present, and the 2024–2026 notices as announced.
    #[test]
    fn embedded_calendar_matches_the_notices() {
        let c = WorkCalendar::embedded();
        assert_eq!(c.first_year(), Some(2013));
        assert!(c.last_year() >= Some(2026));
        for year in 2013..=2026 {
            assert!(
                c.entries()
                    .iter()
                    .any(|(d, k, _)| d.year() == year && *k == DayKind::Holiday),
                "{year} missing"
            );
        }
        let worked = [
            // 2024
            "2024-02-04",
            "2024-02-18",
            "2024-04-07",
            "2024-04-28",
            "2024-05-11",
            "2024-09-14",
            "2024-09-29",
            "2024-10-12", // 2025
            "2025-01-26",
            "2025-02-08",
            "2025-04-27",
            "2025-09-28",
            "2025-10-11", // 2026
            "2026-01-04",
            "2026-02-14",
            "2026-02-28",
            "2026-05-09",
            "2026-09-20",
            "2026-10-10",
        ];
        let off = [
            "2024-01-01",
            "2024-02-12",
            "2024-02-16",
            "2024-04-04",
            "2024-05-03",
            "2024-06-10",
            "2024-09-16",
            "2024-10-01",
            "2024-10-07",
            "2025-01-01",
            "2025-01-28",
            "2025-02-04",
            "2025-04-04",
            "2025-05-05",
            "2025-06-02",
            "2025-10-06",
            "2025-10-08",
            "2026-01-02",
            "2026-02-16",
            "2026-02-23",
            "2026-04-06",
            "2026-05-05",
            "2026-06-19",
            "2026-09-25",
            "2026-10-07",
        ];
        for s in worked {
            assert!(c.is_working_day(d(s)), "{s} should be worked");
            assert_eq!(c.day(d(s)).map(|x| x.0), Some(DayKind::Workday), "{s}");
        }
        for s in off {
            assert!(!c.is_working_day(d(s)), "{s} should be off");
        }
        assert_eq!(c.due_date(d("2024-09-27"), 10), d("2024-10-15"));
        assert_eq!(c.add_working_days(d("2024-09-27"), 10), d("2024-10-16"));
        // 春节 2025: Fri 01-24 + 10 → 01-26, 01-27, 02-05..02-08, 02-10..02-13.
        assert_eq!(c.add_working_days(d("2025-01-24"), 10), d("2025-02-13"));
        // 春节 2026: holidays 02-15..02-23, 02-14 and 02-28 worked.
        assert_eq!(c.add_working_days(d("2026-02-13"), 1), d("2026-02-14"));
        assert_eq!(c.add_working_days(d("2026-02-14"), 1), d("2026-02-24"));
        assert_eq!(WorkCalendar::from_entries(c.entries()), c);
    }

    /// Day-by-day reference implementation.
    fn naive_add(c: &WorkCalendar, from: NaiveDate, n: u32) -> NaiveDate {
        let mut day = from;
        let mut left = n;
        while left > 0 {
            day = day.succ_opt().unwrap();
            if c.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    fn naive_between(c: &WorkCalendar, a: NaiveDate, b: NaiveDate) -> i64 {
        let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
        lo.iter_days()
            .skip(1)
            .take_while(|x| *x <= hi)
            .filter(|x| c.is_working_day(*x))
            .count() as i64
            * sign
    }

    fn date_in(lo: &str, hi: &str) -> impl Strategy<Value = NaiveDate> {
        let base = d(lo);
        let span = (d(hi) - base).num_days() as u64;
        (0..=span).prop_map(move |k| base + Days::new(k))
    }

    /// Random notices around 2024–2025, including odd ones (weekday workdays, weekend holidays).
    fn random_calendar() -> impl Strategy<Value = WorkCalendar> {
        prop::collection::vec((date_in("2024-01-01", "2025-12-31"), any::<bool>()), 0..120)
            .prop_map(|rows| {
                WorkCalendar::from_entries(rows.into_iter().map(|(date, worked)| {
                    let kind = if worked {
                        DayKind::Workday
                    } else {
                        DayKind::Holiday
                    };
                    (date, kind, "x".to_owned())
                }))
            })
    }

    proptest! {
        #[test]
        fn added_day_is_a_working_day_and_counts_back(from in date_in("2023-06-01", "2026-06-30"), n in 1u32..80) {
            let c = sample();
            let to = c.add_working_days(from, n);
            prop_assert!(c.is_working_day(to));
            prop_assert_eq!(c.working_days_between(from, to), i64::from(n));
            prop_assert_eq!(c.working_days_between(to, from), -i64::from(n));
        }

        #[test]
        fn add_is_strictly_monotone_in_n(from in date_in("2023-06-01", "2026-06-30"), n in 0u32..80) {
            let c = sample();
            prop_assert!(c.add_working_days(from, n) < c.add_working_days(from, n + 1));
            if n >= 1 {
                prop_assert!(c.due_date(from, n) >= from);
                prop_assert!(c.due_date(from, n) < c.due_date(from, n + 1));
            }
        }

        #[test]
        fn fast_paths_agree_with_walking(c in random_calendar(), a in date_in("2023-10-01", "2026-03-31"), b in date_in("2023-10-01", "2026-03-31"), n in 0u32..300) {
            prop_assert_eq!(c.working_days_between(a, b), naive_between(&c, a, b));
            prop_assert_eq!(c.add_working_days(a, n), naive_add(&c, a, n));
            let due = c.due_date(a, n.max(1));
            prop_assert_eq!(due, naive_add(&c, a.pred_opt().unwrap(), n.max(1)));
            prop_assert_eq!(c.overdue_working_days(a, b), naive_between(&c, a, b).max(0));
        }
    }

    #[test]
    fn absurd_counts_do_not_hang() {
        let c = sample();
        assert!(
            c.checked_add_working_days(d("2024-01-01"), u32::MAX)
                .is_none()
        );
        let far = c.add_working_days(d("2024-01-01"), 5_000_000);
        assert_eq!(c.working_days_between(d("2024-01-01"), far), 5_000_000);
    }
}
