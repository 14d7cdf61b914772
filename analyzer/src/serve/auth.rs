//! Access tokens of `hints serve`: who may do what in which project.
//!
//! A token is `hints_` and 64 hex digits of the system's randomness, printed once by `hints
//! token create`. The database keeps its SHA-256 only. A request's token is hashed and compared
//! with every stored hash in constant time, so neither the comparison nor which hash matched
//! shows in the time a refusal takes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError};

/// What a token allows, each scope including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// List snapshots, get hint files and eval tables.
    Read,
    /// Read, and push snapshots.
    Push,
    /// Push, and read the server's metrics.
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Push => "push",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        [Scope::Read, Scope::Push, Scope::Admin].into_iter().find(|s| s.name() == name)
    }
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send `Authorization: Bearer TOKEN` (hints token create prints one)")]
    Missing,
    #[error("the token is not one this server issued")]
    Unknown,
    #[error("the token is for project `{0}`, not this one")]
    OtherProject(String),
    #[error("the token's scope is `{has}`; this needs `{needs}`")]
    Scope { has: &'static str, needs: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system's randomness failed while making a token.
    #[error("the system's randomness failed: {0}")]
    Randomness(getrandom::Error),
}

/// A project name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn valid_project(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    (1..=64).contains(&name.len()) && name.chars().all(ok) && name.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Creates a token of `project` with `scope`, records its hash, and returns it (the only time
/// it is seen).
pub fn create(store: &Store, project: &str, scope: Scope, now: &str) -> Result<String, AuthError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(AuthError::Randomness)?;
    let token = format!("hints_{}", crate::store::hex(&secret));
    store.add_token(project, scope.name(), &hash(&token), now)?;
    Ok(token)
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The tokens a server knows: (project, scope, SHA-256), as [`Store::tokens`] lists them.
pub type Tokens = Vec<(String, String, Vec<u8>)>;

/// Checks that `token` (the `Authorization` header's bearer token, if any) is one of `tokens`
/// and may act with `needed` in `project` (any project when `None`).
pub fn authorize(tokens: &Tokens, token: Option<&str>, project: Option<&str>, needed: Scope) -> Result<(), AuthError> {
    let token = token.ok_or(AuthError::Missing)?;
    let wanted = hash(token);
    let mut found = None;
    for (owner, scope, stored) in tokens {
        if bool::from(stored.ct_eq(&wanted)) {
            found = Some((owner, scope));
        }
    }
    let (owner, scope) = found.ok_or(AuthError::Unknown)?;
    if project.is_some_and(|p| p != owner) {
        return Err(AuthError::OtherProject(owner.clone()));
    }
    let has = Scope::parse(scope).ok_or_else(|| StoreError::Damaged { file: "the tokens table".into(), what: format!("a token with the unknown scope `{scope}`") })?;
    if has < needed {
        return Err(AuthError::Scope { has: has.name(), needs: needed.name() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_ones_before_them() {
        assert!(Scope::Read < Scope::Push && Scope::Push < Scope::Admin);
        assert_eq!(Scope::parse("push"), Some(Scope::Push));
        assert_eq!(Scope::parse("write"), None);
    }

    #[test]
    fn project_names_are_plain() {
        assert!(valid_project("web-1") && valid_project("a.b_c"));
        assert!(!valid_project("") && !valid_project("-x") && !valid_project("A") && !valid_project("a/b") && !valid_project(&"x".repeat(65)));
    }
}
