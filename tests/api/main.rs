//! Integration tests: each starts the real server on 127.0.0.1:0 and speaks HTTP to it.

mod backends;
mod browser;
mod current_user;
mod docs;
mod hardening;
mod helpers;
mod login;
mod operations;
mod routing;
mod throttle_burst;
mod users_cli;
