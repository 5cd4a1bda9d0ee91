//! The run database's schema as sqlx migrations (`migrations/*.sql`, compiled in), run by
//! sqlx's migrator on SQLite and PostgreSQL alike. Every statement is SQL both accept.

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// Version, description and SQL of each migration, oldest first. A released migration never
/// changes (the migrator refuses a database whose applied migration's checksum differs).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "runs", include_str!("../../migrations/0001_runs.sql")),
    (
        2,
        "leases",
        include_str!("../../migrations/0002_leases.sql"),
    ),
    (
        3,
        "keycheck",
        include_str!("../../migrations/0003_keycheck.sql"),
    ),
];

/// The migrations above, as sqlx's migrator reads a source.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        (*description).into(),
                        MigrationType::Simple,
                        (*sql).into(),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator over the migrations above.
pub(crate) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}
