//! Versioned schema migrations, tracked with `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` upgrades the schema from version `i` to `i + 1`. Scripts
//! are append-only: never edit a released one, add a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};

/// The migration scripts, in order.
pub(crate) const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_init.sql")];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// Bring the database to [`SCHEMA_VERSION`]. Safe against a concurrent
/// first open by another process: the version is re-read inside a
/// `BEGIN IMMEDIATE` transaction, so exactly one process migrates.
pub(crate) fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    migrate_to(conn, path, MIGRATIONS)
}

pub(crate) fn migrate_to(conn: &mut Connection, path: &str, scripts: &[&str]) -> Result<()> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let supported = u32::try_from(scripts.len()).unwrap_or(u32::MAX);

    // Fast path without taking the write lock.
    let current = user_version(conn).map_err(sql)?;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    if current == supported {
        return Ok(());
    }

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let current = user_version(&tx).map_err(sql)?;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (idx, script) in scripts.iter().enumerate().skip(current as usize) {
        let version = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        tracing::debug!(path, version, "applying state schema migration");
        tx.execute_batch(script)
            .map_err(|e| StoreError::Migration {
                path: path.to_owned(),
                version,
                message: e.to_string(),
            })?;
    }
    tx.pragma_update(None, "user_version", i64::from(supported))
        .map_err(sql)?;
    tx.commit().map_err(sql)?;
    if current < supported {
        tracing::info!(
            path,
            from = current,
            to = supported,
            "state schema migrated"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> u32 {
        user_version(conn).unwrap()
    }

    fn has_table(conn: &Connection, name: &str) -> bool {
        conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    }

    #[test]
    fn applies_in_order_and_only_pending() {
        let mut conn = Connection::open_in_memory().unwrap();
        let v1 = "CREATE TABLE a (x);";
        let v2 = "CREATE TABLE b (y); INSERT INTO a VALUES (1);";
        migrate_to(&mut conn, "mem", &[v1]).unwrap();
        assert_eq!(version(&conn), 1);
        assert!(has_table(&conn, "a") && !has_table(&conn, "b"));
        migrate_to(&mut conn, "mem", &[v1, v2]).unwrap();
        assert_eq!(version(&conn), 2);
        assert!(has_table(&conn, "b"));
        // idempotent
        migrate_to(&mut conn, "mem", &[v1, v2]).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);

        // an older binary refuses
        let err = migrate_to(&mut conn, "mem", &[v1]).unwrap_err();
        assert!(matches!(
            err,
            StoreError::SchemaTooNew {
                found: 2,
                supported: 1
            }
        ));
    }

    #[test]
    fn failed_migration_rolls_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        let v1 = "CREATE TABLE a (x);";
        let bad = "CREATE TABLE c (z); CREATE TABLE a (x);";
        migrate_to(&mut conn, "mem", &[v1]).unwrap();
        let err = migrate_to(&mut conn, "mem", &[v1, bad]).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { version: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("mem"));
        assert_eq!(version(&conn), 1);
        assert!(!has_table(&conn, "c"), "partial migration left behind");
    }

    #[test]
    fn real_migrations_apply_cleanly() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, "mem").unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
        for t in ["tasks", "agents", "events", "usage"] {
            assert!(has_table(&conn, t), "{t}");
        }
    }
}
