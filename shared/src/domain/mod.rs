//! Values parsed at the edge: past a handler's first lines nothing sees an
//! unchecked string. Each type has a private field and one way in, `parse`.

mod budget;
mod cursor;
mod idempotency;
mod keyring;
mod message;
mod password;
mod source;
mod token;
mod username;

pub use budget::{current_windows, Budget, Period};
pub use cursor::Cursor;
pub use idempotency::{sha256_hex, IdempotencyKey, KeyedRequest};
pub use keyring::{KeyRing, PreviousKey};
pub use message::{ChatMessage, MESSAGE_MAX_CHARS};
pub use password::{Password, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};
pub use source::Source;
pub use token::{AuthToken, SessionId, SigningKey, TokenKind, VerifiedToken, API_KEY_PREFIX};
pub use username::{LoginName, Username, USERNAME_MAX_CHARS};
