//! The server binary: `oauth2-jwt-server` serves; `oauth2-jwt-server users ...` manages the
//! users of `DATABASE_URL`; `oauth2-jwt-server hash-password` prints a hash for a users file.

use std::process::ExitCode;

fn main() -> ExitCode {
    oauth2_jwt_server::cli::main()
}

/// mimalloc: allocation is a measurable share of a read (about 20 allocations each; see the
/// README's Performance section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
