//! The token-signing keys, one item in the users table under a name no
//! username can take (usernames have no `~`):
//!
//! `{username: "~token-signing-key", key_id, secret, created_at,
//! previous: {<id>: {secret, rotated_at}}, rotated_at}`
//!
//! `key_id` and `secret` are the current key, which signs new tokens; each
//! entry of `previous` is a key it replaced, which still verifies what it
//! signed until an operator retires it. A deployment's first login puts the
//! item; only the operator (`chat-ops rotate-key`, `retire-key`) changes it,
//! and IAM lets no function but login write it (see `template.yaml`).
//!
//! It lives beside the accounts rather than in a secrets service: every
//! function that checks tokens reads that table anyway, so loading the keys
//! at a cold start costs one `GetItem` on the connection the first request
//! then reuses, and no extra SDK in any binary.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{n, number_of, s, storage_error, Store, CREATED_AT, USERNAME};
use crate::clock::Timestamp;
use crate::domain::{KeyRing, PreviousKey, SigningKey};
use crate::error::ApiError;

/// The key item's partition key: not a valid username, so never an account.
pub const SIGNING_KEY_ITEM: &str = "~token-signing-key";

use super::Item;

/// What a rotation came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// `new` signs from now on; `old` still verifies what it signed.
    Rotated { old: u8, new: u8 },
    /// No key yet: the first login of the deployment makes one.
    NoKey,
    /// All 255 ids are held: retire a previous key first.
    NoFreeId,
}

impl Store {
    /// The stored keys, if any were made yet.
    pub async fn signing_keys(&self) -> Result<Option<KeyRing>, ApiError> {
        self.item_by_username(&self.tables.users, SIGNING_KEY_ITEM, None)
            .await?
            .as_ref()
            .map(ring_of)
            .transpose()
    }

    /// Stores `key` as a deployment's first key unless one exists; returns
    /// the keys that are stored, so logins racing on a new deployment all
    /// sign with the same key.
    pub async fn create_signing_key(&self, key: SigningKey) -> Result<KeyRing, ApiError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.users)
            .item(USERNAME, s(SIGNING_KEY_ITEM))
            .item("key_id", n(key.id()))
            .item("secret", AttributeValue::B(Blob::new(key.expose())))
            .item(CREATED_AT, s(Timestamp::now().iso8601()))
            .condition_expression("attribute_not_exists(username)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(KeyRing::new(key, Vec::new())),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => match e.item() {
                    Some(stored) => ring_of(stored),
                    None => Err(ApiError::internal(
                        "a key put was refused but none came back",
                    )),
                },
                _ => Err(storage_error(err)),
            },
        }
    }

    /// Makes a new current key; the one it replaces keeps verifying what it
    /// signed. Conditional on the current key being the one read, so two
    /// rotations at once cannot drop a key: the second is refused, and
    /// answered as a race ([`ApiError::Unavailable`]: run it again).
    #[cfg(feature = "operator")]
    pub async fn rotate_signing_key(&self, now: Timestamp) -> Result<Rotation, ApiError> {
        let Some(ring) = self.signing_keys().await? else {
            return Ok(Rotation::NoKey);
        };
        let Some(new_id) = ring.next_id() else {
            return Ok(Rotation::NoFreeId);
        };
        let fresh = SigningKey::generate(new_id).map_err(ApiError::internal)?;
        let old = ring.current();
        let entry = AttributeValue::M(std::collections::HashMap::from([
            (
                "secret".to_owned(),
                AttributeValue::B(Blob::new(old.expose())),
            ),
            ("rotated_at".to_owned(), n(now.unix_seconds())),
        ]));
        let request = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(SIGNING_KEY_ITEM))
            .expression_attribute_values(":old_id", n(old.id()))
            .expression_attribute_values(":new_id", n(new_id))
            .expression_attribute_values(":secret", AttributeValue::B(Blob::new(fresh.expose())))
            .expression_attribute_values(":now", n(now.unix_seconds()));
        // A key made before rotation existed has no map of previous keys
        // yet; DynamoDB sets a map's entry only inside a map that exists.
        let request = if ring.previous().is_empty() {
            request
                .update_expression(
                    "SET key_id = :new_id, secret = :secret, rotated_at = :now, previous = :previous",
                )
                .condition_expression(
                    "key_id = :old_id AND (attribute_not_exists(previous) OR size(previous) = :zero)",
                )
                .expression_attribute_values(
                    ":previous",
                    AttributeValue::M(std::collections::HashMap::from([(old.id().to_string(), entry)])),
                )
                .expression_attribute_values(":zero", n(0))
        } else {
            request
                .update_expression(
                    "SET key_id = :new_id, secret = :secret, rotated_at = :now, previous.#old = :entry",
                )
                .condition_expression("key_id = :old_id AND attribute_exists(previous)")
                .expression_attribute_names("#old", old.id().to_string())
                .expression_attribute_values(":entry", entry)
        };
        super::refused_as(
            request.send().await,
            ApiError::Unavailable("the signing key changed while it was being rotated".into()),
        )?;
        Ok(Rotation::Rotated {
            old: old.id(),
            new: new_id,
        })
    }

    /// Stops key `id` from verifying anything: every token it signed stops
    /// working at once, in each function within its next read of the keys.
    /// `false` if no previous key has that id (the current key cannot be
    /// retired: rotate first).
    #[cfg(feature = "operator")]
    pub async fn retire_signing_key(&self, id: u8) -> Result<bool, ApiError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .key(USERNAME, s(SIGNING_KEY_ITEM))
            .update_expression("REMOVE previous.#id")
            .condition_expression("attribute_exists(previous.#id) AND key_id <> :id")
            .expression_attribute_names("#id", id.to_string())
            .expression_attribute_values(":id", n(id))
            .send()
            .await;
        match super::refused_as(result, ApiError::NotFound) {
            Ok(_) => Ok(true),
            Err(ApiError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The keys as stored. Anything malformed is our bug: no token can be
/// checked against a key that cannot be read.
fn ring_of(item: &Item) -> Result<KeyRing, ApiError> {
    let id = |value: i64| {
        u8::try_from(value)
            .ok()
            .filter(|id| *id != 0)
            .ok_or_else(|| ApiError::internal("a signing key's id is out of range"))
    };
    let secret = |item: &Item, id: u8| {
        item.get("secret")
            .and_then(|v| v.as_b().ok())
            .and_then(|secret| SigningKey::from_parts(id, secret.as_ref()))
            .ok_or_else(|| ApiError::internal("a stored signing key is not 32 bytes"))
    };
    let current = secret(item, id(number_of(item, "key_id")?)?)?;
    let mut previous = Vec::new();
    if let Some(entries) = item.get("previous").and_then(|v| v.as_m().ok()) {
        for (key_id, entry) in entries {
            let entry = entry
                .as_m()
                .map_err(|_| ApiError::internal("a previous signing key is not a map"))?;
            let key_id = key_id
                .parse::<i64>()
                .map_err(|_| ApiError::internal("a previous signing key's id is not a number"))?;
            previous.push(PreviousKey {
                key: secret(entry, id(key_id)?)?,
                rotated_at: number_of(entry, "rotated_at")?,
            });
        }
    }
    previous.sort_by_key(|p| p.rotated_at);
    Ok(KeyRing::new(current, previous))
}
