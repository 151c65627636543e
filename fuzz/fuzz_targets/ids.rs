//! Identity numbers, student numbers, student references, region codes, grades, and the
//! registration form's field parsers: never a panic, and what parses is what it says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xueji_app::registration::{check_name, parse_birth_date, parse_gender, parse_grade};
use xueji_domain::ids::{Grade, IdNumber, RegionCode, StudentNo, StudentRef, check_char};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(id) = IdNumber::parse(&s) {
        // A parsed number carries its own valid check digit and a real birth date.
        let n = id.as_str();
        assert_eq!(n.len(), 18);
        assert_eq!(check_char(&n[..17]), n.chars().last());
        assert_eq!(IdNumber::parse(n).unwrap().birth_date(), id.birth_date());
    }
    if let Ok(no) = StudentNo::parse(&s) {
        assert_eq!(no.as_str().chars().count(), 19);
    }
    let _ = StudentRef::parse(&s);
    if let Ok(r) = RegionCode::parse(&s) {
        assert!(r.contains(r.as_str()));
    }
    if let Ok(g) = Grade::parse(&s) {
        assert_eq!(Grade::parse(&g.code()).unwrap(), g);
    }
    let _ = check_name(&s);
    let _ = parse_gender(&s);
    let _ = parse_birth_date(&s);
    let _ = parse_grade(&s);
});
