//! `bear-server --check`: the configuration is valid and what it names can be reached (the
//! run database, its schema version; the collections' place), without loading models or
//! starting to serve. A failure is the error a start would meet.

use serde::Serialize;

use crate::{LoadedConfig, Result};

/// One part checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// What was checked.
    pub part: &'static str,
    /// What was found (no credentials).
    pub detail: String,
}

/// Checks `loaded`: every part, or the first that fails.
pub async fn check(loaded: &LoadedConfig) -> Result<Vec<Checked>> {
    let mut done = vec![Checked {
        part: "configuration",
        detail: match &loaded.source {
            Some(p) => format!("{} is valid", p.display()),
            None => "defaults (no configuration file)".into(),
        },
    }];
    let runs = crate::runs::open_store(loaded).await?;
    let versions = runs.applied_migrations().await?;
    let place = match &loaded.config.storage.database_url {
        Some(url) => format!("PostgreSQL at {}", bear_agents::store::describe_url(url)),
        None => format!(
            "SQLite file {}",
            loaded
                .config
                .workflows
                .database_path(&loaded.dirs)
                .display()
        ),
    };
    runs.close().await;
    done.push(Checked {
        part: "workflow database",
        detail: format!(
            "{place}, reachable, schema version {}",
            versions.last().copied().unwrap_or(0)
        ),
    });
    let data = &loaded.dirs.data_dir;
    std::fs::create_dir_all(data).map_err(|e| {
        crate::Error::invalid(
            "paths.data_dir",
            format!("cannot create {}: {}", data.display(), e.kind()),
        )
    })?;
    done.push(Checked {
        part: "collections",
        detail: format!("local, under {}", data.display()),
    });
    Ok(done)
}
