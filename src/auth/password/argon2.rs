//! Argon2 (argon2id, argon2i, argon2d): parsing stored PHC strings, hashing new passwords,
//! verifying against a hash.
//!
//! Verification reuses a caller-owned memory buffer (`Memory`) instead of allocating the
//! 64 MiB working area on every call; `hash_pool` gives each worker thread one.

use std::fmt;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use getrandom::SysRng;
use password_hash::phc::{Output, ParamsString, Salt};
use rand_core::TryRng;

use super::HashFormatError;

/// The name errors use for this family.
const SCHEME: &str = "argon2";

/// The parameters of new hashes and of the dummy hash: pwdlib's `PasswordHash.recommended()`.
pub const DEFAULT_PARAMS: (u32, u32, u32) = (65_536, 3, 4);

/// The largest memory cost (KiB) we accept in a stored hash: 256 MiB per concurrent check.
pub const MAX_M_COST: u32 = 262_144;

/// The most work (memory cost in KiB times passes) we accept in a stored hash: about five
/// times ours (65536 x 3), a third of a second here, so a stored hash cannot stall logins.
pub const MAX_WORK: u64 = 1_048_576;

/// The most lanes we accept (RFC 9106 recommends 4; more only adds threads' worth of work).
pub const MAX_P_COST: u32 = 16;

/// A stored password hash, parsed once when the user table is loaded. Never printed.
#[derive(Clone)]
pub struct PasswordHash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Salt,
    hash: Output,
}

impl PasswordHash {
    /// Parses a PHC string such as pwdlib writes it.
    pub fn parse(phc: &str) -> Result<Self, HashFormatError> {
        let parsed = argon2::PasswordHash::new(phc)
            .map_err(|_| malformed(&"not a PHC string ($argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>)"))?;
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str())
            .map_err(|_| HashFormatError::Algorithm(parsed.algorithm.as_str().to_owned()))?;
        let version = match parsed.version {
            Some(number) => Version::try_from(number).map_err(|e| malformed(&e))?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|e| malformed(&e))?;
        if params.m_cost() > MAX_M_COST {
            return Err(HashFormatError::Cost {
                scheme: SCHEME,
                parameter: "memory cost m (KiB)",
                value: params.m_cost().into(),
                min: Params::MIN_M_COST.into(),
                max: MAX_M_COST.into(),
            });
        }
        let work = u64::from(params.m_cost()) * u64::from(params.t_cost());
        if work > MAX_WORK {
            return Err(HashFormatError::Cost {
                scheme: SCHEME,
                parameter: "work m x t (KiB x passes)",
                value: work,
                min: 1,
                max: MAX_WORK,
            });
        }
        if params.p_cost() > MAX_P_COST {
            return Err(HashFormatError::Cost {
                scheme: SCHEME,
                parameter: "parallelism p",
                value: params.p_cost().into(),
                min: 1,
                max: MAX_P_COST.into(),
            });
        }
        let salt = parsed.salt.ok_or_else(|| malformed(&"no salt"))?;
        let hash = parsed.hash.ok_or_else(|| malformed(&"no hash"))?;
        Ok(Self { algorithm, version, params, salt, hash })
    }

    /// A hash no password matches, costing exactly as much to check as a real one with
    /// `params`: unknown usernames are checked against it so that timing reveals nothing.
    pub fn dummy(params: Params) -> Self {
        let mut salt = [0u8; 16];
        let mut output = [0u8; 32];
        fill_random(&mut salt);
        fill_random(&mut output);
        Self {
            algorithm: Algorithm::Argon2id,
            version: Version::V0x13,
            params: Params::new(params.m_cost(), params.t_cost(), params.p_cost(), Some(32))
                .expect("parameters of a parsed hash are valid"),
            salt: Salt::new(&salt).expect("16 bytes is a valid salt"),
            hash: Output::new(&output).expect("32 bytes is a valid output"),
        }
    }

    /// The argon2 cost parameters of this hash.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// True for what `hash_password` writes today: argon2id, version 0x13, the default
    /// parameters and a 32-byte output. Anything else should be rehashed after a good login.
    pub fn is_current(&self) -> bool {
        let default = default_params();
        self.algorithm == Algorithm::Argon2id
            && self.version == Version::V0x13
            && (self.params.m_cost(), self.params.t_cost(), self.params.p_cost())
                == (default.m_cost(), default.t_cost(), default.p_cost())
            && self.hash.len() == 32
    }

    /// True when `password` hashes to this hash. `memory` is reused working space.
    pub fn verify(&self, password: &[u8], memory: &mut Memory) -> bool {
        let argon2 = Argon2::new(self.algorithm, self.version, self.params.clone());
        let mut computed = [0u8; Output::MAX_LENGTH];
        let computed = &mut computed[..self.hash.len()];
        let blocks = memory.blocks(self.params.block_count());
        if argon2.hash_password_into_with_memory(password, &self.salt, computed, blocks).is_err() {
            return false;
        }
        // `Output`'s equality is constant-time.
        Output::new(computed).is_ok_and(|computed| computed == self.hash)
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// The default argon2id parameters (m=65536 KiB, t=3, p=4, 32-byte output).
pub fn default_params() -> Params {
    let (m, t, p) = DEFAULT_PARAMS;
    Params::new(m, t, p, Some(32)).expect("the default parameters are valid")
}

/// Hashes `password` with a fresh random salt and the default parameters; returns the PHC string.
pub fn hash_password(password: &[u8], memory: &mut Memory) -> String {
    let params = default_params();
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let mut output = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut output, memory.blocks(params.block_count()))
        .expect("the default parameters and a 16-byte salt are valid");
    let hash = argon2::PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("the default parameters serialise"),
        salt: Some(Salt::new(&salt).expect("16 bytes is a valid salt")),
        hash: Some(Output::new(&output).expect("32 bytes is a valid output")),
    };
    hash.to_string()
}

fn malformed(reason: &dyn fmt::Display) -> HashFormatError {
    HashFormatError::Malformed { scheme: SCHEME, reason: reason.to_string() }
}

fn fill_random(buffer: &mut [u8]) {
    // Failing to read the OS generator leaves no safe way to go on.
    SysRng.try_fill_bytes(buffer).expect("the OS random number generator failed");
}

/// Argon2's working memory, kept between calls so each check does not fault in 64 MiB anew.
#[derive(Default)]
pub struct Memory {
    region: Option<Region>,
}

impl Memory {
    /// At least `count` blocks, (re)allocated the first time more are needed.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        let region = match self.region.take() {
            Some(region) if region.count >= count => region,
            _ => Region::new(count),
        };
        self.region.insert(region).blocks(count)
    }
}

/// Zeroed memory for argon2 blocks. On Unix it is an anonymous mapping aligned to 2 MiB and,
/// on Linux, advised for transparent huge pages before it is touched: argon2's random reads
/// over 64 MiB then need 32 TLB entries instead of 16384, and a hash is about 10-15% faster
/// (measured with `cargo bench`, see README).
#[cfg(unix)]
struct Region {
    mapping: std::ptr::NonNull<libc::c_void>,
    mapped_len: usize,
    start: std::ptr::NonNull<Block>,
    count: usize,
}

#[cfg(unix)]
const HUGE_PAGE: usize = 2 << 20;

#[cfg(unix)]
impl Region {
    fn new(count: usize) -> Self {
        let len = count.checked_mul(size_of::<Block>()).expect("argon2 memory size fits in usize");
        let mapped_len = len + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping, no address hint; the result is checked.
        let mapping = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let Some(mapping) = std::ptr::NonNull::new(mapping).filter(|_| mapping != libc::MAP_FAILED) else {
            let layout = std::alloc::Layout::array::<Block>(count).expect("argon2 memory layout");
            std::alloc::handle_alloc_error(layout);
        };
        let offset = (mapping.as_ptr() as usize).next_multiple_of(HUGE_PAGE) - mapping.as_ptr() as usize;
        // SAFETY: `offset < HUGE_PAGE`, so `start` and the `len` bytes after it lie inside the
        // mapping; a 2 MiB-aligned address is aligned for `Block`.
        let start = unsafe { mapping.byte_add(offset) }.cast::<Block>();
        #[cfg(target_os = "linux")]
        // SAFETY: advice about our own mapping; if refused, it simply uses ordinary pages.
        unsafe {
            libc::madvise(start.as_ptr().cast(), len, libc::MADV_HUGEPAGE);
        }
        Self { mapping, mapped_len, start, count }
    }

    fn blocks(&mut self, count: usize) -> &mut [Block] {
        assert!(count <= self.count);
        // SAFETY: the mapping holds `self.count` blocks, zero-filled by the kernel (all-zero
        // bytes are a valid `Block`), and `&mut self` makes this the only reference to them.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), count) }
    }
}

#[cfg(unix)]
impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no references to it outlive `self`.
        unsafe {
            libc::munmap(self.mapping.as_ptr(), self.mapped_len);
        }
    }
}

// SAFETY: a `Region` owns its mapping alone; handing it to another thread is fine.
#[cfg(unix)]
unsafe impl Send for Region {}

#[cfg(not(unix))]
struct Region {
    blocks: Vec<Block>,
    count: usize,
}

#[cfg(not(unix))]
impl Region {
    fn new(count: usize) -> Self {
        Self { blocks: vec![Block::default(); count], count }
    }

    fn blocks(&mut self, count: usize) -> &mut [Block] {
        &mut self.blocks[..count]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOHNDOE: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";

    #[test]
    fn the_tutorials_pwdlib_hash_verifies_as_it_is() {
        let hash = PasswordHash::parse(JOHNDOE).unwrap();
        let mut memory = Memory::default();
        assert!(hash.verify(b"secret", &mut memory));
        assert!(!hash.verify(b"Secret", &mut memory));
        assert!(!hash.verify(b"", &mut memory));
    }

    #[test]
    fn a_new_hash_uses_the_default_parameters_and_verifies() {
        let mut memory = Memory::default();
        let phc = hash_password(b"correct horse", &mut memory);
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{phc}");
        let hash = PasswordHash::parse(&phc).unwrap();
        assert!(hash.verify(b"correct horse", &mut memory));
        assert!(!hash.verify(b"correct horsf", &mut memory));
        assert_ne!(phc, hash_password(b"correct horse", &mut memory), "salts must differ");
    }

    #[test]
    fn the_dummy_hash_has_the_real_parameters_and_matches_nothing() {
        let dummy = PasswordHash::dummy(default_params());
        assert_eq!(dummy.params().block_count(), default_params().block_count());
        assert_eq!(dummy.params().t_cost(), 3);
        assert!(!dummy.verify(b"dummypassword", &mut Memory::default()));
    }

    #[test]
    fn unusable_hashes_are_refused_with_a_reason() {
        let message = |text: &str| PasswordHash::parse(text).unwrap_err().to_string();
        assert_eq!(
            message("secret"),
            "malformed argon2 hash: not a PHC string ($argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>)"
        );
        let pbkdf2 = "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        assert!(matches!(PasswordHash::parse(pbkdf2), Err(HashFormatError::Algorithm(_))));
        let huge = JOHNDOE.replace("m=65536", "m=4194304");
        assert!(matches!(PasswordHash::parse(&huge), Err(HashFormatError::Cost { value: 4194304, .. })));
        let endless = JOHNDOE.replace("t=3", "t=1000000");
        let error = PasswordHash::parse(&endless).unwrap_err().to_string();
        assert!(error.contains("work m x t"), "{error}");
        let wide = JOHNDOE.replace("p=4", "p=255");
        assert!(PasswordHash::parse(&wide).unwrap_err().to_string().contains("parallelism p"));
        assert_eq!(message(&huge), "argon2 memory cost m (KiB) 4194304 is outside the accepted 8..=262144");
        let no_hash = "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w";
        assert_eq!(message(no_hash), "malformed argon2 hash: no hash");
    }

    #[test]
    fn only_argon2id_v19_with_the_default_parameters_and_32_bytes_is_current() {
        let mut memory = Memory::default();
        assert!(PasswordHash::parse(&hash_password(b"x", &mut memory)).unwrap().is_current());
        assert!(PasswordHash::parse(JOHNDOE).unwrap().is_current());
        for other in [
            JOHNDOE.replace("argon2id", "argon2i"),
            JOHNDOE.replace("v=19", "v=16"),
            JOHNDOE.replace("m=65536", "m=65537"),
            JOHNDOE.replace("t=3", "t=4"),
            JOHNDOE.replace("p=4", "p=2"),
            "$argon2id$v=19$m=65536,t=3,p=4$keXUdSdMbvh1F6khracPeA$mPy5po/Jox6qiIM/SdSefQ".to_owned(),
        ] {
            assert!(!PasswordHash::parse(&other).unwrap().is_current(), "{other}");
        }
    }

    #[test]
    fn memory_is_reused_and_grows_when_a_costlier_hash_needs_more() {
        let mut memory = Memory::default();
        let small = Params::new(64, 1, 1, Some(32)).unwrap();
        let address = memory.blocks(small.block_count()).as_ptr();
        assert_eq!(memory.blocks(small.block_count()).as_ptr(), address, "reused");
        let bigger = memory.blocks(default_params().block_count());
        assert_eq!(bigger.len(), default_params().block_count());
        assert!(bigger.iter().all(|block| block.as_ref().iter().all(|&word| word == 0)), "zeroed");
    }

    #[test]
    fn debug_output_never_shows_the_hash() {
        let hash = PasswordHash::parse(JOHNDOE).unwrap();
        assert_eq!(format!("{hash:?}"), "PasswordHash(<redacted>)");
    }
}
