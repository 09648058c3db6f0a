//! `lifeboat config check` and `lifeboat commands export`: the config validated without
//! opening any state, and the chat platforms' registration files written from the code.

use std::path::Path;

use crate::config::Config;

pub fn check(config: &Config) -> i32 {
    for w in config.state_backup_warnings() {
        eprintln!("lifeboat: {}: warning: {w}", config.source);
    }
    let mut problems = config.check_reachable();
    // What only the target's source can tell (a path that is no btrfs subvolume).
    for (name, target) in &config.targets {
        if let Ok(source) = crate::sources::choose(name, target) {
            problems.extend(source.setup_problems());
        }
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} stores, {} targets)",
            config.source,
            config.stores.len(),
            config.targets.len()
        );
        0
    } else {
        for p in problems {
            eprintln!("lifeboat: {}: {p}", config.source);
        }
        2
    }
}

pub fn export_commands(config: &Config, dir: &Path) -> i32 {
    match crate::front::registration::export(config, dir) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            0
        }
        Err(e) => {
            eprintln!("lifeboat: writing {}: {e}", dir.display());
            1
        }
    }
}
