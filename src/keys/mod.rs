//! The keys that sign audit seals and export manifests: Ed25519, kept in PKCS#8 PEM files (the
//! secret key, mode 0600) and SubjectPublicKeyInfo PEM files (the public key), the forms
//! `openssl pkey` reads, so that an auditor can check a signature without this program.
//!
//! A secret key file readable by anyone but its owner is refused: a seal signed with a key that
//! others could have read proves nothing.

pub mod data_key;
pub mod vault;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path} exists; keygen never overwrites a key (move it away first)")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret key {path} can be read by others (mode {mode:04o}); make it 0600 \
         (`chmod 600 {path}`) so that only its owner can sign"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path} is not an Ed25519 {what} in PEM ({reason})")]
    NotAKey {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the public key {text:?} is neither 64 hex digits nor a PEM file")]
    BadPublicKey { text: String },
    #[error("the cryptographic library failed: {0}")]
    Crypto(String),
}

/// A key that signs.
pub struct SecretKey {
    key: SigningKey,
}

/// A key that checks signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom(&mut seed)?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a PKCS#8 PEM secret key, refusing a file that others may read.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::NotAKey {
            path: path.to_path_buf(),
            what: "secret key (PKCS#8)",
            reason: e.to_string(),
        })?;
        Ok(Self { key })
    }

    /// Writes the key to `path` (PKCS#8 PEM, created 0600, never over an existing file) and its
    /// public key beside it (`path.pub`, 0644). Returns the public key's path.
    pub fn write(&self, path: &Path) -> Result<PathBuf, KeyError> {
        // PKCS#8 version 1 (the secret key alone), which OpenSSL reads; version 2 with the
        // public key inside is refused by `openssl pkey`.
        let pem = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
        create_new(path, 0o600, pem.as_bytes())?;
        let public_path = public_path_of(path);
        create_new(&public_path, 0o644, self.public().to_pem()?.as_bytes())?;
        Ok(public_path)
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
        }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

impl PublicKey {
    /// The 32 raw bytes, as 64 hex digits: the form seals and manifests carry.
    pub fn to_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadPublicKey {
            text: text.chars().take(80).collect(),
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        Ok(Self { key })
    }

    /// SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(Default::default())
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Reads a public key: a PEM file (as `keygen` writes beside the secret key), or 64 hex
    /// digits given as they are.
    pub fn read(path_or_hex: &str) -> Result<Self, KeyError> {
        if path_or_hex.len() == 64 && path_or_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Self::from_hex(path_or_hex);
        }
        let path = Path::new(path_or_hex);
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| KeyError::NotAKey {
            path: path.to_path_buf(),
            what: "public key (SubjectPublicKeyInfo)",
            reason: e.to_string(),
        })?;
        Ok(Self { key })
    }

    /// Whether `signature_hex` (128 hex digits) is this key's signature of `message`.
    pub fn verifies_hex(&self, message: &[u8], signature_hex: &str) -> bool {
        let mut signature = [0u8; 64];
        hex::decode_to_slice(signature_hex, &mut signature).is_ok()
            && self.verifies(message, &signature)
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key
            .verify(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

/// Where `keygen` puts the public key of the secret key at `path`.
pub fn public_path_of(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

fn create_new(path: &Path, mode: u32, contents: &[u8]) -> Result<(), KeyError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                KeyError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    let write = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    // The umask may have taken bits away; the mode is exactly what was asked for.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(write)?;
    file.write_all(contents).map_err(write)?;
    file.sync_all().map_err(write)
}

/// Fills `buf` from the operating system's random source (the `getrandom` system call: one
/// call, no file to open, which matters when an import makes a key per new customer).
fn getrandom(buf: &mut [u8]) -> Result<(), KeyError> {
    ::getrandom::fill(buf)
        .map_err(|e| KeyError::Crypto(format!("cannot read the system's random source: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_written_reads_back_and_its_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        let key = SecretKey::generate().unwrap();
        let public_path = key.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = SecretKey::read(&path).unwrap();
        assert_eq!(again.public(), key.public());
        let public = PublicKey::read(public_path.to_str().unwrap()).unwrap();
        assert_eq!(public, key.public());
        assert_eq!(PublicKey::from_hex(&public.to_hex()).unwrap(), public);
        let signature = again.sign(b"statement");
        assert!(public.verifies(b"statement", &signature));
        assert!(!public.verifies(b"statement!", &signature));
        assert!(matches!(key.write(&path), Err(KeyError::Exists { .. })));
    }

    #[test]
    fn a_secret_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        SecretKey::generate().unwrap().write(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretKey::read(&path).err().unwrap();
        assert!(matches!(e, KeyError::TooOpen { mode: 0o644, .. }), "{e}");
    }
}
