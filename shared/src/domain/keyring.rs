use super::SigningKey;

/// The signing keys a deployment holds: the current one, which signs every
/// new token, and the ones it replaced, which still verify the tokens they
/// signed until an operator retires them (`chat-ops retire-key`). A token
/// names the key that signed it by its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRing {
    current: SigningKey,
    previous: Vec<PreviousKey>,
}

/// A key that no longer signs, and since when (epoch seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousKey {
    pub key: SigningKey,
    pub rotated_at: i64,
}

impl KeyRing {
    pub fn new(current: SigningKey, previous: Vec<PreviousKey>) -> Self {
        KeyRing { current, previous }
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    pub fn previous(&self) -> &[PreviousKey] {
        &self.previous
    }

    /// The key with id `id`, current or previous.
    pub fn key(&self, id: u8) -> Option<&SigningKey> {
        std::iter::once(&self.current)
            .chain(self.previous.iter().map(|p| &p.key))
            .find(|key| key.id() == id)
    }

    /// The id the next key takes: the first after the current one (1-255,
    /// round again after 255) that no key here holds, so a token can never
    /// name a key it was not signed with. `None` when all 255 are held.
    pub fn next_id(&self) -> Option<u8> {
        (1..=255u16)
            .map(|step| ((u16::from(self.current.id()) - 1 + step) % 255 + 1) as u8)
            .find(|id| self.key(*id).is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> SigningKey {
        SigningKey::from_parts(id, &[id; 32]).unwrap()
    }

    #[test]
    fn a_token_finds_its_key_current_or_previous_and_no_other() {
        let ring = KeyRing::new(
            key(3),
            vec![PreviousKey {
                key: key(2),
                rotated_at: 0,
            }],
        );
        assert_eq!(ring.key(3), Some(&key(3)));
        assert_eq!(ring.key(2), Some(&key(2)));
        assert_eq!(ring.key(1), None);
    }

    #[test]
    fn the_next_id_follows_the_current_one_skips_held_ones_and_wraps() {
        assert_eq!(KeyRing::new(key(1), vec![]).next_id(), Some(2));
        let held = |id| PreviousKey {
            key: key(id),
            rotated_at: 0,
        };
        assert_eq!(KeyRing::new(key(254), vec![held(255)]).next_id(), Some(1));
        assert_eq!(KeyRing::new(key(255), vec![held(1)]).next_id(), Some(2));
        let all = (1..=254).map(held).collect();
        assert_eq!(KeyRing::new(key(255), all).next_id(), None);
    }
}
