//! The keys that encrypt personal data: one data key per customer, wrapped by the master key.
//!
//! A personal field is sealed with XChaCha20-Poly1305 under the customer's data key. The nonce is
//! not random: it is a keyed hash (HMAC-SHA-256, with a subkey of the data key) of the field's
//! context and its plaintext, so sealing is deterministic (a synthetic-IV construction). The same
//! plaintext in the same event and field always gives the same ciphertext, and any other
//! plaintext a different one. That is what lets the store compare a retried event byte for byte
//! and still mean "the same plaintext", and it leaks nothing across events: the context (the
//! customer, the event id and the field's path) is in both the nonce and the associated data, so
//! a ciphertext moved to another event or field no longer opens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a master key and of a data key.
pub const KEY_BYTES: usize = 32;
/// Bytes of an XChaCha20 nonce.
const NONCE_BYTES: usize = 24;
/// The first byte of every sealed value: the version of this format.
const SEALED_FORMAT_V1: u8 = 1;
/// Domain-separation tags: no hash or key of one purpose can stand for another.
const TAG_ENCRYPTION_SUBKEY: &[u8] = b"pipeline-ledger/personal/encryption/1\0";
const TAG_NONCE_SUBKEY: &[u8] = b"pipeline-ledger/personal/nonce/1\0";
const TAG_WRAP: &[u8] = b"pipeline-ledger/data-key/1\0";
const TAG_CHECK: &[u8] = b"pipeline-ledger/master-key-check/1\0";

type HmacSha256 = Hmac<Sha256>;

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the sealed value is not base64 of a version-1 sealed field")]
    Malformed,
    #[error(
        "the sealed value does not open with this customer's key for this event and field (it \
         was changed, moved from another event or field, or sealed under another key)"
    )]
    Forged,
}

/// The master key: it wraps every data key and never leaves the process.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; KEY_BYTES],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self { bytes }
    }

    /// Parses 64 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; KEY_BYTES];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(Self { bytes })
    }

    /// The key as 64 hex digits: the form of the master key file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// A value that tells whether a key store was made with this master key, without revealing
    /// anything about the key.
    pub fn check_value(&self) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.bytes).expect("any key length");
        mac.update(TAG_CHECK);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Wraps `key` for `customer`: a random nonce followed by the ciphertext; the customer is
    /// the associated data, so a wrapped key copied to another customer's row does not open.
    pub fn wrap(&self, customer: &str, key: &DataKey, nonce: [u8; NONCE_BYTES]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.bytes).into());
        let aad = [TAG_WRAP, customer.as_bytes()].concat();
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &key.bytes,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length the ledger writes");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Unwraps a key [`MasterKey::wrap`] made for `customer`; `None` when it does not open.
    pub fn unwrap(&self, customer: &str, wrapped: &[u8]) -> Option<DataKey> {
        let (nonce, sealed) = wrapped.split_at_checked(NONCE_BYTES)?;
        let cipher = XChaCha20Poly1305::new((&self.bytes).into());
        let aad = [TAG_WRAP, customer.as_bytes()].concat();
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()?;
        let bytes: [u8; KEY_BYTES] = plain.try_into().ok()?;
        Some(DataKey::from_bytes(bytes))
    }
}

/// A customer's data key, with the two subkeys derived from it.
#[derive(Clone)]
pub struct DataKey {
    bytes: [u8; KEY_BYTES],
    encryption: [u8; KEY_BYTES],
    nonce: [u8; KEY_BYTES],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

fn subkey(key: &[u8; KEY_BYTES], tag: &[u8]) -> [u8; KEY_BYTES] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
    mac.update(tag);
    mac.finalize().into_bytes().into()
}

impl DataKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self {
            bytes,
            encryption: subkey(&bytes, TAG_ENCRYPTION_SUBKEY),
            nonce: subkey(&bytes, TAG_NONCE_SUBKEY),
        }
    }

    /// Seals `plaintext` for `context` (who, which event, which field): base64url of the format
    /// byte, the synthetic nonce and the ciphertext with its tag.
    pub fn seal(&self, context: &[u8], plaintext: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.nonce).expect("any key length");
        mac.update(&(context.len() as u64).to_be_bytes());
        mac.update(context);
        mac.update(plaintext.as_bytes());
        let digest = mac.finalize().into_bytes();
        let nonce = XNonce::from_slice(&digest[..NONCE_BYTES]);
        let cipher = XChaCha20Poly1305::new((&self.encryption).into());
        let sealed = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length the ledger writes");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(SEALED_FORMAT_V1);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a value [`DataKey::seal`] made for `context`.
    pub fn open(&self, context: &[u8], sealed: &str) -> Result<String, OpenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| OpenError::Malformed)?;
        let Some((&SEALED_FORMAT_V1, rest)) = bytes.split_first() else {
            return Err(OpenError::Malformed);
        };
        let (nonce, ciphertext) = rest
            .split_at_checked(NONCE_BYTES)
            .ok_or(OpenError::Malformed)?;
        let cipher = XChaCha20Poly1305::new((&self.encryption).into());
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| OpenError::Forged)?;
        String::from_utf8(plain).map_err(|_| OpenError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fill: u8) -> DataKey {
        DataKey::from_bytes([fill; KEY_BYTES])
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let sealed = key(1).seal(b"customer-a/event-1/contact.name", "Li Wei");
        assert!(!sealed.contains("Li Wei"));
        assert_eq!(
            key(1).open(b"customer-a/event-1/contact.name", &sealed),
            Ok("Li Wei".to_string())
        );
        assert_eq!(
            key(1).open(b"customer-a/event-2/contact.name", &sealed),
            Err(OpenError::Forged),
            "moved to another event"
        );
        assert_eq!(
            key(2).open(b"customer-a/event-1/contact.name", &sealed),
            Err(OpenError::Forged),
            "another customer's key"
        );
        assert_eq!(key(1).open(b"x", "not base64!"), Err(OpenError::Malformed));
    }

    #[test]
    fn sealing_is_deterministic_per_plaintext_and_context() {
        let a = key(1).seal(b"ctx", "Li Wei");
        assert_eq!(a, key(1).seal(b"ctx", "Li Wei"), "a retry seals alike");
        assert_ne!(a, key(1).seal(b"ctx", "Li Wen"));
        assert_ne!(a, key(1).seal(b"ctx2", "Li Wei"));
    }

    #[test]
    fn a_wrapped_key_opens_for_its_customer_under_its_master_key_only() {
        let master = MasterKey::from_bytes([7; KEY_BYTES]);
        let wrapped = master.wrap("c-1", &key(3), [9; NONCE_BYTES]);
        let unwrapped = master.unwrap("c-1", &wrapped).expect("opens");
        assert_eq!(unwrapped.bytes, [3; KEY_BYTES]);
        assert!(master.unwrap("c-2", &wrapped).is_none());
        assert!(
            MasterKey::from_bytes([8; KEY_BYTES])
                .unwrap("c-1", &wrapped)
                .is_none()
        );
        assert_ne!(
            master.check_value(),
            MasterKey::from_bytes([8; KEY_BYTES]).check_value()
        );
    }
}
