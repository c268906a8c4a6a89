//! WireGuard keys as typed values.
//!
//! Private and preshared keys never print: their `Debug` says `(hidden)` and
//! they have no `Display`. They are wiped from memory when dropped. A public
//! key prints as the usual base64 text.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroize;

/// Length in bytes of every WireGuard key.
pub const KEY_LEN: usize = 32;

/// Why a key's text was refused. Never contains the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not valid base64")]
    Base64,
    #[error("decodes to {0} bytes, a WireGuard key has 32")]
    Length(usize),
}

fn decode(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let mut bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::Base64)?;
    let result =
        <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()));
    bytes.zeroize();
    result
}

/// A Curve25519 private key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey([u8; KEY_LEN]);

impl PrivateKey {
    /// A new random key (clamped as WireGuard expects).
    pub fn generate() -> Self {
        let key = defguard_wireguard_rs::key::Key::generate();
        Self(key.as_array())
    }

    /// Parses the base64 form used by `wg` and wg-quick files.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode(text).map(Self)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The base64 form, for `wgd genkey` only.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn public_key(&self) -> PublicKey {
        let key = defguard_wireguard_rs::key::Key::new(self.0);
        PublicKey(key.public_key().as_array())
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(hidden)")
    }
}

/// A symmetric preshared key mixed into the handshake.
#[derive(Clone, PartialEq, Eq)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PresharedKey {
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode(text).map(Self)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for PresharedKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(hidden)")
    }
}

/// A Curve25519 public key: a peer's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode(text).map(Self)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_matches_wg_pubkey() {
        // `echo GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE= | wg pubkey` (the seed's private key).
        let private =
            PrivateKey::from_base64("GIWLRkDQXS/wym2pCWW2VDKTBpUp2a60AB+KSG18SEE=").unwrap();
        assert_eq!(
            private.public_key().to_base64(),
            "mfHKc2vppGYFQNOFYRzOSFfdQV+4hZFTScOJoWDpN14="
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let private = PrivateKey::generate();
        let text = private.to_base64();
        assert!(!format!("{private:?}").contains(&text));
        let psk = PresharedKey::from_bytes([7; KEY_LEN]);
        assert_eq!(format!("{psk:?}"), "PresharedKey(hidden)");
    }

    #[test]
    fn bad_keys_are_refused_without_echo() {
        assert_eq!(PublicKey::from_base64("not base64!"), Err(KeyError::Base64));
        assert_eq!(PublicKey::from_base64("AAAA"), Err(KeyError::Length(3)));
    }
}
