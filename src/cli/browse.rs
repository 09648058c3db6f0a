//! `lifeboat ls` and `lifeboat diff`: a folder of a directory target's backup, and what
//! changed between two of its backups, from the manifests (no content is read).

use crate::actions::browse;
use crate::actions::catalog::Selector;
use crate::app::App;
use crate::cli::render::print_json;
use crate::error::Error;

pub fn ls(
    app: &App,
    target: &str,
    path: Option<&str>,
    backup: Option<&str>,
    json: bool,
) -> Result<i32, Error> {
    app.target(target)?;
    let selector = Selector::from_args(backup, None)?;
    let listing = browse::ls(app, target, path, &selector)?;
    if json {
        print_json(&listing);
    } else {
        print!("{}", listing.text(None));
    }
    Ok(0)
}

pub fn diff(app: &App, target: &str, from: &str, to: &str, json: bool) -> Result<i32, Error> {
    app.target(target)?;
    let (from, to) = (
        Selector::from_args(Some(from), None)?,
        Selector::from_args(Some(to), None)?,
    );
    let diff = browse::diff(app, target, &from, &to)?;
    if json {
        print_json(&diff);
    } else {
        print!("{}", diff.text());
    }
    Ok(0)
}
