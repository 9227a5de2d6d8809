//! Password hashing with argon2id, stored as PHC strings.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Password;
use crate::error::ApiError;

/// OWASP Password Storage Cheat Sheet, argon2id option 2: 19 MiB, 2 passes,
/// 1 lane. Memory-hard enough to slow GPU cracking, cheap enough for Lambda.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const LANES: u32 = 1;

/// A well-formed argon2id hash with the parameters above that no known
/// password matches. Login for an unknown user verifies against it, so an
/// unknown user and a wrong password cost the same time and cannot be told
/// apart.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$yCjdwwr7Ksyw4V2gyfeQtg$2AcEoU0tSB8TsQ0j2uyd4qC7ZwpjO3TlfEttt3Qiamg";

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .expect("argon2 parameters are compile-time constants within range");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes on a blocking thread: tens of milliseconds of CPU must not stall
/// the async runtime.
pub async fn hash(password: Password) -> Result<String, ApiError> {
    run_blocking(move || hash_now(&password)).await?
}

/// Checks a password against a stored PHC string, or against the dummy when
/// there is no user, in the same time either way.
pub async fn verify(password: Password, stored: Option<String>) -> Result<bool, ApiError> {
    run_blocking(move || {
        let known = stored.is_some();
        let phc = stored.as_deref().unwrap_or(DUMMY_HASH);
        let parsed = PasswordHash::new(phc)
            .map_err(|e| ApiError::internal(format!("stored password hash is malformed: {e}")))?;
        let matches = hasher().verify_password(password.expose(), &parsed).is_ok();
        Ok(known && matches)
    })
    .await?
}

fn hash_now(password: &Password) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(ApiError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(e.to_string()))?;
    hasher()
        .hash_password(password.expose(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::parse(raw.into()).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let stored = hash(password("correct horse")).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify(password("correct horse"), Some(stored.clone()))
            .await
            .unwrap());
        assert!(!verify(password("correct horsf"), Some(stored))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let a = hash(password("same password")).await.unwrap();
        let b = hash(password("same password")).await.unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(!verify(password("anything at all"), None).await.unwrap());
    }

    #[test]
    fn the_dummy_hash_uses_the_same_parameters_as_real_hashes() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (MEMORY_KIB, ITERATIONS, LANES)
        );
    }
}
