//! Flight's session actions — `SetSessionOptions`, `GetSessionOptions`, `CloseSession` —
//! over [`crate::session::client_sessions`].
//!
//! The messages are in [`crate::frontend::session_messages`].
//!
//! `SetSessionOptions` opens a session when the call names none (or one no longer open) and
//! answers with a `set-cookie` header naming it. Each option is set on its own: a name that
//! is not a setting gets `INVALID_NAME`, a value that does not parse `INVALID_VALUE`, and the
//! others are set. A valueless option resets the setting. `GetSessionOptions` lists every
//! setting's value in force (the session's, else the server's default).

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tonic::Status;

use crate::auth::Principal;
use crate::cluster::shared_state::Cluster;
use crate::error::SchedulerError;
use crate::frontend::session_messages::{
    CloseSessionResult, CloseSessionStatus, GetSessionOptionsResult, OptionValue,
    SessionOptionValue, SetSessionOptionError, SetSessionOptionErrorValue,
    SetSessionOptionsRequest, SetSessionOptionsResult,
};
use crate::session::client_sessions::ClientSession;
use crate::session::session_settings::SHARD_COUNT;

pub const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
pub const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
pub const CLOSE_SESSION: &str = "CloseSession";

/// An action's answer: its result body, and the session cookie to set, if a session was
/// opened.
pub struct SessionAnswer {
    pub body: Vec<u8>,
    pub set_cookie: Option<String>,
}

/// Answers the session action `action` (one of the names above) of `principal`, whose call
/// named the session `session_id` (its cookie), if any.
pub fn answer(
    cluster: &Arc<Cluster>,
    principal: &Principal,
    session_id: Option<&str>,
    action: &str,
    body: &[u8],
) -> Result<SessionAnswer, Status> {
    let sessions = &cluster.client_sessions;
    let found = session_id.and_then(|id| sessions.find(id, principal.name()).ok());
    match action {
        SET_SESSION_OPTIONS => {
            let request = SetSessionOptionsRequest::decode(body).map_err(|e| {
                Status::invalid_argument(format!("cannot decode SetSessionOptionsRequest: {e}"))
            })?;
            let (session, set_cookie) = match found {
                Some(session) => (session, None),
                None => {
                    let session = sessions.open(principal.name());
                    let cookie = session.cookie();
                    (session, Some(cookie))
                }
            };
            let result = SetSessionOptionsResult {
                errors: set_options(&session, request.session_options),
            };
            Ok(SessionAnswer {
                body: result.encode_to_vec(),
                set_cookie,
            })
        }
        GET_SESSION_OPTIONS => {
            let session = found.ok_or_else(|| Status::from(SchedulerError::SessionNotFound))?;
            let settings = session.settings().over(&cluster.default_settings());
            let session_options = settings
                .all()
                .into_iter()
                .map(|(name, value)| (name.to_string(), option_value(name, value)))
                .collect();
            Ok(SessionAnswer {
                body: GetSessionOptionsResult { session_options }.encode_to_vec(),
                set_cookie: None,
            })
        }
        _ => {
            let id = session_id.ok_or_else(|| Status::from(SchedulerError::SessionNotFound))?;
            sessions.close(id, principal.name()).map_err(Status::from)?;
            let result = CloseSessionResult {
                status: CloseSessionStatus::Closed as i32,
            };
            Ok(SessionAnswer {
                body: result.encode_to_vec(),
                set_cookie: None,
            })
        }
    }
}

/// Sets each option on `session`, returning the errors of those that were not set.
fn set_options(
    session: &ClientSession,
    options: HashMap<String, SessionOptionValue>,
) -> HashMap<String, SetSessionOptionError> {
    let mut errors = HashMap::new();
    for (name, value) in options {
        let outcome = session.update(|settings| match value_text(&value) {
            Some(Ok(text)) => settings.set(&name, &text),
            Some(Err(())) => Err(SchedulerError::BadSettingValue {
                message: format!("{name} takes a string or a number"),
            }),
            None => settings.reset(&name),
        });
        let refused = match outcome {
            Ok(()) => continue,
            Err(SchedulerError::UnknownSetting { .. }) => SetSessionOptionErrorValue::InvalidName,
            Err(SchedulerError::BadSettingValue { .. }) => SetSessionOptionErrorValue::InvalidValue,
            Err(_) => SetSessionOptionErrorValue::Error,
        };
        errors.insert(
            name,
            SetSessionOptionError {
                value: refused as i32,
            },
        );
    }
    errors
}

/// A value as a setting's text; `None` for a valueless option (a reset); an error for a
/// kind no setting takes.
fn value_text(value: &SessionOptionValue) -> Option<Result<String, ()>> {
    Some(match value.option_value.as_ref()? {
        OptionValue::StringValue(text) => Ok(text.clone()),
        OptionValue::Int64Value(n) => Ok(n.to_string()),
        OptionValue::DoubleValue(x) if x.is_finite() => Ok(x.to_string()),
        _ => Err(()),
    })
}

/// A setting's value as a session option: `citus.shard_count` as a number, the others as
/// their text.
fn option_value(name: &str, value: String) -> SessionOptionValue {
    let option_value = match value.parse::<i64>() {
        Ok(n) if name == SHARD_COUNT => OptionValue::Int64Value(n),
        _ => OptionValue::StringValue(value),
    };
    SessionOptionValue {
        option_value: Some(option_value),
    }
}

/// Whether `action` is one of the session actions.
pub fn is_session_action(action: &str) -> bool {
    [SET_SESSION_OPTIONS, GET_SESSION_OPTIONS, CLOSE_SESSION].contains(&action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::session_settings::SessionSettings;

    #[test]
    fn options_are_set_one_by_one() {
        let session = crate::session::client_sessions::ClientSessions::default().open("u");
        let text = |s: &str| SessionOptionValue {
            option_value: Some(OptionValue::StringValue(s.into())),
        };
        let options = HashMap::from([
            ("statement_timeout".to_string(), text("3s")),
            ("citus.shard_count".to_string(), text("zero")),
            ("no_such_option".to_string(), text("1")),
        ]);
        let errors = set_options(&session, options);
        assert_eq!(
            errors["citus.shard_count"].value,
            SetSessionOptionErrorValue::InvalidValue as i32
        );
        assert_eq!(
            errors["no_such_option"].value,
            SetSessionOptionErrorValue::InvalidName as i32
        );
        assert_eq!(errors.len(), 2);
        assert_eq!(
            session.settings().timeout(),
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(
            session.settings(),
            SessionSettings {
                statement_timeout: Some(std::time::Duration::from_secs(3)),
                ..Default::default()
            }
        );
    }
}
