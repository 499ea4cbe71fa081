//! What the router tests share: users with API tokens on a running [`App`].

use clicktrail_collector::{
    App,
    accounts::{self, Change},
};

/// A token of user `name`, added first (admin or with `sites`) if it is not there yet.
pub(crate) async fn token(app: &App, name: &str, admin: bool, sites: &[&str]) -> String {
    if !app.accounts.read(|s| s.users.contains_key(name)) {
        app.accounts
            .apply(
                &app.store,
                Change::AddUser {
                    name: name.into(),
                    password_hash: accounts::hash_password(&format!("{name}'s long password"))
                        .unwrap(),
                    admin,
                    sites: sites.iter().map(|s| (*s).to_owned()).collect(),
                    created_ms: 0,
                },
            )
            .await
            .unwrap();
    }
    let (change, token) = accounts::token_for(name, "tests");
    app.accounts.apply(&app.store, change).await.unwrap();
    token
}
