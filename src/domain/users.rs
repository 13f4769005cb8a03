//! Users: roles and the rules for names and passwords.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Host,
    Student,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Host => "host",
            Role::Student => "student",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "host" => Some(Role::Host),
            "student" => Some(Role::Student),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MAX: usize = 128;

/// 3–32 of `A-Z a-z 0-9 . _ -`.
pub fn validate_username(name: &str) -> Result<(), FieldError> {
    let len = name.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err(FieldError::new(
            "username",
            format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(FieldError::new(
            "username",
            "may contain only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// `min`–128 characters, no control characters.
pub fn validate_password(field: &str, password: &str, min: usize) -> Result<(), FieldError> {
    let len = password.chars().count();
    if len < min || len > PASSWORD_MAX {
        return Err(FieldError::new(
            field,
            format!("must be {min} to {PASSWORD_MAX} characters"),
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The key usernames are unique by.
pub fn username_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(validate_username("abc").is_ok());
        assert!(validate_username("A.b_c-9").is_ok());
        assert!(validate_username("ab").is_err());
        assert!(validate_username(&"a".repeat(33)).is_err());
        assert!(validate_username(&"a".repeat(32)).is_ok());
        assert!(validate_username("a b c").is_err());
        assert!(validate_username("abc\u{7}").is_err());
        assert!(validate_username("ébc").is_err());
    }

    #[test]
    fn passwords() {
        assert!(validate_password("password", "1234567", 8).is_err());
        assert!(validate_password("password", "12345678", 8).is_ok());
        assert!(validate_password("password", &"x".repeat(129), 8).is_err());
        assert!(validate_password("password", "1234567\n8", 8).is_err());
    }
}
