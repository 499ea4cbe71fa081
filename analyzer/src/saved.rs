//! Saved funnels: a site's flows, named once and used by default.
//!
//! A designer names the flow that matters (`checkout`: home → product → cart →
//! shipping → payment → purchase) once; after that `funnel` without `--step` runs it,
//! `report` draws it, and `ads` takes its last step as the goal. They live in the
//! `funnels` table of the same DuckDB file (the events table stays append-only; this
//! one is small and mutable), saved through the CLI (`analyzer funnels save`) or the
//! collector's `POST /api/funnels`.
//!
//! A funnel belongs to one site, or to every site (`*`, what `save` without `--site`
//! gives). The site's **main funnel** is the first one saved for it (its own or `*`);
//! that is the default for `funnel`, and its last step is the default goal.

use duckdb::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::Error;
pub use crate::audits::funnel::DEFAULT_WINDOW;
use crate::audits::funnel::Funnel;

/// The site key of a funnel saved for every site.
pub const ANY_SITE: &str = "*";

/// The longest site id (as the collector accepts it).
const MAX_SITE_LEN: usize = 64;

/// The most funnels one site (or `*`) may have: every report runs all of them.
pub const MAX_FUNNELS_PER_SITE: i64 = 50;

/// The longest funnel name.
pub const MAX_NAME_LEN: usize = 64;

/// DDL of the saved funnels table (created on first save).
pub const CREATE_FUNNELS: &str = "CREATE TABLE IF NOT EXISTS funnels (
    site        VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,
    steps       VARCHAR NOT NULL,
    window_spec VARCHAR NOT NULL,
    saved_ms    BIGINT  NOT NULL,
    PRIMARY KEY (site, name)
)";

/// A named funnel: the JSON of `POST /api/funnels` and of `GET /api/funnels`.
///
/// ```json
/// {"site": "shop-1", "name": "checkout", "window": "30m",
///  "steps": ["page:/cart", "screen:payment", "event:purchase"]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedFunnel {
    /// The site it is for; `*` (the default) = every site.
    #[serde(default = "any_site")]
    pub site: String,
    /// Its name: letters, digits, `-`, `_`, `.`; at most 64 characters.
    pub name: String,
    /// Step specs, in order.
    pub steps: Vec<String>,
    /// All steps within this long of the first.
    #[serde(default = "default_window")]
    pub window: String,
}

fn any_site() -> String {
    ANY_SITE.to_owned()
}

fn default_window() -> String {
    DEFAULT_WINDOW.to_owned()
}

impl SavedFunnel {
    /// Checks the name, the site, the steps and the window.
    pub fn validate(&self) -> Result<Funnel, Error> {
        check_name(&self.name)?;
        let site_ok = self.site == ANY_SITE
            || (!self.site.is_empty()
                && self.site.len() <= MAX_SITE_LEN
                && self
                    .site
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        if !site_ok {
            return Err(Error::BadParam {
                name: "site",
                reason: format!(
                    "`{}`: a site id is 1 to {MAX_SITE_LEN} letters, digits, `-`, `_` or `.` \
                     (as in the snippet's data-site), or `*` for every site",
                    self.site
                ),
            });
        }
        self.audit(None)
    }

    /// The funnel audit it stands for; `window` overrides the saved one.
    pub fn audit(&self, window: Option<&str>) -> Result<Funnel, Error> {
        Funnel::new(&self.steps, window.unwrap_or(&self.window))
    }
}

/// Checks a funnel name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadParam {
            name: "name",
            reason: format!(
                "`{name}`: a funnel name is 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.`"
            ),
        })
    }
}

fn has_table(conn: &Connection) -> Result<bool, Error> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'funnels' AND schema_name = 'main'",
        [],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Saves `funnel` (validated), replacing the steps and window of one with the same
/// site and name; a replaced funnel keeps its place in the order. `saved_ms` only
/// grows, so two saves in one millisecond keep their order.
pub fn save(conn: &Connection, funnel: &SavedFunnel, now_ms: i64) -> Result<(), Error> {
    funnel.validate()?;
    conn.execute_batch(CREATE_FUNNELS)?;
    let (count, exists): (i64, bool) = conn.query_row(
        "SELECT count(*), count(*) FILTER (WHERE name = ?2) > 0 FROM funnels WHERE site = ?1",
        params![funnel.site, funnel.name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if !exists && count >= MAX_FUNNELS_PER_SITE {
        return Err(Error::BadParam {
            name: "name",
            reason: format!(
                "site `{}` already has {MAX_FUNNELS_PER_SITE} saved funnels; delete one first",
                funnel.site
            ),
        });
    }
    // A site's own funnel that shadows one for every site takes its place in the
    // order (so the site's main funnel stays the same); a new one goes last.
    conn.execute(
        "INSERT INTO funnels (site, name, steps, window_spec, saved_ms)
         SELECT ?1, ?2, ?3, ?4, coalesce(
             (SELECT saved_ms FROM funnels WHERE site = '*' AND name = ?2 AND ?1 <> '*'),
             greatest(?5, coalesce(max(saved_ms) + 1, 0)))
         FROM funnels
         ON CONFLICT (site, name) DO UPDATE
         SET steps = excluded.steps, window_spec = excluded.window_spec",
        params![
            funnel.site,
            funnel.name,
            serde_json::to_string(&funnel.steps)?,
            funnel.window,
            now_ms
        ],
    )?;
    Ok(())
}

/// Deletes the funnel `name` of `site` (`*` for one saved for every site); whether
/// there was one.
pub fn delete(conn: &Connection, site: &str, name: &str) -> Result<bool, Error> {
    if !has_table(conn)? {
        return Ok(false);
    }
    let n = conn.execute(
        "DELETE FROM funnels WHERE site = ? AND name = ?",
        params![site, name],
    )?;
    Ok(n > 0)
}

/// The funnels that apply to `site` (its own and those for every site), or all of
/// them when `site` is `None`, in the order they were first saved. A file without
/// the table (read-only, never saved to) has none.
pub fn list(conn: &Connection, site: Option<&str>) -> Result<Vec<SavedFunnel>, Error> {
    if !has_table(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT site, name, steps, window_spec FROM funnels
         WHERE ?1 IS NULL OR site = ?1 OR site = '*'
         ORDER BY saved_ms, name, site",
    )?;
    let rows = stmt.query_map(params![site], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (site, name, steps, window) = row?;
        out.push(SavedFunnel {
            site,
            name,
            steps: serde_json::from_str(&steps)?,
            window,
        });
    }
    // One name saved both for the site and for every site: the site's own wins.
    if site.is_some_and(|s| s != ANY_SITE) {
        let own: std::collections::HashSet<String> = out
            .iter()
            .filter(|f| f.site != ANY_SITE)
            .map(|f| f.name.clone())
            .collect();
        out.retain(|f| f.site != ANY_SITE || !own.contains(&f.name));
    }
    Ok(out)
}

/// The saved funnel `name` for `site`, or the site's main funnel (the first saved)
/// when `name` is `None`. `Ok(None)`: no name asked and none saved.
pub fn find(
    conn: &Connection,
    site: Option<&str>,
    name: Option<&str>,
) -> Result<Option<SavedFunnel>, Error> {
    let all = list(conn, site)?;
    let Some(name) = name else {
        return Ok(all.into_iter().next());
    };
    let mut known: Vec<String> = Vec::new();
    for f in &all {
        if !known.contains(&f.name) {
            known.push(f.name.clone());
        }
    }
    let mut hits: Vec<SavedFunnel> = all.into_iter().filter(|f| f.name == name).collect();
    if hits.len() > 1 {
        // Only without a site can one name have several funnels: the one for every
        // site, else ask which site.
        if let Some(i) = hits.iter().position(|f| f.site == ANY_SITE) {
            return Ok(Some(hits.swap_remove(i)));
        }
        let sites: Vec<&str> = hits.iter().map(|f| f.site.as_str()).collect();
        return Err(Error::BadParam {
            name: "site",
            reason: format!(
                "funnel `{name}` is saved for several sites ({}); give --site",
                sites.join(", ")
            ),
        });
    }
    hits.pop().map(Some).ok_or_else(|| Error::UnknownFunnel {
        name: name.to_owned(),
        known,
    })
}

/// What `analyzer funnels …` asks for; [`apply`] carries it out here, and
/// [`crate::remote::saved_funnels_remote`] on a collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunnelsAction {
    /// The funnels that apply to a site (all of them for `None`).
    List { site: Option<String> },
    /// Save (or replace) one.
    Save(SavedFunnel),
    /// Delete one (`site` = `*` for one saved for every site).
    Delete { site: String, name: String },
}

/// The demo shop's checkout flow, saved when the collector serves the demo shop and
/// the demo site has no funnel yet, so the first report has a funnel.
pub fn demo_funnel() -> SavedFunnel {
    SavedFunnel {
        site: "demo".to_owned(),
        name: "checkout".to_owned(),
        steps: [
            "page:/demo/",
            "page:/demo/product/*",
            "page:/demo/cart.html",
            "screen:shipping",
            "screen:payment",
            "event:purchase",
        ]
        .map(str::to_owned)
        .to_vec(),
        window: DEFAULT_WINDOW.to_owned(),
    }
}

/// Carries out `action` and returns the funnels of its site afterwards. Deleting one
/// that does not exist is [`Error::UnknownFunnel`].
pub fn apply(
    conn: &Connection,
    action: &FunnelsAction,
    now_ms: i64,
) -> Result<Vec<SavedFunnel>, Error> {
    match action {
        FunnelsAction::List { site } => list(conn, site.as_deref()),
        FunnelsAction::Save(funnel) => {
            save(conn, funnel, now_ms)?;
            list(conn, Some(&funnel.site))
        }
        FunnelsAction::Delete { site, name } => {
            if delete(conn, site, name)? {
                list(conn, Some(site))
            } else {
                let elsewhere: Vec<String> = list(conn, None)?
                    .into_iter()
                    .filter(|f| f.name == *name)
                    .map(|f| f.site)
                    .collect();
                if !elsewhere.is_empty() {
                    return Err(Error::BadParam {
                        name: "site",
                        reason: format!(
                            "funnel `{name}` is not saved for {}, but for {}: give --site",
                            if site == ANY_SITE {
                                "every site (*)".to_owned()
                            } else {
                                format!("site {site}")
                            },
                            elsewhere.join(", ")
                        ),
                    });
                }
                Err(Error::UnknownFunnel {
                    name: name.clone(),
                    known: list(conn, Some(site))?
                        .into_iter()
                        .filter(|f| f.site == *site)
                        .map(|f| f.name)
                        .collect(),
                })
            }
        }
    }
}

/// The site's main funnel's last step, if one is saved: the default goal.
pub fn main_goal(conn: &Connection, site: Option<&str>) -> Result<Option<String>, Error> {
    Ok(find(conn, site, None)?.and_then(|f| f.steps.last().cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Db;

    fn funnel(site: &str, name: &str, steps: &[&str]) -> SavedFunnel {
        SavedFunnel {
            site: site.into(),
            name: name.into(),
            steps: steps.iter().map(|s| (*s).to_owned()).collect(),
            window: "30m".into(),
        }
    }

    #[test]
    fn saved_funnels_round_trip_in_order_and_the_first_is_the_main_one() {
        let db = Db::new();
        let conn = Connection::open(db.path()).unwrap();
        assert_eq!(list(&conn, None).unwrap(), []);
        assert_eq!(find(&conn, Some("shop"), None).unwrap(), None);
        assert_eq!(main_goal(&conn, Some("shop")).unwrap(), None);

        let checkout = funnel("shop", "checkout", &["page:/cart", "event:purchase"]);
        let signup = funnel("*", "signup", &["page:/join", "submit:signup"]);
        let other = funnel("blog", "read", &["page:/", "page:/post/*"]);
        save(&conn, &checkout, 10).unwrap();
        save(&conn, &signup, 20).unwrap();
        save(&conn, &other, 30).unwrap();

        let names = |site| -> Vec<String> {
            list(&conn, site)
                .unwrap()
                .into_iter()
                .map(|f| f.name)
                .collect()
        };
        assert_eq!(names(Some("shop")), ["checkout", "signup"]);
        assert_eq!(names(Some("blog")), ["signup", "read"]);
        assert_eq!(names(None), ["checkout", "signup", "read"]);
        assert_eq!(names(Some("*")), ["signup"]);
        assert_eq!(find(&conn, Some("shop"), None).unwrap(), Some(checkout));
        assert_eq!(
            main_goal(&conn, Some("blog")).unwrap().as_deref(),
            Some("submit:signup")
        );

        // Saving again replaces steps and window but keeps the place.
        let mut changed = funnel("shop", "checkout", &["page:/cart", "page:/thanks"]);
        changed.window = "1h".into();
        save(&conn, &changed, 99).unwrap();
        assert_eq!(find(&conn, Some("shop"), None).unwrap(), Some(changed));

        // The site's own funnel wins over one of the same name for every site;
        // the list of all sites has both.
        save(&conn, &funnel("*", "checkout", &["page:/x"]), 100).unwrap();
        assert_eq!(names(None), ["checkout", "signup", "read", "checkout"]);
        assert_eq!(
            find(&conn, Some("shop"), Some("checkout"))
                .unwrap()
                .unwrap()
                .site,
            "shop"
        );
        assert_eq!(
            find(&conn, Some("blog"), Some("checkout"))
                .unwrap()
                .unwrap()
                .site,
            "*"
        );

        // Without a site, one name saved for several: the one for every site.
        assert_eq!(
            find(&conn, None, Some("checkout")).unwrap().unwrap().site,
            "*"
        );

        let err = find(&conn, Some("shop"), Some("nope")).unwrap_err();
        assert_eq!(err.code(), "unknown_funnel");
        assert!(err.is_bad_request());
        assert!(err.to_string().contains("checkout, signup"), "{err}");

        assert!(delete(&conn, "shop", "checkout").unwrap());
        assert!(!delete(&conn, "shop", "checkout").unwrap());
        assert_eq!(
            find(&conn, Some("shop"), Some("checkout"))
                .unwrap()
                .unwrap()
                .site,
            ANY_SITE
        );
        assert_eq!(names(Some("shop")), ["signup", "checkout"]);
    }

    #[test]
    fn a_sites_own_funnel_takes_the_place_of_the_one_it_shadows() {
        let db = Db::new();
        let conn = Connection::open(db.path()).unwrap();
        save(&conn, &funnel("*", "checkout", &["page:/cart"]), 10).unwrap();
        save(&conn, &funnel("shop", "browse", &["page:/"]), 20).unwrap();
        save(&conn, &funnel("shop", "checkout", &["page:/basket"]), 30).unwrap();
        let main = find(&conn, Some("shop"), None).unwrap().unwrap();
        assert_eq!(
            (main.site.as_str(), main.name.as_str()),
            ("shop", "checkout")
        );

        // One name for two sites and none for every site: ask which.
        save(&conn, &funnel("blog", "browse", &["page:/"]), 40).unwrap();
        let err = find(&conn, None, Some("browse")).unwrap_err();
        assert!(err.to_string().contains("shop, blog"), "{err}");

        // Deleting from the wrong site says where the funnel is.
        let action = FunnelsAction::Delete {
            site: ANY_SITE.into(),
            name: "browse".into(),
        };
        let err = apply(&conn, &action, 50).unwrap_err();
        assert!(err.to_string().contains("but for shop, blog"), "{err}");
    }

    #[test]
    fn a_site_holds_at_most_fifty_funnels() {
        let db = Db::new();
        let conn = Connection::open(db.path()).unwrap();
        for i in 0..MAX_FUNNELS_PER_SITE {
            save(&conn, &funnel("shop", &format!("f{i}"), &["page:/"]), i).unwrap();
        }
        let err = save(&conn, &funnel("shop", "one-more", &["page:/"]), 99).unwrap_err();
        assert!(err.to_string().contains("delete one first"), "{err}");
        // Replacing one is still allowed; another site is not affected.
        save(&conn, &funnel("shop", "f0", &["page:/x"]), 100).unwrap();
        save(&conn, &funnel("blog", "f0", &["page:/"]), 101).unwrap();
    }

    #[test]
    fn bad_funnels_are_refused_and_nothing_is_saved() {
        let db = Db::new();
        let conn = Connection::open(db.path()).unwrap();
        for (bad, code) in [
            (funnel("shop", "", &["page:/"]), "bad_param"),
            (funnel("shop", "check out", &["page:/"]), "bad_param"),
            (funnel("", "x", &["page:/"]), "bad_param"),
            (funnel("shop 1", "x", &["page:/"]), "bad_param"),
            (funnel("shop", "x", &[]), "bad_param"),
            (funnel("shop", "x", &["nope"]), "bad_step"),
        ] {
            assert_eq!(save(&conn, &bad, 1).unwrap_err().code(), code, "{bad:?}");
        }
        let mut slow = funnel("shop", "x", &["page:/"]);
        slow.window = "soon".into();
        assert_eq!(save(&conn, &slow, 1).unwrap_err().code(), "bad_duration");
        assert_eq!(list(&conn, None).unwrap(), []);

        let parsed: SavedFunnel =
            serde_json::from_str(r#"{"name":"checkout","steps":["page:/cart"]}"#).unwrap();
        assert_eq!((parsed.site.as_str(), parsed.window.as_str()), ("*", "30m"));
        assert!(serde_json::from_str::<SavedFunnel>(r#"{"name":"x","stepz":[]}"#).is_err());
    }
}
