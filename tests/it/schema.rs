//! The two migration sets make the same schema: after migrating a fresh
//! SQLite and a fresh PostgreSQL database, both have the same tables, the
//! same columns (types compared loosely, nullability exactly), the same
//! named CHECK constraints and the same indexes by name. A migration that
//! changes one set only fails here.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{Db, Env, backend_test};
use sqlx::Connection;

/// One database's schema, as far as both backends can say it alike.
#[derive(Debug, PartialEq, Default)]
struct Schema {
    /// table → column → (type class, NOT NULL)
    columns: BTreeMap<String, BTreeMap<String, (&'static str, bool)>>,
    /// (table, constraint name) of named CHECK constraints.
    checks: BTreeSet<(String, String)>,
    /// (table, index name) of indexes made by CREATE INDEX, not those that
    /// back a primary key or UNIQUE constraint.
    indexes: BTreeSet<(String, String)>,
}

/// The type a column holds, in words both backends agree on. SQLite keeps
/// days and times as text.
fn class(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "smallint" | "int" => "integer",
        "text" | "date" | "timestamp with time zone" | "character varying" => "text",
        "boolean" => "boolean",
        "blob" | "bytea" => "bytes",
        other => panic!("column type {other:?}: add it to `class` in tests/schema.rs"),
    }
}

/// Indexes one backend has and the other has not, on purpose.
const BACKEND_INDEXES: &[(&str, &str, &str)] = &[
    // PostgreSQL indexes only the messages not yet settled (its 0005): its
    // writes of sent rows were slowed by an index over every row. SQLite
    // keeps the full index.
    ("sqlite", "messages", "messages_due"),
    ("postgres", "messages", "messages_unsettled"),
];

/// `CONSTRAINT name CHECK` in SQLite's CREATE TABLE text.
fn named_checks(sql: &str) -> Vec<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| {
            w[0].eq_ignore_ascii_case("constraint")
                && w[2].to_ascii_lowercase().starts_with("check")
        })
        .map(|w| w[1].trim_matches('"').to_string())
        .collect()
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for (table, sql) in tables {
        let columns: Vec<(String, String, bool, i64)> =
            sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)")
                .bind(&table)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        // A primary key is never NULL, though SQLite does not mark it so.
        let columns = columns
            .into_iter()
            .map(|(name, ty, not_null, pk)| (name, (class(&ty), not_null || pk > 0)))
            .collect();
        schema.columns.insert(table.clone(), columns);
        for name in named_checks(&sql) {
            schema.checks.insert((table.clone(), name));
        }
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    schema.indexes = indexes.into_iter().collect();
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable::text
         FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for (table, column, ty, nullable) in columns {
        schema
            .columns
            .entry(table)
            .or_default()
            .insert(column, (class(&ty), nullable == "NO"));
    }
    // PostgreSQL names an unnamed CHECK itself, `<table>_<column>_check`
    // or `<table>_check<n>`; those are SQLite's unnamed ones and not compared.
    let checks: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.relname::text, c.conname::text FROM pg_constraint c
         JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'public' AND c.contype = 'c'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    schema.checks = checks
        .into_iter()
        .filter(|(_, name)| {
            !name
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .ends_with("_check")
        })
        .collect();
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.tablename::text, i.indexname::text FROM pg_indexes i
         WHERE i.schemaname = 'public' AND i.tablename <> '_sqlx_migrations'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    schema.indexes = indexes.into_iter().collect();
    schema
}

/// Migrates a fresh database of each backend with the real binary.
async fn migrated() -> Option<(Schema, Schema)> {
    let (sqlite_db, postgres_db) = (Db::sqlite(), Db::postgres().await?);
    let (sqlite, postgres) = (&sqlite_db.url, &postgres_db.url);
    for url in [sqlite, postgres] {
        let out = Env::new(url, "").run(&["migrate"]);
        assert!(out.status.success(), "{url}: {out:?}");
    }
    Some((sqlite_schema(sqlite).await, postgres_schema(postgres).await))
}

#[tokio::test]
async fn both_migration_sets_make_the_same_schema() {
    let Some((mut sqlite, mut postgres)) = migrated().await else {
        return;
    };
    for (backend, table, index) in BACKEND_INDEXES {
        let schema = if *backend == "sqlite" {
            &mut sqlite
        } else {
            &mut postgres
        };
        assert!(
            schema
                .indexes
                .remove(&(table.to_string(), index.to_string())),
            "{backend}: {index} on {table} is listed in BACKEND_INDEXES but is not there"
        );
    }
    // What was read is the real schema, not two empty ones.
    for schema in [&sqlite, &postgres] {
        assert!(
            schema
                .checks
                .contains(&("runs".to_string(), "runs_state_known".to_string())),
            "{schema:?}"
        );
    }
    let mut differences = Vec::new();
    let tables: BTreeSet<&String> = sqlite
        .columns
        .keys()
        .chain(postgres.columns.keys())
        .collect();
    for table in tables {
        let (Some(s), Some(p)) = (sqlite.columns.get(table), postgres.columns.get(table)) else {
            differences.push(format!("table {table}: in one set only"));
            continue;
        };
        let columns: BTreeSet<&String> = s.keys().chain(p.keys()).collect();
        for column in columns {
            let (s, p) = (s.get(column), p.get(column));
            if s != p {
                differences.push(format!(
                    "{table}.{column}: SQLite {s:?}, PostgreSQL {p:?} (type, NOT NULL)"
                ));
            }
        }
    }
    for (what, s, p) in [
        ("named CHECK", &sqlite.checks, &postgres.checks),
        ("index", &sqlite.indexes, &postgres.indexes),
    ] {
        for (table, name) in s.difference(p) {
            differences.push(format!("{what} {name} on {table}: SQLite only"));
        }
        for (table, name) in p.difference(s) {
            differences.push(format!("{what} {name} on {table}: PostgreSQL only"));
        }
    }
    assert!(
        differences.is_empty(),
        "the migration sets differ:\n{}",
        differences.join("\n")
    );
}

#[test]
fn named_checks_are_read_from_sqlites_table_text() {
    let sql = "CREATE TABLE t (state TEXT NOT NULL, CHECK (state <> ''),\n    \
               CONSTRAINT t_state_known CHECK (state IN ('a')), CONSTRAINT \"t_b\" CHECK(1))";
    assert_eq!(named_checks(sql), ["t_state_known", "t_b"]);
}

// A run with a state or kind no code knows is refused, and the error names
// the constraint.
backend_test!(a_state_or_kind_nobody_knows_is_refused_by_name);
async fn a_state_or_kind_nobody_knows_is_refused_by_name(Db { url, .. }: Db) {
    {
        let out = Env::new(&url, "").run(&["migrate"]);
        assert!(out.status.success(), "{url}: {out:?}");
        for (kind, state, constraint) in [
            ("campaign", "gone", "runs_state_known"),
            ("newsletter", "planning", "runs_rule_kind_known"),
            ("campaign", "planning", ""),
        ] {
            let sql = format!(
                "INSERT INTO runs (rule_id, rule_kind, occurrence, trigger, state, detail, created_at, updated_at)
                 VALUES ('r', '{kind}', '2026-01-01T00:00:00Z', 'manual', '{state}', '', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
            );
            let result = if url.starts_with("sqlite:") {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(&sql).execute(&mut conn).await.map(|_| ())
            } else {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(&sql).execute(&mut conn).await.map(|_| ())
            };
            match result {
                Ok(()) => assert_eq!(constraint, "", "{url}: {kind}/{state} was taken"),
                Err(e) => assert!(
                    !constraint.is_empty() && e.to_string().contains(constraint),
                    "{url}: {kind}/{state}: {e}"
                ),
            }
        }
    }
}
