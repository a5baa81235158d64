//! People and permissions as stored: users, login sessions, custom roles and the
//! category rules that restrict what a caller sees.

/// Which event categories a caller may see (or export).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Categories {
    /// Every category, including ones not known yet.
    #[default]
    All,
    /// Only these (lowercase).
    Only(Vec<String>),
    /// Every category but these (lowercase).
    Except(Vec<String>),
}

impl Categories {
    /// Parses the text form: `*` (all), `auth,vpn` (only those), `*,-secret,-vpn`
    /// (all but those), or an empty string (none).
    pub fn parse(s: &str) -> Result<Categories, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        let valid = |c: &str| {
            !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        };
        match parts.split_first() {
            None => Ok(Categories::Only(Vec::new())),
            Some((&"*", rest)) => {
                let mut out = Vec::new();
                for p in rest {
                    let c = p
                        .strip_prefix('-')
                        .filter(|c| valid(c))
                        .ok_or_else(|| format!("'{p}': after '*' list the categories to leave out as '-category'"))?;
                    out.push(c.to_ascii_lowercase());
                }
                Ok(if out.is_empty() { Categories::All } else { Categories::Except(out) })
            }
            Some(_) => {
                let mut out = Vec::new();
                for p in &parts {
                    if !valid(p) {
                        return Err(format!("'{p}' is not a category name"));
                    }
                    out.push(p.to_ascii_lowercase());
                }
                Ok(Categories::Only(out))
            }
        }
    }

    /// The text form `parse` reads.
    pub fn render(&self) -> String {
        match self {
            Categories::All => "*".into(),
            Categories::Only(c) => c.join(","),
            Categories::Except(c) => {
                std::iter::once("*".to_string()).chain(c.iter().map(|c| format!("-{c}"))).collect::<Vec<_>>().join(",")
            }
        }
    }

    pub fn allows(&self, category: &str) -> bool {
        let c = category.to_ascii_lowercase();
        match self {
            Categories::All => true,
            Categories::Only(list) => list.contains(&c),
            Categories::Except(list) => !list.contains(&c),
        }
    }

    /// Whether this rule allows every category `other` allows (so what `other` may
    /// show, this may see too).
    pub fn covers(&self, other: &Categories) -> bool {
        match (self, other) {
            (Categories::All, _) => true,
            (_, Categories::Only(list)) => list.iter().all(|c| self.allows(c)),
            (Categories::Except(mine), Categories::Except(theirs)) => mine.iter().all(|c| theirs.contains(c)),
            _ => false,
        }
    }

    /// Categories both rules allow.
    pub fn intersect(&self, other: &Categories) -> Categories {
        match (self, other) {
            (Categories::All, o) | (o, Categories::All) => o.clone(),
            (Categories::Only(x), o) | (o, Categories::Only(x)) => {
                Categories::Only(x.iter().filter(|c| o.allows(c)).cloned().collect())
            }
            (Categories::Except(x), Categories::Except(y)) => {
                let mut all: Vec<String> = x.iter().chain(y.iter()).cloned().collect();
                all.sort();
                all.dedup();
                Categories::Except(all)
            }
        }
    }

    /// Whether no category at all is allowed.
    pub fn is_none(&self) -> bool {
        matches!(self, Categories::Only(l) if l.is_empty())
    }
}

/// A person who logs in. Every user belongs to one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub org: String,
    pub email: String,
    pub name: String,
    /// A built-in role (`platform_admin`, `org_admin`, `auditor`, `viewer`) or the
    /// name of one of the organization's custom roles.
    pub role: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// The password was set by someone else (bootstrap, an admin) and must be changed
    /// before anything else.
    pub must_change: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// What creating a user needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub org: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub must_change: bool,
}

/// A change to a user; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// A new password hash and whether it must be changed at the next login. Every
    /// session of the user ends with it, but `keep_session`.
    pub password: Option<(String, bool)>,
    /// The session that changed its own password, which stays.
    pub keep_session: Option<[u8; 32]>,
    pub name: Option<String>,
}

/// A login session. The cookie's value is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub hash: [u8; 32],
    pub user_id: i64,
    /// The token state-changing requests must echo in `X-CSRF-Token`.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An organization's custom role: which categories its holders may view and export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub org: String,
    pub name: String,
    pub view: Categories,
    pub export: Categories,
}

/// A scheduled export: every day (or one weekday) at a UTC time, the events matching
/// a filter, in a format, mailed to recipients and/or written to a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub id: i64,
    pub org: String,
    pub name: String,
    /// `None`: daily; `Some(0..=6)`: weekly on that weekday (0 = Monday).
    pub weekday: Option<u8>,
    /// Minutes after midnight UTC.
    pub at_minute: u16,
    /// The filter, in the query language.
    pub query: String,
    pub format: String,
    pub recipients: Vec<String>,
    /// A directory name under the installation's export directory, if files are kept.
    pub directory: Option<String>,
    /// Who made it (an email or key name).
    pub created_by: String,
    /// When it runs next (µs).
    pub next_run: i64,
    pub last_run: Option<i64>,
}

/// The built-in roles.
pub const BUILTIN_ROLES: [&str; 4] = ["platform_admin", "org_admin", "auditor", "viewer"];

impl User {
    /// Whether the user's role manages (an administrator's): only the built-in
    /// `platform_admin` and `org_admin` do; a custom role only views and exports,
    /// whatever its name.
    pub fn manages(&self) -> bool {
        matches!(self.role.as_str(), "platform_admin" | "org_admin")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who manages is decided by the role's permissions, not by its name.
    #[test]
    fn only_the_built_in_administrator_roles_manage() {
        let user = |role: &str| User {
            id: 1,
            org: "acme".into(),
            email: "a@acme.com".into(),
            name: "A".into(),
            role: role.into(),
            password_hash: String::new(),
            must_change: false,
            disabled: false,
            created_at: 0,
        };
        assert!(user("org_admin").manages() && user("platform_admin").manages());
        for role in ["viewer", "auditor", "admin-readers", "sysadmin_view", "not_an_admin"] {
            assert!(!user(role).manages(), "{role}");
        }
    }

    #[test]
    fn category_rules_round_trip() {
        for s in ["*", "auth,vpn", "*,-secret,-vpn", ""] {
            let c = Categories::parse(s).unwrap();
            assert_eq!(c.render(), s);
            assert_eq!(Categories::parse(&c.render()).unwrap(), c);
        }
        let c = Categories::parse("*,-secret").unwrap();
        assert!(c.allows("auth") && c.allows("anything_new") && !c.allows("SECRET"));
        let c = Categories::parse("auth").unwrap();
        assert!(c.allows("Auth") && !c.allows("secret"));
        assert!(Categories::parse("").unwrap().is_none());
        assert!(Categories::parse("*,secret").is_err());
        assert!(Categories::parse("a b").is_err());
        assert!(Categories::parse("x;drop").is_err());
    }

    #[test]
    fn one_rule_covers_another_only_when_it_allows_all_it_allows() {
        let p = |s: &str| Categories::parse(s).unwrap();
        for (a, b, covers) in [
            ("*", "*", true),
            ("*", "auth", true),
            ("*", "*,-secret", true),
            ("auth", "*", false),
            ("auth", "auth", true),
            ("auth", "auth,vpn", false),
            ("auth,vpn", "auth", true),
            ("*,-secret", "*", false),
            ("*,-secret", "auth", true),
            ("*,-secret", "secret", false),
            ("*,-secret", "*,-secret,-vpn", true),
            ("*,-secret,-vpn", "*,-secret", false),
            ("auth", "*,-secret", false),
            ("auth", "", true),
        ] {
            assert_eq!(p(a).covers(&p(b)), covers, "{a} covers {b}");
        }
        assert_eq!(p("*,-secret").intersect(&p("auth,secret")), p("auth"));
        assert_eq!(p("*,-a").intersect(&p("*,-b")), p("*,-a,-b"));
        assert_eq!(p("*").intersect(&p("vpn")), p("vpn"));
    }
}
