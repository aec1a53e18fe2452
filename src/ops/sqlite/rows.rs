//! The SQLite row diff: what `snap diff` says of two versions of a database.
//!
//! Both versions are opened read-only and immutable, then compared: schema
//! objects by type and name (their SQL), rows by rowid (by primary key in
//! `WITHOUT ROWID` tables) on the columns both versions have, each row
//! reduced to a hash of its typed values so that memory stays bounded.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::capture::open_immutable;

/// What changed between two versions of a SQLite database.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SqliteDiff {
    /// Tables with rows added, removed or changed, by name.
    pub tables: Vec<TableDiff>,
    /// Tables, indexes, views and triggers created, dropped or redefined.
    pub schema: Vec<SchemaChange>,
}

/// Row changes in one table. Rows are matched by rowid (by primary key in
/// `WITHOUT ROWID` tables) and compared on the columns both versions have.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableDiff {
    /// The table's name.
    pub table: String,
    /// Rows only in the newer version (all rows of a new table).
    pub rows_added: u64,
    /// Rows only in the older version (all rows of a dropped table).
    pub rows_removed: u64,
    /// Rows in both whose values differ.
    pub rows_changed: u64,
}

/// A schema object that was added, removed or redefined.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaChange {
    /// `table`, `index`, `view` or `trigger`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name.
    pub name: String,
    /// `added`, `removed` or `changed` (its SQL differs).
    pub change: &'static str,
}

/// Compares the databases in the files `before` and `after`, both opened
/// read-only and immutable: SQLite neither locks them nor looks for a
/// journal or write-ahead log beside them.
pub fn compare_files(before: &Path, after: &Path) -> rusqlite::Result<SqliteDiff> {
    let a = open_immutable(before)?;
    let b = open_immutable(after)?;
    compare_databases(&a, &b)
}

/// The ordinary tables of the database in the file `path` (opened
/// read-only and immutable) with their row counts, by name.
pub fn table_rows(path: &Path) -> rusqlite::Result<Vec<(String, u64)>> {
    let db = open_immutable(path)?;
    let mut counts = Vec::new();
    for name in tables(&db)?.into_keys() {
        let count: i64 =
            db.query_row(&format!("SELECT count(*) FROM {}", quote(&name)), [], |r| {
                r.get(0)
            })?;
        counts.push((name, u64::try_from(count).unwrap_or(0)));
    }
    Ok(counts)
}

/// A table as `PRAGMA table_list` and `table_info` describe it.
struct TableInfo {
    columns: Vec<String>,
    primary_key: Vec<String>,
    without_rowid: bool,
}

/// Schema objects by (type, name), with their SQL.
fn schema(db: &Connection) -> rusqlite::Result<BTreeMap<(String, String), String>> {
    let mut stmt = db.prepare(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_schema
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
    rows.collect()
}

/// Ordinary tables (not virtual, not shadow, not SQLite's own), by name.
fn tables(db: &Connection) -> rusqlite::Result<BTreeMap<String, TableInfo>> {
    let mut stmt = db.prepare(
        "SELECT name, wr FROM pragma_table_list
         WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let listed: Vec<(String, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tables = BTreeMap::new();
    for (name, without_rowid) in listed {
        let mut info = db.prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?;
        let columns: Vec<(String, i64)> = info
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut keyed: Vec<&(String, i64)> = columns.iter().filter(|(_, pk)| *pk > 0).collect();
        keyed.sort_by_key(|(_, pk)| *pk);
        let primary_key = keyed.into_iter().map(|(c, _)| c.clone()).collect();
        tables.insert(
            name,
            TableInfo {
                columns: columns.into_iter().map(|(c, _)| c).collect(),
                primary_key,
                without_rowid,
            },
        );
    }
    Ok(tables)
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn compare_databases(a: &Connection, b: &Connection) -> rusqlite::Result<SqliteDiff> {
    let (schema_a, schema_b) = (schema(a)?, schema(b)?);
    let mut diff = SqliteDiff::default();
    for (key, sql) in &schema_a {
        let change = match schema_b.get(key) {
            None => "removed",
            Some(other) if other != sql => "changed",
            Some(_) => continue,
        };
        diff.schema.push(SchemaChange {
            kind: key.0.clone(),
            name: key.1.clone(),
            change,
        });
    }
    for key in schema_b.keys().filter(|k| !schema_a.contains_key(*k)) {
        diff.schema.push(SchemaChange {
            kind: key.0.clone(),
            name: key.1.clone(),
            change: "added",
        });
    }
    diff.schema
        .sort_by(|x, y| (&x.kind, &x.name).cmp(&(&y.kind, &y.name)));

    let (tables_a, tables_b) = (tables(a)?, tables(b)?);
    let mut names: Vec<&String> = tables_a.keys().chain(tables_b.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let count = |db: &Connection| -> rusqlite::Result<u64> {
            db.query_row(&format!("SELECT count(*) FROM {}", quote(name)), [], |r| {
                r.get(0)
            })
        };
        let table = match (tables_a.get(name), tables_b.get(name)) {
            (Some(ta), Some(tb)) => compare_table(a, b, name, ta, tb)?,
            (Some(_), None) => TableDiff {
                rows_removed: count(a)?,
                ..TableDiff::default()
            },
            (None, Some(_)) => TableDiff {
                rows_added: count(b)?,
                ..TableDiff::default()
            },
            (None, None) => continue,
        };
        if table.rows_added + table.rows_removed + table.rows_changed > 0 {
            diff.tables.push(TableDiff {
                table: name.clone(),
                ..table
            });
        }
    }
    Ok(diff)
}

/// blake3 over the values of `row`'s columns `from..`, each tagged with its type.
fn row_hash(row: &rusqlite::Row<'_>, from: usize, count: usize) -> rusqlite::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    for i in from..count {
        match row.get_ref(i)? {
            ValueRef::Null => hasher.update(&[0]),
            ValueRef::Integer(v) => hasher.update(&[1]).update(&v.to_le_bytes()),
            ValueRef::Real(v) => hasher.update(&[2]).update(&v.to_bits().to_le_bytes()),
            ValueRef::Text(v) => hasher
                .update(&[3])
                .update(&(v.len() as u64).to_le_bytes())
                .update(v),
            ValueRef::Blob(v) => hasher
                .update(&[4])
                .update(&(v.len() as u64).to_le_bytes())
                .update(v),
        };
    }
    Ok(*hasher.finalize().as_bytes())
}

/// The rows of a table in key order, as (rowid, hash of the compared columns).
struct RowStream<'s> {
    rows: rusqlite::Rows<'s>,
    width: usize,
}

impl RowStream<'_> {
    fn next(&mut self) -> rusqlite::Result<Option<(i64, [u8; 32])>> {
        match self.rows.next()? {
            Some(row) => Ok(Some((row.get(0)?, row_hash(row, 1, self.width)?))),
            None => Ok(None),
        }
    }
}

/// Compares a table present in both versions.
fn compare_table(
    a: &Connection,
    b: &Connection,
    name: &str,
    ta: &TableInfo,
    tb: &TableInfo,
) -> rusqlite::Result<TableDiff> {
    // Columns added or dropped are a schema change; rows are compared on what both have.
    let common: Vec<&String> = ta
        .columns
        .iter()
        .filter(|c| tb.columns.contains(c))
        .collect();
    let list = common
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let list = if list.is_empty() {
        "NULL".to_string()
    } else {
        list
    };
    // The rowid under a name no column hides (a column may be called `rowid`).
    let rowid = ["_rowid_", "rowid", "oid"]
        .into_iter()
        .find(|alias| {
            !ta.columns
                .iter()
                .chain(&tb.columns)
                .any(|c| c.eq_ignore_ascii_case(alias))
        })
        .filter(|_| !ta.without_rowid && !tb.without_rowid);
    let mut diff = TableDiff::default();
    if let Some(rowid) = rowid {
        // Both sides sorted by rowid: a merge, in constant memory.
        let sql = format!(
            "SELECT {rowid}, {list} FROM {} ORDER BY {rowid}",
            quote(name)
        );
        let (mut sa, mut sb) = (a.prepare(&sql)?, b.prepare(&sql)?);
        let width = common.len().max(1) + 1;
        let mut ra = RowStream {
            rows: sa.query([])?,
            width,
        };
        let mut rb = RowStream {
            rows: sb.query([])?,
            width,
        };
        let (mut x, mut y) = (ra.next()?, rb.next()?);
        loop {
            match (x, y) {
                (None, None) => break,
                (Some(_), None) => {
                    diff.rows_removed += 1;
                    x = ra.next()?;
                }
                (None, Some(_)) => {
                    diff.rows_added += 1;
                    y = rb.next()?;
                }
                (Some((ka, ha)), Some((kb, hb))) => match ka.cmp(&kb) {
                    Ordering::Less => {
                        diff.rows_removed += 1;
                        x = ra.next()?;
                    }
                    Ordering::Greater => {
                        diff.rows_added += 1;
                        y = rb.next()?;
                    }
                    Ordering::Equal => {
                        diff.rows_changed += u64::from(ha != hb);
                        x = ra.next()?;
                        y = rb.next()?;
                    }
                },
            }
        }
        return Ok(diff);
    }
    // No rowid: match rows by the primary key both versions share, else by
    // all common columns (then a changed row counts as removed plus added).
    let key: Vec<&String> = ta
        .primary_key
        .iter()
        .filter(|c| tb.primary_key.contains(c))
        .collect();
    let key: Vec<&String> = if key.is_empty() { common.clone() } else { key };
    let key_list = key.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let key_list = if key_list.is_empty() {
        "NULL".to_string()
    } else {
        key_list
    };
    let sql = format!("SELECT {key_list}, {list} FROM {}", quote(name));
    let key_width = key.len().max(1);
    let width = key_width + common.len().max(1);
    let mut older: HashMap<[u8; 32], ([u8; 32], u64)> = HashMap::new();
    let mut stmt = a.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let entry = older
            .entry(row_hash(row, 0, key_width)?)
            .or_insert(([0; 32], 0));
        *entry = (row_hash(row, key_width, width)?, entry.1 + 1);
    }
    let mut stmt = b.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let key = row_hash(row, 0, key_width)?;
        match older.get_mut(&key) {
            Some((hash, left)) if *left > 0 => {
                *left -= 1;
                diff.rows_changed += u64::from(*hash != row_hash(row, key_width, width)?);
            }
            _ => diff.rows_added += 1,
        }
    }
    diff.rows_removed = older.values().map(|(_, left)| left).sum();
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(sql).unwrap();
        db
    }

    fn table(diff: &SqliteDiff, name: &str) -> (u64, u64, u64) {
        diff.tables
            .iter()
            .find(|t| t.table == name)
            .map_or((0, 0, 0), |t| {
                (t.rows_added, t.rows_removed, t.rows_changed)
            })
    }

    #[test]
    fn rows_are_matched_by_rowid_even_when_a_column_is_called_rowid() {
        let a = db("CREATE TABLE t (rowid TEXT, v INTEGER);
             INSERT INTO t VALUES ('a', 1), ('b', 2), ('c', 3);");
        let b = db("CREATE TABLE t (rowid TEXT, v INTEGER);
             INSERT INTO t VALUES ('a', 1), ('b', 20), ('c', 3), ('d', 4);
             DELETE FROM t WHERE rowid = 'a';");
        let diff = compare_databases(&a, &b).unwrap();
        assert_eq!(table(&diff, "t"), (1, 1, 1));
        assert!(diff.schema.is_empty());
    }

    #[test]
    fn without_a_usable_rowid_rows_are_matched_by_their_values() {
        let schema = "CREATE TABLE t (_rowid_, rowid, oid);";
        let a = db(&format!(
            "{schema} INSERT INTO t VALUES (1, 1, 1), (2, 2, 2), (2, 2, 2);"
        ));
        let b = db(&format!(
            "{schema} INSERT INTO t VALUES (1, 1, 1), (2, 2, 2), (3, 3, 3);"
        ));
        // One duplicate row gone, one row new: no primary key, so no "changed".
        assert_eq!(table(&compare_databases(&a, &b).unwrap(), "t"), (1, 1, 0));
    }

    #[test]
    fn without_rowid_tables_are_matched_by_primary_key() {
        let schema =
            "CREATE TABLE kv (k1 TEXT, k2 INTEGER, v BLOB, PRIMARY KEY (k1, k2)) WITHOUT ROWID;";
        let a = db(&format!(
            "{schema} INSERT INTO kv VALUES ('a', 1, x'01'), ('a', 2, x'02'), ('b', 1, NULL);"
        ));
        let b = db(&format!(
            "{schema} INSERT INTO kv VALUES ('a', 1, x'01'), ('a', 2, x'03'), ('c', 1, 1.5);"
        ));
        assert_eq!(table(&compare_databases(&a, &b).unwrap(), "kv"), (1, 1, 1));
    }

    #[test]
    fn values_of_different_types_differ() {
        let a = db("CREATE TABLE t (v); INSERT INTO t VALUES (1), ('1'), (x'31'), (NULL), (1.0);");
        let b = db("CREATE TABLE t (v); INSERT INTO t VALUES ('1'), (1), (x'31'), (0), (1);");
        assert_eq!(table(&compare_databases(&a, &b).unwrap(), "t"), (0, 0, 4));
    }

    #[test]
    fn unchanged_databases_have_no_differences() {
        let sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, v); INSERT INTO t (v) VALUES (1), (2);
                   CREATE VIEW w AS SELECT v FROM t;";
        assert_eq!(
            compare_databases(&db(sql), &db(sql)).unwrap(),
            SqliteDiff::default()
        );
    }
}
