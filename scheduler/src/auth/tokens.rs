//! [`SessionTokens`]: the bearer tokens handed out at login.
//!
//! A token is 256 random bits (hex); it names the role that logged in and expires
//! [`SessionTokens::ttl`] after login. Tokens live in the coordinator's memory only (a `moka`
//! cache): a restarted coordinator asks its clients to log in again. At most
//! [`MAX_LIVE_TOKENS`] are kept. An expired token is remembered for [`EXPIRED_KEPT`] more, so
//! that its client is told it expired rather than that it is unknown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

/// How long a token is valid by default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The most tokens kept at once.
pub const MAX_LIVE_TOKENS: u64 = 100_000;

/// How long an expired token is still recognized as one.
pub const EXPIRED_KEPT: Duration = Duration::from_secs(600);

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Never issued here (or forgotten: the coordinator restarted, or too many logins).
    Unknown,
    Expired,
}

#[derive(Debug)]
struct Issued {
    role: String,
    expires: Instant,
}

/// The tokens issued by this coordinator.
pub struct SessionTokens {
    ttl: Duration,
    issued: Cache<String, Arc<Issued>>,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("ttl", &self.ttl)
            .field("issued", &self.issued.entry_count())
            .finish()
    }
}

impl SessionTokens {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            issued: Cache::builder()
                .max_capacity(MAX_LIVE_TOKENS)
                .time_to_live(ttl + EXPIRED_KEPT)
                .build(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `role`.
    pub fn issue(&self, role: &str) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.issued.insert(
            token.clone(),
            Arc::new(Issued {
                role: role.to_string(),
                expires: Instant::now() + self.ttl,
            }),
        );
        token
    }

    /// The role `token` was issued to, if it is still valid.
    pub fn resolve(&self, token: &str) -> Result<String, TokenRefusal> {
        let Some(found) = self.issued.get(token) else {
            return Err(TokenRefusal::Unknown);
        };
        if found.expires <= Instant::now() {
            return Err(TokenRefusal::Expired);
        }
        Ok(found.role.clone())
    }

    /// Forgets every token of `role` (dropped, renamed, or denied `LOGIN`).
    pub fn revoke_role(&self, role: &str) {
        for (token, issued) in self.issued.iter() {
            if issued.role == role {
                self.issued.invalidate(token.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_resolve_until_they_expire_or_are_revoked() {
        let tokens = SessionTokens::new(Duration::from_millis(50));
        let a = tokens.issue("alice");
        let b = tokens.issue("bob");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(tokens.resolve(&a), Ok("alice".to_string()));
        assert_eq!(tokens.resolve("forged"), Err(TokenRefusal::Unknown));
        tokens.revoke_role("bob");
        assert_eq!(tokens.resolve(&b), Err(TokenRefusal::Unknown));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(tokens.resolve(&a), Err(TokenRefusal::Expired));
    }
}
