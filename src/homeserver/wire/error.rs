//! The standard error response ([`ErrorResponse`], [`ErrCode`]) and [`WireError`], why a
//! message could not be decoded, with the error response the spec gives for each.

use std::fmt;

use crate::homeserver::wire::echo;
use crate::homeserver::wire::endpoint::Endpoint;
use crate::homeserver::wire::http::Method;
use crate::homeserver::wire::{TARGET_BYTES_MAX, TRANSACTION_EDUS_MAX, TRANSACTION_PDUS_MAX};

/// The standard error response `{"errcode", "error"}` with its HTTP status (spec digest §1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// A 4xx or 5xx status.
    pub status: u16,
    pub errcode: ErrCode,
    /// Human-readable text; may be empty (then left out of the body).
    pub error: String,
    /// The room's version, sent with `M_INCOMPATIBLE_ROOM_VERSION` (spec digest §5, §6).
    pub room_version: Option<String>,
}

/// An error code of the standard error response.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrCode {
    /// `M_FORBIDDEN`: not allowed (403).
    Forbidden,
    /// `M_NOT_FOUND`: unknown room or event (404).
    NotFound,
    /// `M_INVALID_PARAM`: a parameter has a bad value (400).
    InvalidParam,
    /// `M_MISSING_PARAM`: a required parameter is missing (400).
    MissingParam,
    /// `M_NOT_JSON`: the body is not a JSON object (400).
    NotJson,
    /// `M_BAD_JSON`: the body is JSON of the wrong shape (400).
    BadJson,
    /// `M_TOO_LARGE`: the body or target is too large (413).
    TooLarge,
    /// `M_UNRECOGNIZED`: unknown endpoint (404) or wrong method (405).
    Unrecognized,
    /// `M_INCOMPATIBLE_ROOM_VERSION`: with `room_version` (400).
    IncompatibleRoomVersion,
    /// `M_UNABLE_TO_AUTHORISE_JOIN`: restricted room, resident cannot check (400).
    UnableToAuthoriseJoin,
    /// `M_UNABLE_TO_GRANT_JOIN`: try another resident (400).
    UnableToGrantJoin,
    /// `M_INVITE_BLOCKED`: the invitee blocks invites (403, spec v1.18).
    InviteBlocked,
    /// `M_LIMIT_EXCEEDED`: rate limited (429).
    LimitExceeded,
    /// `M_UNKNOWN`: anything else.
    Unknown,
    /// A code mxsim does not know, kept verbatim. Never one of the codes above.
    Other(String),
}

impl ErrCode {
    pub(super) const KNOWN: [(ErrCode, &'static str); 14] = [
        (ErrCode::Forbidden, "M_FORBIDDEN"),
        (ErrCode::NotFound, "M_NOT_FOUND"),
        (ErrCode::InvalidParam, "M_INVALID_PARAM"),
        (ErrCode::MissingParam, "M_MISSING_PARAM"),
        (ErrCode::NotJson, "M_NOT_JSON"),
        (ErrCode::BadJson, "M_BAD_JSON"),
        (ErrCode::TooLarge, "M_TOO_LARGE"),
        (ErrCode::Unrecognized, "M_UNRECOGNIZED"),
        (ErrCode::IncompatibleRoomVersion, "M_INCOMPATIBLE_ROOM_VERSION"),
        (ErrCode::UnableToAuthoriseJoin, "M_UNABLE_TO_AUTHORISE_JOIN"),
        (ErrCode::UnableToGrantJoin, "M_UNABLE_TO_GRANT_JOIN"),
        (ErrCode::InviteBlocked, "M_INVITE_BLOCKED"),
        (ErrCode::LimitExceeded, "M_LIMIT_EXCEEDED"),
        (ErrCode::Unknown, "M_UNKNOWN"),
    ];

    /// The code for a string; unknown codes become [`ErrCode::Other`].
    pub fn parse(text: &str) -> ErrCode {
        ErrCode::KNOWN
            .iter()
            .find(|(_, name)| *name == text)
            .map_or_else(|| ErrCode::Other(text.to_owned()), |(code, _)| code.clone())
    }

    pub fn as_str(&self) -> &str {
        match self {
            ErrCode::Other(text) => text,
            known => ErrCode::KNOWN
                .iter()
                .find(|(code, _)| code == known)
                .map(|(_, name)| *name)
                .expect("every variant but Other is in KNOWN"),
        }
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorResponse {
    pub fn new(status: u16, errcode: ErrCode, error: impl Into<String>) -> ErrorResponse {
        assert!((400..=599).contains(&status), "error status {status} is not 4xx or 5xx");
        ErrorResponse { status, errcode, error: error.into(), room_version: None }
    }

    /// 403 `M_FORBIDDEN`.
    pub fn forbidden(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(403, ErrCode::Forbidden, error)
    }

    /// 404 `M_NOT_FOUND`.
    pub fn not_found(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(404, ErrCode::NotFound, error)
    }

    /// 400 `M_INVALID_PARAM`.
    pub fn invalid_param(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::InvalidParam, error)
    }

    /// 400 `M_MISSING_PARAM`.
    pub fn missing_param(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::MissingParam, error)
    }

    /// 400 `M_BAD_JSON`.
    pub fn bad_json(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::BadJson, error)
    }

    /// 400 `M_INCOMPATIBLE_ROOM_VERSION` with the room's version (spec digest §5, §6, §8).
    pub fn incompatible_room_version(room_version: impl Into<String>) -> ErrorResponse {
        let room_version = room_version.into();
        let mut response = ErrorResponse::new(
            400,
            ErrCode::IncompatibleRoomVersion,
            format!("room version {room_version} is not supported by the requesting server"),
        );
        response.room_version = Some(room_version);
        response
    }

    /// 400 `M_UNABLE_TO_AUTHORISE_JOIN` (spec digest §5 step 2).
    pub fn unable_to_authorise_join(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::UnableToAuthoriseJoin, error)
    }

    /// 400 `M_UNABLE_TO_GRANT_JOIN` (spec digest §5 step 2).
    pub fn unable_to_grant_join(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::UnableToGrantJoin, error)
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a message could not be decoded (or, for an outgoing message, validated). Texts taken
/// from input are cut to a bounded length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// No such endpoint: 404 `M_UNRECOGNIZED` (spec digest §1).
    #[error("unknown endpoint {path:?}")]
    UnknownEndpoint { path: String },
    /// A known endpoint with the wrong method: 405 `M_UNRECOGNIZED` (spec digest §1).
    #[error("method {method} not allowed on {endpoint}")]
    MethodNotAllowed { method: Method, endpoint: Endpoint },
    /// The request target is longer than [`TARGET_BYTES_MAX`]: 414 `M_TOO_LARGE`.
    #[error("request target of {bytes} bytes is longer than {TARGET_BYTES_MAX}")]
    TargetTooLong { bytes: u64 },
    /// The target has a byte outside visible ASCII, a bad `%XX` escape, or escapes that are
    /// not UTF-8: 400 `M_INVALID_PARAM` ([digest]: the spec names no code for this).
    #[error("bad request target: {problem}")]
    BadTarget { problem: String },
    /// A required query parameter or body field is missing: 400 `M_MISSING_PARAM` ([impl]
    /// Synapse's `assert_params_in_dict` uses it for body fields too).
    #[error("missing parameter {name}")]
    MissingParam { name: String },
    /// A path or query parameter has a bad value: 400 `M_INVALID_PARAM`.
    #[error("invalid parameter {name}: {problem}")]
    InvalidParam { name: String, problem: String },
    /// The body exceeds the size limit: 413 `M_TOO_LARGE`.
    #[error("body of {bytes} bytes is larger than {max}")]
    BodyTooLarge { bytes: u64, max: u64 },
    /// The body is missing, not JSON, not canonical-JSON numbers, or not an object: 400
    /// `M_NOT_JSON`.
    #[error("body is not a JSON object: {problem}")]
    NotJson { problem: String },
    /// The body is a JSON object of the wrong shape: 400 `M_BAD_JSON`.
    #[error("bad JSON at {path}: {problem}")]
    BadJson { path: String, problem: String },
    /// More than [`TRANSACTION_PDUS_MAX`] PDUs: 400 `M_BAD_JSON` ([impl] Synapse answers
    /// 400, with an empty body, before processing any PDU).
    #[error("{count} PDUs, more than {TRANSACTION_PDUS_MAX}")]
    TooManyPdus { count: u64 },
    /// More than [`TRANSACTION_EDUS_MAX`] EDUs: 400 `M_BAD_JSON` ([impl] as for PDUs).
    #[error("{count} EDUs, more than {TRANSACTION_EDUS_MAX}")]
    TooManyEdus { count: u64 },
    /// A response status that is neither 200 nor 4xx/5xx (responses only): 502 `M_UNKNOWN`
    /// if it must be reported onward.
    #[error("unexpected HTTP status {status}")]
    UnexpectedStatus { status: u16 },
}

impl WireError {
    pub(super) fn missing_param(name: &str) -> WireError {
        WireError::MissingParam { name: echo(name) }
    }

    pub(super) fn invalid_param(name: &str, problem: impl Into<String>) -> WireError {
        WireError::InvalidParam { name: echo(name), problem: echo(&problem.into()) }
    }

    pub(super) fn bad_json(path: &str, problem: impl Into<String>) -> WireError {
        WireError::BadJson { path: echo(path), problem: echo(&problem.into()) }
    }

    /// The spec's error response for this failure (spec digest §1 for the codes of unknown
    /// endpoints and methods; the client-server standard error codes otherwise).
    pub fn to_error_response(&self) -> ErrorResponse {
        let (status, errcode) = match self {
            WireError::UnknownEndpoint { .. } => (404, ErrCode::Unrecognized),
            WireError::MethodNotAllowed { .. } => (405, ErrCode::Unrecognized),
            WireError::TargetTooLong { .. } => (414, ErrCode::TooLarge),
            WireError::BadTarget { .. } | WireError::InvalidParam { .. } => {
                (400, ErrCode::InvalidParam)
            }
            WireError::MissingParam { .. } => (400, ErrCode::MissingParam),
            WireError::BodyTooLarge { .. } => (413, ErrCode::TooLarge),
            WireError::NotJson { .. } => (400, ErrCode::NotJson),
            WireError::BadJson { .. }
            | WireError::TooManyPdus { .. }
            | WireError::TooManyEdus { .. } => (400, ErrCode::BadJson),
            WireError::UnexpectedStatus { .. } => (502, ErrCode::Unknown),
        };
        ErrorResponse::new(status, errcode, self.to_string())
    }
}
