//! [`Authenticator`]: logging in, and the principal of each request.
//!
//! A client logs in with the Flight SQL handshake (HTTP basic credentials: user name and
//! password) and gets a bearer token ([`crate::auth::tokens`]); every later call carries
//! `authorization: Bearer <token>`. While no superuser has a password
//! ([`Roles::require_login`]), a call without credentials runs as the initial superuser
//! ([`Principal::trusted`]); a client may still log in as another role.

use std::time::Duration;

use base64::Engine;
use parking_lot::RwLock;
use shardfusion_catalog::Catalog;
use shardfusion_catalog::roles::Roles;

use crate::auth::password::{hash_password, verify_nothing, verify_password};
use crate::auth::principal::Principal;
use crate::auth::tokens::{DEFAULT_TOKEN_TTL, SessionTokens, TokenRefusal};
use crate::error::{Result, SchedulerError};

/// The initial superuser's name unless `--user` says otherwise.
pub const DEFAULT_INITIAL_USER: &str = "admin";

/// How clients authenticate to this coordinator.
#[derive(Debug)]
pub struct Authenticator {
    initial_user: RwLock<String>,
    tokens: RwLock<std::sync::Arc<SessionTokens>>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self {
            initial_user: RwLock::new(DEFAULT_INITIAL_USER.to_string()),
            tokens: RwLock::new(std::sync::Arc::new(SessionTokens::new(DEFAULT_TOKEN_TTL))),
        }
    }
}

/// SQLSTATE `invalid_password`: a failed login.
const INVALID_PASSWORD: &str = "28P01";
/// SQLSTATE `invalid_authorization_specification`: no, or no longer valid, credentials.
const INVALID_AUTHORIZATION: &str = "28000";

fn unauthenticated(message: impl Into<String>, sqlstate: &'static str) -> SchedulerError {
    SchedulerError::Unauthenticated {
        message: message.into(),
        sqlstate,
    }
}

impl Authenticator {
    /// Sets up the initial superuser `user`: without a password, clients are trusted and run
    /// as `user`; with one, `user` is created as a superuser with that password unless a
    /// role of that name exists (its password may have been changed since), and from then on
    /// every client logs in.
    pub fn bootstrap(&self, catalog: &Catalog, user: &str, password: Option<&str>) -> Result<()> {
        if user.is_empty() {
            return Err(SchedulerError::invalid("--user must not be empty"));
        }
        *self.initial_user.write() = user.to_string();
        if let Some(password) = password {
            if password.is_empty() {
                return Err(SchedulerError::invalid(
                    "--password must not be empty (leave it out to run without users)",
                ));
            }
            if catalog.ensure_superuser(user, &hash_password(password)?)? {
                tracing::info!("created superuser \"{user}\"");
            } else {
                tracing::info!(
                    "role \"{user}\" exists already; its password is the one stored (change \
                     it with ALTER USER)"
                );
            }
        }
        Ok(())
    }

    /// How long tokens issued from now on stay valid (those issued before are forgotten).
    pub fn set_token_ttl(&self, ttl: Duration) {
        *self.tokens.write() = std::sync::Arc::new(SessionTokens::new(ttl));
    }

    /// The initial superuser's name.
    pub fn initial_user(&self) -> String {
        self.initial_user.read().clone()
    }

    /// The principal of calls that need no login.
    pub fn trusted(&self) -> Principal {
        Principal::trusted(self.initial_user())
    }

    fn tokens(&self) -> std::sync::Arc<SessionTokens> {
        std::sync::Arc::clone(&self.tokens.read())
    }

    /// Logs in with an `authorization: Basic ...` header value; returns a bearer token. The
    /// password check runs on a blocking thread (argon2 is slow on purpose), and a failure
    /// says the same whether or not the user exists.
    pub async fn login(&self, roles: &Roles, authorization: Option<&str>) -> Result<String> {
        let (user, password) = basic_credentials(authorization)?;
        let hash = roles
            .get(&user)
            .filter(|r| r.can_login)
            .and_then(|r| r.password_hash.clone());
        let checked_user = user.clone();
        let valid = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_password(&hash, &password),
            None => {
                verify_nothing(&password);
                false
            }
        })
        .await
        .map_err(|e| SchedulerError::invalid(format!("password check failed: {e}")))?;
        if !valid {
            return Err(unauthenticated(
                format!("password authentication failed for user \"{checked_user}\""),
                INVALID_PASSWORD,
            ));
        }
        Ok(self.tokens().issue(&user))
    }

    /// The principal of a call carrying `authorization` (a header value), given the roles
    /// of the current snapshot.
    pub fn principal(&self, roles: &Roles, authorization: Option<&str>) -> Result<Principal> {
        let Some(value) = authorization else {
            if roles.require_login() {
                return Err(unauthenticated(
                    "no credentials: log in first (the Flight SQL handshake, with a user name \
                     and password) and send the bearer token it returns",
                    INVALID_AUTHORIZATION,
                ));
            }
            return Ok(self.trusted());
        };
        let Some(token) = strip_scheme(value, "Bearer") else {
            return Err(unauthenticated(
                "unsupported credentials: send `authorization: Bearer <token>`, the token the \
                 Flight SQL handshake returned (user name and password go to the handshake only)",
                INVALID_AUTHORIZATION,
            ));
        };
        match self.tokens().resolve(token.trim()) {
            Ok(role) => Ok(Principal::logged_in(role)),
            Err(TokenRefusal::Expired) => Err(unauthenticated(
                "the session token expired: log in again",
                INVALID_AUTHORIZATION,
            )),
            Err(TokenRefusal::Unknown) => Err(unauthenticated(
                "invalid session token (the coordinator may have restarted): log in again",
                INVALID_AUTHORIZATION,
            )),
        }
    }

    /// Forgets the sessions of `role` (dropped, renamed, or its password changed).
    pub fn end_sessions_of(&self, role: &str) {
        self.tokens().revoke_role(role);
    }
}

/// `value` without its leading `scheme` (case-insensitive) and the space after it.
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// The user name and password of an HTTP basic `authorization` header value.
fn basic_credentials(authorization: Option<&str>) -> Result<(String, String)> {
    let missing = || {
        unauthenticated(
            "log in with a user name and password (HTTP basic credentials in the handshake)",
            INVALID_AUTHORIZATION,
        )
    };
    let encoded = authorization
        .and_then(|v| strip_scheme(v, "Basic"))
        .ok_or_else(missing)?;
    // Padded or not: Arrow's Go client (ADBC) leaves the padding out.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = lenient.decode(encoded.trim()).map_err(|_| missing())?;
    let decoded = String::from_utf8(decoded).map_err(|_| missing())?;
    let (user, password) = decoded.split_once(':').ok_or_else(missing)?;
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    #[tokio::test]
    async fn login_gives_a_token_and_requests_need_one_once_a_superuser_has_a_password() {
        let catalog = Catalog::open_in_memory().expect("catalog");
        let auth = Authenticator::default();
        // No users yet: trusted.
        let roles = catalog.snapshot().roles.clone();
        assert_eq!(
            auth.principal(&roles, None).expect("trusted").name(),
            "admin"
        );
        auth.bootstrap(&catalog, "root", Some("s3cret"))
            .expect("bootstrap");
        let roles = catalog.snapshot().roles.clone();
        assert!(matches!(
            auth.principal(&roles, None),
            Err(SchedulerError::Unauthenticated { .. })
        ));
        assert!(matches!(
            auth.login(&roles, Some(&basic("root", "wrong"))).await,
            Err(SchedulerError::Unauthenticated { .. })
        ));
        assert!(matches!(
            auth.login(&roles, Some(&basic("nobody", "s3cret"))).await,
            Err(SchedulerError::Unauthenticated { .. })
        ));
        let token = auth
            .login(&roles, Some(&basic("root", "s3cret")))
            .await
            .expect("login");
        let principal = auth
            .principal(&roles, Some(&format!("Bearer {token}")))
            .expect("token");
        assert_eq!(principal.name(), "root");
        assert!(matches!(
            auth.principal(&roles, Some("Bearer forged")),
            Err(SchedulerError::Unauthenticated { .. })
        ));
        assert!(matches!(
            auth.principal(&roles, Some(&basic("root", "s3cret"))),
            Err(SchedulerError::Unauthenticated { .. })
        ));
        // Credentials without base64 padding (as Arrow's Go client sends them) are read too.
        let unpadded = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode("root:s3cret")
        );
        assert!(!unpadded.ends_with('='));
        assert!(auth.login(&roles, Some(&unpadded)).await.is_ok());
        // A second start keeps the stored password.
        auth.bootstrap(&catalog, "root", Some("other"))
            .expect("bootstrap again");
        let roles = catalog.snapshot().roles.clone();
        assert!(
            auth.login(&roles, Some(&basic("root", "s3cret")))
                .await
                .is_ok()
        );
    }
}
