//! The router's path templates as requests are labelled in the metrics (`http_route`) and
//! sorted in the log (probes at debug, audited routes in a span), found without running the
//! router: one comparison per template, no allocation.

use crate::api::AppState;

/// Every path template of the router, as requests are labelled in the metrics (`http_route`);
/// the last, `other`, stands for any path without a route (404s, FastAPI's slash redirects).
pub const ROUTES: &[&str] = &[
    "/token",
    "/revoke",
    "/users/me/",
    "/users/me",
    "/users/me/items/",
    "/users/me/items",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/docs/{file}",
    "/redoc",
    "/redoc/redoc.standalone.js",
    "/.well-known/jwks.json",
    "/healthz",
    "/readyz",
    "/status/",
    "/status",
    "other",
];

/// Which of `ROUTES` a request's path takes, as the router decides: exact paths, the one
/// `/docs/{file}` template, and the routes that only some settings serve.
#[derive(Debug, Clone)]
pub struct Routes {
    served: [bool; ROUTES.len()],
}

impl Routes {
    const TOKEN: usize = 0;
    const REVOKE: usize = 1;
    const USERS_ME: usize = 2;
    const OPENAPI: usize = 6;
    const DOCS_FILE: usize = 9;
    const REDOC_JS: usize = 11;
    const JWKS: usize = 12;
    const HEALTHZ: usize = 13;
    const READYZ: usize = 14;
    const STATUS: [usize; 2] = [15, 16];
    /// The index of `other`.
    pub const OTHER: usize = ROUTES.len() - 1;

    /// The routes served with `state`'s settings.
    pub fn new(state: &AppState) -> Self {
        let mut served = [true; ROUTES.len()];
        served[Self::REVOKE] = state.refresh.is_some();
        served[Self::JWKS] = state.tokens.public_jwks().is_some();
        for status in Self::STATUS {
            served[status] = state.scopes.is_some();
        }
        served[Self::OTHER] = false;
        Self { served }
    }

    /// The index in `ROUTES` of the route that serves `path`, `OTHER` when none does.
    pub fn route_of(&self, path: &str) -> usize {
        if let Some(file) = path.strip_prefix("/docs/")
            && !file.is_empty()
            && !file.contains('/')
            && file != "oauth2-redirect"
        {
            return Self::DOCS_FILE;
        }
        match ROUTES.iter().position(|route| *route == path) {
            Some(index) if self.served[index] && index != Self::DOCS_FILE => index,
            _ => Self::OTHER,
        }
    }

    /// False for the routes whose handlers never read the client's address (the user routes,
    /// the documentation, the key set, the probes): the read path skips that request
    /// extension. Every other route, and any route added later, gets it for
    /// `extractors::ClientIp` (throttling, audit events).
    pub fn reads_client_address(route: usize) -> bool {
        !(Self::is_user_route(route)
            || Self::is_probe(route)
            || (Self::OPENAPI..=Self::REDOC_JS).contains(&route)
            || route == Self::JWKS)
    }

    /// True for the routes that answer about the logged-in user (`/users/me/...`, `/status/`):
    /// none of their answers may be cached.
    pub fn is_user_route(route: usize) -> bool {
        (Self::USERS_ME..=Self::USERS_ME + 3).contains(&route) || Self::STATUS.contains(&route)
    }

    /// True for `/healthz` and `/readyz`, which are logged at debug only.
    pub fn is_probe(route: usize) -> bool {
        route == Self::HEALTHZ || route == Self::READYZ
    }

    /// True for the routes whose work is written to the audit log (`/token`, `/revoke`): their
    /// events carry the request id.
    pub fn is_audited(route: usize) -> bool {
        route == Self::TOKEN || route == Self::REVOKE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_indexes_are_the_templates_they_stand_for() {
        let named = [
            (Routes::TOKEN, "/token"),
            (Routes::REVOKE, "/revoke"),
            (Routes::USERS_ME, "/users/me/"),
            (Routes::OPENAPI, "/openapi.json"),
            (Routes::DOCS_FILE, "/docs/{file}"),
            (Routes::REDOC_JS, "/redoc/redoc.standalone.js"),
            (Routes::JWKS, "/.well-known/jwks.json"),
            (Routes::HEALTHZ, "/healthz"),
            (Routes::READYZ, "/readyz"),
            (Routes::STATUS[0], "/status/"),
            (Routes::STATUS[1], "/status"),
            (Routes::OTHER, "other"),
        ];
        for (index, template) in named {
            assert_eq!(ROUTES[index], template);
        }
    }

    #[test]
    fn only_routes_known_not_to_need_it_go_without_the_client_address() {
        let needs = |template: &str| {
            Routes::reads_client_address(ROUTES.iter().position(|r| *r == template).unwrap())
        };
        for template in ["/token", "/revoke", "other"] {
            assert!(needs(template), "{template}");
        }
        for template in [
            "/users/me/",
            "/users/me/items",
            "/status/",
            "/docs",
            "/redoc",
            "/healthz",
            "/.well-known/jwks.json",
        ] {
            assert!(!needs(template), "{template}");
        }
    }
}
