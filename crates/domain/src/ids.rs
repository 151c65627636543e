//! Identifiers and codes parsed from outside data: 身份证号 (GB 11643), 学籍号 (G/J/L),
//! region codes (GB/T 2260), 学校标识码, grades and gender.
//!
//! Every entry path parses through here, so a bad check digit is refused everywhere — the real
//! system's import skipped it and produced 1.3 million problem records.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode};

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Provincial prefixes in use: the 31 mainland provinces, 兵团 (66, education convention),
/// and 台湾/香港/澳门 (71/81/82) which appear in identity numbers.
const PROVINCE_PREFIXES: [&str; 35] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "66",
    "71", "81", "82",
];

/// The GB 11643 (ISO 7064 MOD 11-2) check character of the first 17 characters.
/// `None` if they are not 17 ASCII digits.
pub fn check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(CHECK_CHARS[(sum % 11) as usize])
}

fn parse_yyyymmdd(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y = s[0..4].parse().ok()?;
    let m = s[4..6].parse().ok()?;
    let d = s[6..8].parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d).filter(|d| d.year() >= 1900)
}

/// A resident identity number (居民身份证号码), 18 characters with a valid check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdNumber(String);

impl IdNumber {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let s = input.trim().to_ascii_uppercase();
        let bad = |why: &str| {
            Error::new(
                ErrorCode::InvalidIdNumber,
                format!("身份证号码{why}，请核对证件后重新填写"),
            )
            .at("id_number")
        };
        if s.chars().count() != 18 || !s.is_ascii() {
            return Err(bad("应为18位数字（最后一位可为X）"));
        }
        let (body, check) = s.split_at(17);
        let Some(expected) = check_char(body) else {
            return Err(bad("前17位应为数字"));
        };
        if !PROVINCE_PREFIXES.contains(&&body[0..2]) {
            return Err(bad("的地区码无效"));
        }
        if parse_yyyymmdd(&body[6..14]).is_none() {
            return Err(bad("中的出生日期无效"));
        }
        if !check.starts_with(expected) {
            return Err(bad("校验位不正确"));
        }
        Ok(Self(s))
    }

    /// Builds a valid number from its parts (demo data, tests). `seq` is the 3-digit sequence;
    /// odd means male, even female.
    pub fn from_parts(region: &str, birth: NaiveDate, seq: u16) -> Self {
        let body = format!("{region}{}{:03}", birth.format("%Y%m%d"), seq % 1000);
        let c = check_char(&body).expect("17 digits");
        Self(format!("{body}{c}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn region_code(&self) -> &str {
        &self.0[0..6]
    }

    pub fn birth_date(&self) -> NaiveDate {
        parse_yyyymmdd(&self.0[6..14]).expect("validated at parse")
    }

    pub fn gender(&self) -> Gender {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// `410105********123X`: lists and exports show this, never the whole number.
    pub fn masked(&self) -> String {
        mask_document(&self.0)
    }
}

impl TryFrom<String> for IdNumber {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<IdNumber> for String {
    fn from(v: IdNumber) -> String {
        v.0
    }
}

/// Masks any identity document number: an 18-character number keeps its first 6 and last 4
/// characters; shorter ones keep at most a quarter at each end.
pub fn mask_document(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let n = chars.len();
    let (head, tail) = if n == 18 { (6, 4) } else { (n / 4, n / 4) };
    let mut out = String::with_capacity(n + 8);
    out.extend(&chars[..head]);
    out.extend(std::iter::repeat_n('*', n - head - tail));
    out.extend(&chars[n - tail..]);
    out
}

/// Kinds of 学籍号.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudentNoKind {
    /// `G` + 身份证号: formal, after the identity check (公安比对).
    Formal,
    /// `J` + self code: formal, for students without a usable identity number.
    FormalSelfCoded,
    /// `L` + area code + birth date + 4 digits: temporary, valid for all business.
    Temporary,
}

/// A national student number (全国学籍号), 19 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StudentNo(String);

impl StudentNo {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let s = input.trim().to_ascii_uppercase();
        let bad = |why: &str| {
            Error::new(
                ErrorCode::InvalidStudentNo,
                format!("学籍号{why}，请核对后重新填写"),
            )
            .at("student_no")
        };
        if s.chars().count() != 19 || !s.is_ascii() {
            return Err(bad("应为19位"));
        }
        let rest = &s[1..];
        match &s[0..1] {
            "G" => {
                IdNumber::parse(rest).map_err(|e| {
                    Error::new(
                        ErrorCode::InvalidStudentNo,
                        format!("G字头学籍号中的{}", e.message),
                    )
                    .at("student_no")
                })?;
            }
            "J" => {
                let (body, check) = rest.split_at(17);
                if check_char(body)
                    .and_then(|c| check.chars().next().filter(|&x| x == c))
                    .is_none()
                    || parse_yyyymmdd(&body[6..14]).is_none()
                {
                    return Err(bad("（J字头）的出生日期或校验位不正确"));
                }
            }
            "L" => {
                if !rest.bytes().all(|b| b.is_ascii_digit())
                    || parse_yyyymmdd(&rest[6..14]).is_none()
                {
                    return Err(bad("（L字头临时学籍号）应为地区码、出生日期和4位数字"));
                }
            }
            _ => return Err(bad("应以G、J或L开头")),
        }
        Ok(Self(s))
    }

    pub fn formal(id: &IdNumber) -> Self {
        Self(format!("G{}", id.as_str()))
    }

    /// `L` + area code + birth date + 4 digits.
    pub fn temporary(area: &str, birth: NaiveDate, four: u16) -> Self {
        Self(format!(
            "L{area}{}{:04}",
            birth.format("%Y%m%d"),
            four % 10_000
        ))
    }

    pub fn kind(&self) -> StudentNoKind {
        match self.0.as_bytes()[0] {
            b'G' => StudentNoKind::Formal,
            b'J' => StudentNoKind::FormalSelfCoded,
            _ => StudentNoKind::Temporary,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StudentNo {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<StudentNo> for String {
    fn from(v: StudentNo) -> String {
        v.0
    }
}

/// What a receiving school types to name a student: a formal or temporary 学籍号, or an
/// identity document number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudentRef {
    StudentNo(StudentNo),
    IdNumber(IdNumber),
    /// Another kind of identity document (passport, 港澳台 permits): matched exactly.
    Document(String),
}

impl StudentRef {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let s = input.trim();
        let n = s.chars().count();
        let first = s.chars().next().map(|c| c.to_ascii_uppercase());
        if n == 19 && matches!(first, Some('G' | 'J' | 'L')) {
            return Ok(Self::StudentNo(
                StudentNo::parse(s).map_err(|e| e.at("student_ref"))?,
            ));
        }
        if n == 18 && s.chars().take(17).all(|c| c.is_ascii_digit()) {
            return Ok(Self::IdNumber(
                IdNumber::parse(s).map_err(|e| e.at("student_ref"))?,
            ));
        }
        if (5..=30).contains(&n) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Ok(Self::Document(s.to_ascii_uppercase()));
        }
        Err(Error::validation(
            "student_ref",
            "请填写19位学籍号（G、J或L开头）或18位身份证号码等证件号码",
        ))
    }
}

/// Level of a region in the GB/T 2260 hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    Province,
    City,
    County,
}

impl RegionLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Province => "province",
            Self::City => "city",
            Self::County => "county",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "province" => Self::Province,
            "city" => Self::City,
            "county" => Self::County,
            _ => return None,
        })
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Province => "省级",
            Self::City => "地市级",
            Self::County => "区县级",
        }
    }
}

/// A 6-digit administrative division code (行政区划代码, GB/T 2260).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

impl RegionCode {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let s = input.trim();
        if s.len() != 6
            || !s.bytes().all(|b| b.is_ascii_digit())
            || !PROVINCE_PREFIXES.contains(&&s[0..2])
        {
            return Err(Error::validation(
                "region",
                "行政区划代码应为6位数字，如 410105",
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn level(&self) -> RegionLevel {
        if self.0.ends_with("0000") {
            RegionLevel::Province
        } else if self.0.ends_with("00") {
            RegionLevel::City
        } else {
            RegionLevel::County
        }
    }

    /// The province of a code: first two digits + `0000`.
    pub fn province(&self) -> RegionCode {
        Self(format!("{}0000", &self.0[0..2]))
    }

    /// The city-level code above a county (first four digits + `00`).
    pub fn city(&self) -> RegionCode {
        Self(format!("{}00", &self.0[0..4]))
    }

    /// Half-open range `[lo, hi)` of the 6-digit codes in this region's subtree, for indexed
    /// range scans (`region_code >= lo AND region_code < hi`) that work on every backend.
    pub fn subtree_range(&self) -> (String, String) {
        let n: u32 = self.0.parse().expect("6 digits");
        let step = match self.level() {
            RegionLevel::Province => 10_000,
            RegionLevel::City => 100,
            RegionLevel::County => 1,
        };
        (self.0.clone(), format!("{:06}", n + step))
    }

    /// Whether `other` lies in this region's subtree (itself included).
    pub fn contains(&self, other: &str) -> bool {
        let (lo, hi) = self.subtree_range();
        other >= lo.as_str() && other < hi.as_str()
    }
}

impl TryFrom<String> for RegionCode {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<RegionCode> for String {
    fn from(v: RegionCode) -> String {
        v.0
    }
}

/// Whether a string is a 10-digit 学校标识码.
pub fn is_school_code(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
}

pub fn parse_school_code(s: &str) -> Result<String, Error> {
    let s = s.trim();
    if is_school_code(s) {
        Ok(s.to_string())
    } else {
        Err(Error::validation("school", "学校标识码应为10位数字"))
    }
}

/// 学段.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Primary,
    Junior,
    Senior,
}

impl Stage {
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Primary => "小学",
            Self::Junior => "初中",
            Self::Senior => "高中",
        }
    }
}

/// A grade (年级) by its API code: `11`–`16` 小学, `21`–`24` 初中, `31`–`33` 高中.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Grade(u8);

impl Grade {
    pub const ALL: [Grade; 13] = [
        Grade(11),
        Grade(12),
        Grade(13),
        Grade(14),
        Grade(15),
        Grade(16),
        Grade(21),
        Grade(22),
        Grade(23),
        Grade(24),
        Grade(31),
        Grade(32),
        Grade(33),
    ];

    pub fn parse(s: &str) -> Result<Self, Error> {
        s.trim()
            .parse::<u8>()
            .ok()
            .map(Grade)
            .filter(|g| Self::ALL.contains(g))
            .ok_or_else(|| {
                Error::validation(
                    "grade",
                    "年级代码无效：小学为11–16，初中为21–24，高中为31–33",
                )
            })
    }

    pub fn code(self) -> String {
        self.0.to_string()
    }

    pub fn number(self) -> u8 {
        self.0
    }

    pub fn stage(self) -> Stage {
        match self.0 / 10 {
            1 => Stage::Primary,
            2 => Stage::Junior,
            _ => Stage::Senior,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self.0 {
            11 => "一年级",
            12 => "二年级",
            13 => "三年级",
            14 => "四年级",
            15 => "五年级",
            16 => "六年级",
            21 => "初一",
            22 => "初二",
            23 => "初三",
            24 => "初四",
            31 => "高一",
            32 => "高二",
            _ => "高三",
        }
    }

    /// The usual age on 1 September of the school year in this grade (小学一年级 at 6).
    pub fn usual_age(self) -> i32 {
        match self.0 {
            11..=16 => i32::from(self.0) - 11 + 6,
            21..=24 => i32::from(self.0) - 21 + 12,
            _ => i32::from(self.0) - 31 + 15,
        }
    }

    /// Whether a birth date is plausible for this grade in the school year starting `year`-09-01
    /// (a spread of two years younger to four years older than usual).
    pub fn fits_birth_date(self, birth: NaiveDate, school_year: i32) -> bool {
        let age = school_year - birth.year() - i32::from((birth.month(), birth.day()) > (9, 1));
        (self.usual_age() - 2..=self.usual_age() + 4).contains(&age)
    }
}

impl TryFrom<String> for Grade {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<Grade> for String {
    fn from(g: Grade) -> String {
        g.code()
    }
}

/// 性别, coded as in GB/T 2261.1: 1 男, 2 女.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    pub fn code(self) -> &'static str {
        match self {
            Self::Male => "1",
            Self::Female => "2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "1" | "男" | "male" | "m" | "M" => Some(Self::Male),
            "2" | "女" | "female" | "f" | "F" => Some(Self::Female),
            _ => None,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Male => "男",
            Self::Female => "女",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn published_example_number_checks() {
        // The worked example of GB 11643-1999 Annex: 11010519491231002X.
        assert!(IdNumber::parse("11010519491231002X").is_ok());
        assert!(
            IdNumber::parse("11010519491231002x").is_ok(),
            "lower-case x accepted"
        );
        let e = IdNumber::parse("110105194912310021").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidIdNumber);
        assert!(e.message.contains("校验位"));
    }

    #[test]
    fn refuses_bad_dates_regions_and_lengths() {
        let wrong_date = IdNumber::from_parts("410105", d(2015, 2, 28), 123)
            .0
            .replace("20150228", "20150230");
        assert!(IdNumber::parse(&wrong_date).is_err());
        assert!(IdNumber::parse("99010520150228123X").is_err());
        assert!(IdNumber::parse("4101052015022812").is_err());
        assert!(IdNumber::parse("").is_err());
        assert!(
            IdNumber::parse("41010520150228１２３X").is_err(),
            "full-width digits refused"
        );
    }

    #[test]
    fn masking_keeps_six_and_four() {
        let id = IdNumber::parse("11010519491231002X").unwrap();
        assert_eq!(id.masked(), "110105********002X");
        assert_eq!(mask_document("E12345678"), "E1*****78");
    }

    #[test]
    fn student_numbers() {
        let id = IdNumber::from_parts("410105", d(2014, 5, 3), 17);
        let g = StudentNo::formal(&id);
        assert_eq!(
            StudentNo::parse(g.as_str()).unwrap().kind(),
            StudentNoKind::Formal
        );
        let l = StudentNo::temporary("410105", d(2014, 5, 3), 42);
        assert_eq!(l.as_str(), "L410105201405030042");
        assert_eq!(
            StudentNo::parse(l.as_str()).unwrap().kind(),
            StudentNoKind::Temporary
        );
        let mut bad = g.as_str().to_string();
        let last = if bad.ends_with('0') { '1' } else { '0' };
        bad.pop();
        bad.push(last);
        assert_eq!(
            StudentNo::parse(&bad).unwrap_err().code,
            ErrorCode::InvalidStudentNo
        );
        assert!(StudentNo::parse("X410105201405030042").is_err());
    }

    #[test]
    fn student_refs_pick_their_kind() {
        let id = IdNumber::from_parts("440305", d(2013, 9, 9), 20);
        assert!(matches!(
            StudentRef::parse(id.as_str()),
            Ok(StudentRef::IdNumber(_))
        ));
        assert!(matches!(
            StudentRef::parse(StudentNo::formal(&id).as_str()),
            Ok(StudentRef::StudentNo(_))
        ));
        assert!(matches!(
            StudentRef::parse("E12345678"),
            Ok(StudentRef::Document(_))
        ));
        assert_eq!(
            StudentRef::parse("abc").unwrap_err().code,
            ErrorCode::ValidationFailed
        );
    }

    #[test]
    fn region_subtrees() {
        let p = RegionCode::parse("410000").unwrap();
        assert_eq!(p.level(), RegionLevel::Province);
        assert_eq!(p.subtree_range(), ("410000".into(), "420000".into()));
        let c = RegionCode::parse("410100").unwrap();
        assert!(c.contains("410105") && !c.contains("410200") && p.contains("419001"));
        let k = RegionCode::parse("410105").unwrap();
        assert_eq!(k.level(), RegionLevel::County);
        assert_eq!(k.province().as_str(), "410000");
        assert_eq!(k.city().as_str(), "410100");
        assert!(k.contains("410105") && !k.contains("410106"));
        assert!(RegionCode::parse("41010").is_err() && RegionCode::parse("990000").is_err());
    }

    #[test]
    fn grades() {
        assert_eq!(Grade::parse("21").unwrap().label_zh(), "初一");
        assert!(Grade::parse("17").is_err() && Grade::parse("x").is_err());
        assert_eq!(Grade::parse("11").unwrap().usual_age(), 6);
        assert!(
            Grade::parse("11")
                .unwrap()
                .fits_birth_date(d(2020, 3, 1), 2026)
        );
        assert!(
            !Grade::parse("31")
                .unwrap()
                .fits_birth_date(d(2020, 3, 1), 2026)
        );
    }

    proptest! {
        #[test]
        fn generated_numbers_parse_and_single_digit_changes_fail(
            days in 0i64..40_000, seq in 0u16..1000, pos in 0usize..17, delta in 1u8..10
        ) {
            let birth = d(1920, 1, 1) + chrono::Duration::days(days);
            let id = IdNumber::from_parts("440305", birth, seq);
            let parsed = IdNumber::parse(id.as_str()).unwrap();
            prop_assert_eq!(parsed.birth_date(), birth);
            prop_assert_eq!(parsed.gender() == Gender::Male, seq % 2 == 1);
            // MOD 11-2 detects every single-digit substitution.
            let mut bytes = id.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(IdNumber::parse(&changed).is_err());
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,30}") {
            let _ = IdNumber::parse(&s);
            let _ = StudentNo::parse(&s);
            let _ = StudentRef::parse(&s);
            let _ = RegionCode::parse(&s);
            let _ = Grade::parse(&s);
        }
    }
}
