//! Accounts, API tokens and registered sites: who may read what, and which sites
//! `/collect` takes events for.
//!
//! Everything lives in the DuckDB file (tables `sites`, `users`, `user_sites`,
//! `tokens`, `secrets`) and, while the collector runs, in memory ([`Accounts`]): a
//! request is checked against memory, never against the database. Every change is one
//! [`Change`], applied twice: to the database ([`Change::apply_db`], on the writer
//! thread, or on a file no collector holds for `clicktrail users|tokens|sites`), then
//! to memory ([`State::apply`]).
//!
//! - Passwords are stored as argon2id hashes (PHC strings, a random salt each).
//! - API tokens are `ct_` + 64 hex characters (256 random bits); only their SHA-256
//!   is stored, so a copy of the database does not give working tokens.
//! - A user sees the sites granted to them; an admin sees every site.
//! - A site may list domains: then `/collect` takes its events only from pages (and
//!   `Origin`s) on those domains or their subdomains.
//! - `secrets` holds the key of the keyed hash applied to `identify` ids.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use duckdb::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The tables of accounts and sites (created on open).
pub const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS sites (
    id             VARCHAR NOT NULL,
    domains        VARCHAR NOT NULL DEFAULT '', -- comma separated; empty: any origin
    retention_days INTEGER,                      -- NULL: keep events forever
    clear_ids      BOOLEAN NOT NULL DEFAULT false, -- store identify() ids in clear
    created_ms     BIGINT  NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name          VARCHAR NOT NULL,
    password_hash VARCHAR NOT NULL, -- argon2id PHC string
    admin         BOOLEAN NOT NULL,
    created_ms    BIGINT  NOT NULL
);
CREATE TABLE IF NOT EXISTS user_sites (user_name VARCHAR NOT NULL, site VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id         VARCHAR NOT NULL,
    user_name  VARCHAR NOT NULL,
    hash       VARCHAR NOT NULL, -- hex SHA-256 of the token; the token itself is never stored
    label      VARCHAR NOT NULL,
    created_ms BIGINT  NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (name VARCHAR NOT NULL, value BLOB NOT NULL);
";

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

/// What is wrong with an accounts request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A name, site id, domain or password that breaks the rules.
    #[error("{0}")]
    Invalid(String),
    /// No such user, site or token.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    Exists(String),
    /// The database refused it.
    #[error("the database refused the change: {0}")]
    Db(String),
}

impl AccountError {
    /// The stable code of the error in JSON answers.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::Invalid(_) => "invalid_request",
            AccountError::NotFound(_) => "not_found",
            AccountError::Exists(_) => "exists",
            AccountError::Db(_) => "storage_failed",
        }
    }
}

impl From<duckdb::Error> for AccountError {
    fn from(e: duckdb::Error) -> Self {
        AccountError::Db(e.to_string())
    }
}

/// A registered site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Site {
    pub id: String,
    /// Domains its pages are on (`shop.example` also covers `www.shop.example`);
    /// empty: any.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Events older than this many days are deleted; absent: kept.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Store `identify` ids as sent instead of as a keyed hash.
    #[serde(default)]
    pub clear_ids: bool,
    #[serde(default)]
    pub created_ms: i64,
}

impl Site {
    /// A site with defaults.
    pub fn new(id: &str) -> Site {
        Site {
            id: id.to_owned(),
            domains: Vec::new(),
            retention_days: None,
            clear_ids: false,
            created_ms: crate::ingest::now_ms(),
        }
    }

    /// Checks the id (as the snippet's `data-site`), domains and retention.
    pub fn validate(&mut self) -> Result<(), AccountError> {
        check_site_id(&self.id)?;
        for d in &mut self.domains {
            *d = d.trim().trim_end_matches('.').to_ascii_lowercase();
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(AccountError::Invalid(format!(
                    "`{d}` is not a domain name (like shop.example)"
                )));
            }
        }
        self.domains.sort();
        self.domains.dedup();
        if self.retention_days == Some(0) {
            return Err(AccountError::Invalid(
                "retention_days must be at least 1 (or absent to keep events)".into(),
            ));
        }
        Ok(())
    }

    /// Whether `host` is one of the site's domains or below one. A site without
    /// domains takes any host.
    pub fn allows_host(&self, host: &str) -> bool {
        if self.domains.is_empty() {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|d| {
            host == *d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

/// A site id: what the snippet's `data-site` may hold.
pub fn check_site_id(id: &str) -> Result<(), AccountError> {
    let ok = !id.is_empty()
        && id.len() <= protocol::MAX_SITE
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(format!(
            "site id `{}` must be 1 to {} characters of [A-Za-z0-9._-]",
            id.chars().take(80).collect::<String>(),
            protocol::MAX_SITE
        )))
    }
}

/// A user name: 1 to 64 of `[a-z0-9._@-]`.
pub fn check_user_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._@-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(
            "a user name is 1 to 64 characters of a-z, 0-9, `.`, `_`, `@` or `-`".into(),
        ))
    }
}

/// Hashes a password with argon2id and a fresh random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccountError::Invalid(format!(
            "a password has at least {MIN_PASSWORD} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(AccountError::Invalid(
            "a password has at most 1024 bytes".into(),
        ));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Db(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Db(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Db(e.to_string()))
}

/// Whether `password` matches the PHC `hash` (constant time in the password).
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > 1024 {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A password hash that matches nothing, verified when the user does not exist so
/// that a wrong user name takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("not a password of anyone, ever")
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA".into())
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the operating system provides randomness");
    hex(&b)
}

/// The stored form of an API token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A new API token: `ct_` + 64 hex characters.
pub fn new_token() -> String {
    format!("ct_{}", random_hex(32))
}

/// A user, as memory holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub admin: bool,
    /// Sites granted (an admin sees every site whatever this holds).
    pub sites: BTreeSet<String>,
    #[serde(skip)]
    pub password_hash: String,
    pub created_ms: i64,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_ms: i64,
}

/// One change to accounts or sites.
#[derive(Debug, Clone)]
pub enum Change {
    PutSite(Site),
    DeleteSite(String),
    AddUser {
        name: String,
        password_hash: String,
        admin: bool,
        sites: Vec<String>,
        created_ms: i64,
    },
    SetPassword {
        name: String,
        password_hash: String,
    },
    SetAdmin {
        name: String,
        admin: bool,
    },
    DeleteUser(String),
    Grant {
        user: String,
        site: String,
    },
    Revoke {
        user: String,
        site: String,
    },
    AddToken {
        info: TokenInfo,
        hash: String,
    },
    DeleteToken(String),
}

impl Change {
    /// Writes the change to the database, in one transaction.
    pub fn apply_db(&self, conn: &Connection) -> Result<(), AccountError> {
        store::transaction(conn, || self.write(conn))
    }

    fn write(&self, conn: &Connection) -> Result<(), AccountError> {
        match self {
            Change::PutSite(s) => {
                conn.execute("DELETE FROM sites WHERE id = ?", [&s.id])?;
                conn.execute(
                    "INSERT INTO sites VALUES (?, ?, ?, ?, ?)",
                    params![
                        s.id,
                        s.domains.join(","),
                        s.retention_days,
                        s.clear_ids,
                        s.created_ms
                    ],
                )?;
            }
            Change::DeleteSite(id) => {
                conn.execute("DELETE FROM sites WHERE id = ?", [id])?;
                conn.execute("DELETE FROM user_sites WHERE site = ?", [id])?;
            }
            Change::AddUser {
                name,
                password_hash,
                admin,
                sites,
                created_ms,
            } => {
                conn.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?)",
                    params![name, password_hash, admin, created_ms],
                )?;
                for site in sites {
                    conn.execute("INSERT INTO user_sites VALUES (?, ?)", [name, site])?;
                }
            }
            Change::SetPassword {
                name,
                password_hash,
            } => {
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE name = ?",
                    [password_hash, name],
                )?;
            }
            Change::SetAdmin { name, admin } => {
                conn.execute(
                    "UPDATE users SET admin = ? WHERE name = ?",
                    params![admin, name],
                )?;
            }
            Change::DeleteUser(name) => {
                conn.execute("DELETE FROM users WHERE name = ?", [name])?;
                conn.execute("DELETE FROM user_sites WHERE user_name = ?", [name])?;
                conn.execute("DELETE FROM tokens WHERE user_name = ?", [name])?;
            }
            Change::Grant { user, site } => {
                conn.execute(
                    "DELETE FROM user_sites WHERE user_name = ? AND site = ?",
                    [user, site],
                )?;
                conn.execute("INSERT INTO user_sites VALUES (?, ?)", [user, site])?;
            }
            Change::Revoke { user, site } => {
                conn.execute(
                    "DELETE FROM user_sites WHERE user_name = ? AND site = ?",
                    [user, site],
                )?;
            }
            Change::AddToken { info, hash } => {
                conn.execute(
                    "INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                    params![info.id, info.user, hash, info.label, info.created_ms],
                )?;
            }
            Change::DeleteToken(id) => {
                conn.execute("DELETE FROM tokens WHERE id = ?", [id])?;
            }
        }
        Ok(())
    }
}

/// Everything about accounts and sites, in memory.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub sites: BTreeMap<String, Site>,
    pub users: BTreeMap<String, User>,
    /// Token hash → token.
    pub tokens: HashMap<String, TokenInfo>,
    /// Key of the keyed hash of `identify` ids.
    pub uid_key: [u8; 32],
}

impl State {
    /// Reads every table (and creates the `identify` key on first use).
    pub fn load(conn: &Connection) -> Result<State, AccountError> {
        let mut state = State::default();
        let mut stmt =
            conn.prepare("SELECT id, domains, retention_days, clear_ids, created_ms FROM sites")?;
        let sites = stmt.query_map([], |r| {
            let domains: String = r.get(1)?;
            Ok(Site {
                id: r.get(0)?,
                domains: domains
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect(),
                retention_days: r.get(2)?,
                clear_ids: r.get(3)?,
                created_ms: r.get(4)?,
            })
        })?;
        for s in sites {
            let s = s?;
            state.sites.insert(s.id.clone(), s);
        }
        let mut stmt = conn.prepare("SELECT name, password_hash, admin, created_ms FROM users")?;
        let users = stmt.query_map([], |r| {
            Ok(User {
                name: r.get(0)?,
                password_hash: r.get(1)?,
                admin: r.get(2)?,
                created_ms: r.get(3)?,
                sites: BTreeSet::new(),
            })
        })?;
        for u in users {
            let u = u?;
            state.users.insert(u.name.clone(), u);
        }
        let mut stmt = conn.prepare("SELECT user_name, site FROM user_sites")?;
        let grants = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
        for g in grants {
            let (user, site) = g?;
            if let Some(u) = state.users.get_mut(&user) {
                u.sites.insert(site);
            }
        }
        let mut stmt = conn.prepare("SELECT id, user_name, hash, label, created_ms FROM tokens")?;
        let tokens = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(2)?,
                TokenInfo {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    label: r.get(3)?,
                    created_ms: r.get(4)?,
                },
            ))
        })?;
        for t in tokens {
            let (hash, info) = t?;
            state.tokens.insert(hash, info);
        }
        state.uid_key = secret(conn, "uid_key")?;
        Ok(state)
    }

    /// Applies a change already written to the database.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::PutSite(s) => {
                self.sites.insert(s.id.clone(), s.clone());
            }
            Change::DeleteSite(id) => {
                self.sites.remove(id);
                for u in self.users.values_mut() {
                    u.sites.remove(id);
                }
            }
            Change::AddUser {
                name,
                password_hash,
                admin,
                sites,
                created_ms,
            } => {
                self.users.insert(
                    name.clone(),
                    User {
                        name: name.clone(),
                        admin: *admin,
                        sites: sites.iter().cloned().collect(),
                        password_hash: password_hash.clone(),
                        created_ms: *created_ms,
                    },
                );
            }
            Change::SetPassword {
                name,
                password_hash,
            } => {
                if let Some(u) = self.users.get_mut(name) {
                    u.password_hash.clone_from(password_hash);
                }
            }
            Change::SetAdmin { name, admin } => {
                if let Some(u) = self.users.get_mut(name) {
                    u.admin = *admin;
                }
            }
            Change::DeleteUser(name) => {
                self.users.remove(name);
                self.tokens.retain(|_, t| t.user != *name);
            }
            Change::Grant { user, site } => {
                if let Some(u) = self.users.get_mut(user) {
                    u.sites.insert(site.clone());
                }
            }
            Change::Revoke { user, site } => {
                if let Some(u) = self.users.get_mut(user) {
                    u.sites.remove(site);
                }
            }
            Change::AddToken { info, hash } => {
                self.tokens.insert(hash.clone(), info.clone());
            }
            Change::DeleteToken(id) => {
                self.tokens.retain(|_, t| t.id != *id);
            }
        }
    }

    /// Checks that `change` makes sense against the current state (a user to grant
    /// exists, a name is not taken, the last admin is not removed …).
    pub fn check(&self, change: &Change) -> Result<(), AccountError> {
        let user = |name: &str| {
            self.users
                .get(name)
                .ok_or_else(|| AccountError::NotFound(format!("no user `{name}`")))
        };
        let admins = || self.users.values().filter(|u| u.admin).count();
        match change {
            Change::PutSite(_) => Ok(()),
            Change::DeleteSite(id) => self
                .sites
                .contains_key(id)
                .then_some(())
                .ok_or_else(|| AccountError::NotFound(format!("no site `{id}`"))),
            Change::AddUser { name, sites, .. } => {
                check_user_name(name)?;
                if self.users.contains_key(name) {
                    return Err(AccountError::Exists(format!("user `{name}` exists")));
                }
                for s in sites {
                    self.site(s)?;
                }
                Ok(())
            }
            Change::SetPassword { name, .. } => user(name).map(drop),
            Change::SetAdmin { name, admin } => {
                let u = user(name)?;
                if u.admin && !admin && admins() == 1 {
                    return Err(AccountError::Invalid(format!("`{name}` is the last admin")));
                }
                Ok(())
            }
            Change::DeleteUser(name) => {
                let u = user(name)?;
                if u.admin && admins() == 1 {
                    return Err(AccountError::Invalid(format!(
                        "`{name}` is the last admin; make another admin first"
                    )));
                }
                Ok(())
            }
            Change::Grant { user: name, site } | Change::Revoke { user: name, site } => {
                user(name)?;
                self.site(site).map(drop)
            }
            Change::AddToken { info, .. } => user(&info.user).map(drop),
            Change::DeleteToken(id) => self
                .tokens
                .values()
                .any(|t| t.id == *id)
                .then_some(())
                .ok_or_else(|| AccountError::NotFound(format!("no token `{id}`"))),
        }
    }

    /// The registered site `id`.
    pub fn site(&self, id: &str) -> Result<&Site, AccountError> {
        self.sites
            .get(id)
            .ok_or_else(|| AccountError::NotFound(format!("no site `{id}`")))
    }

    /// The user holding `token`, if it is a live token.
    pub fn token_user(&self, token: &str) -> Option<&User> {
        let info = self.tokens.get(&token_hash(token))?;
        self.users.get(&info.user)
    }

    /// The user `name` if `password` is theirs. Takes the same time whether or not
    /// the user exists.
    pub fn login(&self, name: &str, password: &str) -> Option<&User> {
        match self.users.get(name) {
            Some(u) if verify_password(&u.password_hash, password) => Some(u),
            Some(_) => None,
            None => {
                let _ = verify_password(dummy_hash(), password);
                None
            }
        }
    }
}

/// The named 32-byte secret, created at random on first use.
pub fn secret(conn: &Connection, name: &str) -> Result<[u8; 32], AccountError> {
    let existing: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM secrets WHERE name = ?", [name], |r| {
            r.get(0)
        })
        .ok();
    if let Some(v) = existing
        && let Ok(key) = <[u8; 32]>::try_from(v.as_slice())
    {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| AccountError::Db(e.to_string()))?;
    conn.execute("DELETE FROM secrets WHERE name = ?", [name])?;
    conn.execute(
        "INSERT INTO secrets VALUES (?, ?)",
        params![name, key.to_vec()],
    )?;
    Ok(key)
}

/// The collector's accounts, shared by every handler.
#[derive(Debug, Default)]
pub struct Accounts {
    state: RwLock<State>,
}

impl Accounts {
    /// Accounts over a loaded state.
    pub fn new(state: State) -> Accounts {
        Accounts {
            state: RwLock::new(state),
        }
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Checks `change`, writes it through the store's writer, then applies it in memory.
    pub async fn apply(
        &self,
        store: &crate::store::Store,
        change: Change,
    ) -> Result<(), AccountError> {
        self.read(|s| s.check(&change))?;
        let c = change.clone();
        store
            .write(move |conn| c.apply_db(conn))
            .await
            .map_err(|e| AccountError::Db(e.to_string()))??;
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .apply(&change);
        Ok(())
    }
}

/// A new token for `user`: the change that stores it and the token to show once.
pub fn token_for(user: &str, label: &str) -> (Change, String) {
    let token = new_token();
    let info = TokenInfo {
        id: random_hex(8),
        user: user.to_owned(),
        label: label.chars().take(64).collect(),
        created_ms: crate::ingest::now_ms(),
    };
    let change = Change::AddToken {
        info,
        hash: token_hash(&token),
    };
    (change, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(CREATE_TABLES).unwrap();
        c
    }

    #[test]
    fn passwords_are_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery "));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn changes_round_trip_through_the_database() {
        let conn = db();
        let mut mem = State::load(&conn).unwrap();
        let mut site = Site::new("shop");
        site.domains = vec!["Shop.Example".into()];
        site.validate().unwrap();
        let (tok, token) = token_for("ann", "cli");
        for change in [
            Change::PutSite(site),
            Change::AddUser {
                name: "ann".into(),
                password_hash: hash_password("ann's long password").unwrap(),
                admin: false,
                sites: vec!["shop".into()],
                created_ms: 0,
            },
            tok,
        ] {
            mem.check(&change).unwrap();
            change.apply_db(&conn).unwrap();
            mem.apply(&change);
        }
        let disk = State::load(&conn).unwrap();
        assert_eq!(disk.sites, mem.sites);
        assert_eq!(disk.users, mem.users);
        assert_eq!(disk.tokens, mem.tokens);
        assert_eq!(disk.uid_key, mem.uid_key, "the key is created once");
        assert_eq!(disk.token_user(&token).unwrap().name, "ann");
        assert!(disk.token_user("ct_nope").is_none());
        assert!(disk.login("ann", "ann's long password").is_some());
        assert!(disk.login("ann", "wrong password!").is_none());
        assert!(disk.login("bob", "ann's long password").is_none());
        // No token in clear in the file.
        let stored: i64 = conn
            .query_row(
                "SELECT count(*) FROM tokens WHERE hash = ? OR label = ?",
                [&token, &token],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0);
        let ann = Change::DeleteUser("ann".into());
        ann.apply_db(&conn).unwrap();
        mem.apply(&ann);
        assert!(mem.token_user(&token).is_none(), "tokens go with the user");
    }

    #[test]
    fn checks_refuse_what_makes_no_sense() {
        let mut s = State::default();
        let add = |name: &str, admin| Change::AddUser {
            name: name.into(),
            password_hash: String::new(),
            admin,
            sites: vec![],
            created_ms: 0,
        };
        s.apply(&add("root", true));
        assert!(matches!(
            s.check(&add("root", false)),
            Err(AccountError::Exists(_))
        ));
        assert!(matches!(
            s.check(&add("Root!", false)),
            Err(AccountError::Invalid(_))
        ));
        assert!(
            s.check(&Change::DeleteUser("root".into())).is_err(),
            "last admin"
        );
        assert!(
            s.check(&Change::Grant {
                user: "root".into(),
                site: "nope".into()
            })
            .is_err()
        );
    }

    #[test]
    fn domains_cover_subdomains_only() {
        let mut site = Site::new("shop");
        site.domains = vec!["shop.example".into()];
        assert!(site.allows_host("shop.example"));
        assert!(site.allows_host("www.SHOP.example"));
        assert!(!site.allows_host("evilshop.example"));
        assert!(!site.allows_host("shop.example.evil"));
        let mut bad = Site::new("shop");
        bad.domains = vec!["http://x/".into()];
        assert!(bad.validate().is_err());
        assert!(Site::new("bad site").validate().is_err());
    }
}
