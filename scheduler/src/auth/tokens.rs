//! [`SessionTokens`]: the bearer tokens handed out at login.
//!
//! A token is 256 random bits (hex); it names the role that logged in and expires
//! [`SessionTokens::ttl`] after login. Tokens live in the coordinator's memory only: a
//! restarted coordinator asks its clients to log in again. At most [`MAX_LIVE_TOKENS`] are
//! kept; past that, the ones expiring first are forgotten.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long a token is valid by default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The most tokens kept at once.
pub const MAX_LIVE_TOKENS: usize = 100_000;

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
#[derive(Debug)]
pub struct SessionTokens {
    ttl: Duration,
    issued: Mutex<HashMap<String, Issued>>,
}

impl SessionTokens {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            issued: Mutex::default(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `role`.
    pub fn issue(&self, role: &str) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut issued = self.issued.lock();
        if issued.len() >= MAX_LIVE_TOKENS {
            issued.retain(|_, t| t.expires > now);
        }
        if issued.len() >= MAX_LIVE_TOKENS {
            let mut expiries: Vec<Instant> = issued.values().map(|t| t.expires).collect();
            let cut = expiries.len() - MAX_LIVE_TOKENS / 2;
            let (_, nth, _) = expiries.select_nth_unstable(cut);
            let nth = *nth;
            issued.retain(|_, t| t.expires > nth);
        }
        issued.insert(
            token.clone(),
            Issued {
                role: role.to_string(),
                expires: now + self.ttl,
            },
        );
        token
    }

    /// The role `token` was issued to, if it is still valid.
    pub fn resolve(&self, token: &str) -> Result<String, TokenRefusal> {
        let mut issued = self.issued.lock();
        let Some(found) = issued.get(token) else {
            return Err(TokenRefusal::Unknown);
        };
        if found.expires <= Instant::now() {
            issued.remove(token);
            return Err(TokenRefusal::Expired);
        }
        Ok(found.role.clone())
    }

    /// Forgets every token of `role` (dropped, renamed, or its password changed).
    pub fn revoke_role(&self, role: &str) {
        self.issued.lock().retain(|_, t| t.role != role);
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
