//! `keys generate --alg ALG`: one new private JWK, pretty JSON, on standard output.

use std::io::Write;
use std::process::ExitCode;

use crate::auth::keys::{self, KeyAlgorithm};
use crate::cli::KeyAlg;

/// Prints a new private JWK for `alg` (exit 1 if the random number generator fails).
pub fn generate(alg: KeyAlg) -> ExitCode {
    let algorithm = match alg {
        KeyAlg::EdDSA => KeyAlgorithm::EdDSA,
        KeyAlg::ES256 => KeyAlgorithm::ES256,
        KeyAlg::RS256 => KeyAlgorithm::RS256,
        KeyAlg::HS256 => KeyAlgorithm::HS256,
    };
    let jwk = match keys::generate(algorithm) {
        Ok(jwk) => jwk,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{jwk}").and_then(|()| stdout.flush()).is_err() {
        eprintln!("error: cannot write to standard output");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
