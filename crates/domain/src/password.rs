//! The password policy (等保 2.0 level 3 口令复杂度): checked on every password change or set.
//!
//! Reuse of the last passwords is checked by the caller, who holds their hashes.

use crate::{Error, ErrorCode};

/// Shortest accepted password, in characters.
pub const MIN_LENGTH: usize = 10;
/// How many of the four classes (upper, lower, digit, symbol) a password must mix.
pub const MIN_CLASSES: usize = 3;
/// How many previous passwords may not be chosen again.
pub const HISTORY: usize = 5;

fn weak(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::WeakPassword, message).at("new")
}

/// Checks a new password against the length, class and username rules.
pub fn check(username: &str, password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_LENGTH {
        return Err(weak(format!("密码长度至少为{MIN_LENGTH}位")));
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if classes < MIN_CLASSES {
        return Err(weak("密码须包含大写字母、小写字母、数字、符号中的至少三类"));
    }
    let user = username.trim().to_lowercase();
    if !user.is_empty() && password.to_lowercase().contains(&user) {
        return Err(weak("密码不能包含用户名"));
    }
    Ok(())
}

/// The refusal for a password among the last [`HISTORY`] ones.
pub fn reused() -> Error {
    weak(format!("新密码不能与最近{HISTORY}次使用过的密码相同"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_classes_and_username() {
        assert!(check("moe", "Abcdef123!").is_ok());
        assert!(check("moe", "Abcdefgh12").is_ok(), "three classes suffice");
        for bad in ["Ab1!", "abcdefghij", "abcdefgh12", "ABCDEFGH!!"] {
            let e = check("moe", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::WeakPassword, "{bad}");
            assert_eq!(e.field, Some("new"));
        }
        let e = check("edu410105", "xEDU410105!").unwrap_err();
        assert!(e.message.contains("用户名"), "{}", e.message);
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Nine Chinese characters are 27 bytes but still too short.
        assert!(check("moe", "学籍学籍学籍A1!").is_err());
        assert!(check("moe", "学籍学籍学籍学A1!").is_ok());
    }
}
