//! Reading a password: one line from standard input when it is not a terminal, otherwise
//! prompted for (twice, for a new one) without echo.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use crate::api::form::MAX_PASSWORD_CHARS;
use crate::auth::password::{Memory, hash_password};

/// Reads a new password as the users commands do, checked as the login form checks it.
pub fn read_new_password() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|error| format!("cannot read the password: {error}"))?;
        let second = rpassword::prompt_password("Password again: ")
            .map_err(|error| format!("cannot read the password: {error}"))?;
        if first != second {
            return Err("the two passwords differ".into());
        }
        first
    } else {
        read_line()?
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        // The login form refuses longer passwords, so such an account could never log in.
        return Err(format!("the password is longer than {MAX_PASSWORD_CHARS} characters"));
    }
    Ok(password)
}

/// One line from standard input, without its line ending.
fn read_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password from stdin: {error}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
}

/// `hash-password`: one line from stdin to a PHC string on stdout (exit 2 on an empty one).
pub fn print_hash() -> ExitCode {
    let password = match read_line() {
        Ok(password) if !password.is_empty() => password,
        Ok(_) => {
            eprintln!("error: empty password (type it, then Enter; or pipe it in)");
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let phc = hash_password(password.as_bytes(), &mut Memory::default());
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{phc}").is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
