//! OAuth2 scopes (FastAPI's "Advanced usage with scopes" chapter), on when `SCOPES` is set: the
//! scopes the server grants, what a login is granted, and what a route needs.
//!
//! The chapter's app grants whatever a client asks; here a requested scope is granted only if it
//! is configured and the user may have it (RFC 6749 §3.3): a user without a list may have every
//! configured scope, so the chapter's users work as in the chapter.

use std::fmt;

use crate::store::user::{MAX_SCOPES, check_scope_name};

/// The routes' scopes: `GET /users/me/` needs `me`, `GET /users/me/items/` needs `items` and
/// `me`, so `SCOPES` must define both.
pub const ROUTE_SCOPES: [&str; 2] = ["me", "items"];

/// The most characters of a `scope` form field, as of a password. `SCOPES`'s names joined with
/// spaces must fit, so a client can always ask for all of them.
pub const MAX_SCOPE_FIELD_CHARS: usize = 1024;

/// The configured scopes, in `SCOPES`'s order, with their descriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopesConfig {
    scopes: Vec<(String, String)>,
}

/// Why `SCOPES` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadScopes(String);

impl fmt::Display for BadScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a JSON object of scope names to descriptions, e.g. {{\"me\": \"Read information about the current user.\", \"items\": \"Read items.\"}} ({})",
            self.0
        )
    }
}

impl std::str::FromStr for ScopesConfig {
    type Err = BadScopes;

    fn from_str(text: &str) -> Result<Self, BadScopes> {
        let bad = |why: String| BadScopes(why);
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|error| bad(format!("not JSON: {error}")))?;
        let object = value.as_object().ok_or_else(|| bad("not an object".into()))?;
        if object.len() > MAX_SCOPES {
            return Err(bad(format!("more than {MAX_SCOPES} scopes")));
        }
        let mut scopes = Vec::with_capacity(object.len());
        for (name, description) in object {
            check_scope_name(name).map_err(|why| bad(format!("scope {name:?}: {why}")))?;
            let description = description
                .as_str()
                .ok_or_else(|| bad(format!("scope {name:?}: the description is not a string")))?;
            scopes.push((name.clone(), description.to_owned()));
        }
        let all_names = scopes.iter().map(|(name, _)| name.len() + 1).sum::<usize>().saturating_sub(1);
        if all_names > MAX_SCOPE_FIELD_CHARS {
            return Err(bad(format!(
                "the names joined with spaces are {all_names} characters: at most {MAX_SCOPE_FIELD_CHARS}, so a client can ask for them all"
            )));
        }
        for needed in ROUTE_SCOPES {
            if !scopes.iter().any(|(name, _)| name == needed) {
                return Err(bad(format!("no {needed:?}: the routes need \"me\" and \"items\"")));
            }
        }
        Ok(Self { scopes })
    }
}

/// What a request is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The granted scopes, space-separated, in the order asked: the token's `scope` claim.
    pub scope: String,
    /// Something asked for was left out: the answer must say what was granted (RFC 6749 §5.1).
    pub narrowed: bool,
}

impl ScopesConfig {
    /// The configured scopes and their descriptions, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.scopes.iter().map(|(name, description)| (name.as_str(), description.as_str()))
    }

    /// True when `name` is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.scopes.iter().any(|(configured, _)| configured == name)
    }

    /// Grants, of the space-separated `requested` (split as Python's `str.split()` splits),
    /// those that are configured and that `allowed` lets the user have (`None`: any); the
    /// order and repetitions asked for are kept, as the chapter's `" ".join(form.scopes)`.
    pub fn grant(&self, requested: &str, allowed: Option<&[String]>) -> Grant {
        let asked: Vec<&str> = requested.split_whitespace().collect();
        let granted: Vec<&str> = asked
            .iter()
            .copied()
            .filter(|scope| {
                self.contains(scope) && allowed.is_none_or(|allowed| allowed.iter().any(|a| a == scope))
            })
            .collect();
        Grant { narrowed: granted.len() != asked.len(), scope: granted.join(" ") }
    }
}

/// Whether a token's scopes include every scope in `needed`, as the chapter checks it: the
/// `scope` claim split at single spaces.
pub fn has_scopes(token_scope: &str, needed: &[&str]) -> bool {
    needed.iter().all(|needed| token_scope.split(' ').any(|scope| scope == *needed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chapter() -> ScopesConfig {
        r#"{"me": "Read information about the current user.", "items": "Read items."}"#.parse().unwrap()
    }

    #[test]
    fn the_chapters_scopes_parse_in_their_order() {
        let scopes = chapter();
        assert_eq!(scopes.iter().map(|(name, _)| name).collect::<Vec<_>>(), ["me", "items"]);
        assert!(scopes.contains("items") && !scopes.contains("admin"));
    }

    #[test]
    fn bad_scopes_settings_are_refused_with_the_reason() {
        let names: Vec<String> = (0..9).map(|i| format!("\"{i}{}\": \"x\"", "s".repeat(120))).collect();
        let too_long = format!("{{\"me\": \"x\", \"items\": \"x\", {}}}", names.join(", "));
        for (text, why) in [
            ("[\"me\"]", "not an object"),
            ("{\"me\": 1, \"items\": \"x\"}", "not a string"),
            ("{\"\": \"x\", \"me\": \"x\", \"items\": \"x\"}", "empty"),
            ("{\"read all\": \"x\", \"me\": \"x\", \"items\": \"x\"}", "without spaces"),
            ("{\"me\": \"x\"}", "no \"items\""),
            ("{me: x}", "not JSON"),
            (&too_long, "at most 1024"),
        ] {
            let error = text.parse::<ScopesConfig>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn a_grant_keeps_what_is_configured_and_allowed_in_the_order_asked() {
        let scopes = chapter();
        assert_eq!(scopes.grant("items  me", None), Grant { scope: "items me".into(), narrowed: false });
        assert_eq!(scopes.grant("", None), Grant { scope: String::new(), narrowed: false });
        assert_eq!(scopes.grant("me admin", None), Grant { scope: "me".into(), narrowed: true });
        let only_me = vec!["me".to_owned()];
        assert_eq!(scopes.grant("me items", Some(&only_me)), Grant { scope: "me".into(), narrowed: true });
        assert_eq!(scopes.grant("items", Some(&[])), Grant { scope: String::new(), narrowed: true });
    }

    #[test]
    fn a_token_has_the_scopes_its_claim_names_split_at_spaces() {
        assert!(has_scopes("items me", &["items", "me"]));
        assert!(has_scopes("me", &["me"]));
        assert!(!has_scopes("me", &["items", "me"]));
        assert!(!has_scopes("", &["me"]));
        assert!(has_scopes("", &[]));
        assert!(!has_scopes("mee", &["me"]));
    }
}
