//! Integration tests: each starts the real server on 127.0.0.1:0 and speaks HTTP to it.
//! `postgres` is the harness for a throwaway PostgreSQL server (`postgres_harness` tests it).

mod backends;
mod browser;
mod current_user;
mod docs;
mod hardening;
mod helpers;
mod instances;
mod legacy_hashes;
mod login;
mod oauth2_client;
mod operations;
mod postgres;
mod postgres_harness;
mod processes;
mod production;
mod routing;
mod scopes;
mod shared_counters;
mod signing_keys;
mod store_faults;
mod throttling;
mod token_lifecycle;
mod users_cli;
