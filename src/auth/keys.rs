//! The keys tokens are signed with.

use std::fmt;

use getrandom::SysRng;
use rand_core::TryRng;

/// The JWT signing key. Its `Debug` never prints it.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Vec<u8>,
    generated: bool,
}

impl SecretKey {
    /// A key given by the operator.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { bytes: key.into(), generated: false }
    }

    /// A fresh random key (64 hex characters, like `openssl rand -hex 32`); `None` when the
    /// operating system's random number generator is unavailable.
    pub fn random() -> Option<Self> {
        let mut raw = [0u8; 32];
        SysRng.try_fill_bytes(&mut raw).ok()?;
        let hex: String = raw.iter().map(|byte| format!("{byte:02x}")).collect();
        Some(Self { bytes: hex.into_bytes(), generated: true })
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True when no key was configured and this one was made up at start.
    pub fn is_generated(&self) -> bool {
        self.generated
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}
