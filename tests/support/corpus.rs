//! The Spider dev corpus as the test reads it: the queries, and the tables the DDL declares.
//!
//! The files live in `tests/data/spider/` (see SOURCES.md there for origin and licence) so that
//! a clean clone can run the test. The DDL is generated and regular — one `CREATE TABLE` block
//! per table, one column per line, then `ALTER TABLE … ADD FOREIGN KEY` lines — and is read
//! line by line rather than with a SQL parser.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct SpiderQuery {
    pub id: usize,
    pub db_id: String,
    pub query: String,
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    /// `numeric`; every other column is `text`.
    pub numeric: bool,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

impl Table {
    pub fn in_primary_key(&self, column: &str) -> bool {
        self.primary_key.iter().any(|c| c == column)
    }
}

/// `schema.table (columns) REFERENCES schema.ref_table (ref_columns)`.
#[derive(Clone, Debug)]
pub struct ForeignKey {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

pub struct Corpus {
    pub queries: Vec<SpiderQuery>,
    /// The DDL without its foreign keys (see [`Corpus::load`]).
    pub ddl: String,
    pub tables: Vec<Table>,
    pub foreign_keys: Vec<ForeignKey>,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/spider")
}

impl Corpus {
    /// Reads the corpus. Foreign keys are kept as metadata (the data generator draws join
    /// columns from the referenced values) but left out of the DDL: they do not change what a
    /// query returns, and without them the data can hold dangling references, which LEFT JOIN
    /// and NOT IN queries should meet.
    pub fn load() -> Corpus {
        let dir = data_dir();
        let queries: Vec<SpiderQuery> = serde_json::from_str(
            &std::fs::read_to_string(dir.join("spider_dev_queries.json"))
                .expect("tests/data/spider/spider_dev_queries.json"),
        )
        .expect("the query file is a JSON array of {id, db_id, question, query}");
        let text = std::fs::read_to_string(dir.join("spider_dev_schema.sql"))
            .expect("tests/data/spider/spider_dev_schema.sql");

        let mut ddl = String::new();
        let mut tables = Vec::new();
        let mut foreign_keys = Vec::new();
        let mut current: Option<Table> = None;
        for line in text.lines() {
            if line.starts_with("ALTER TABLE") && line.contains("FOREIGN KEY") {
                foreign_keys.push(foreign_key(line));
                continue;
            }
            ddl.push_str(line);
            ddl.push('\n');
            let trimmed = line.trim();
            if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                let names = quoted_names(rest);
                current = Some(Table {
                    schema: names[0].clone(),
                    name: names[1].clone(),
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                });
            } else if let Some(table) = current.as_mut() {
                if trimmed == ");" {
                    tables.push(current.take().expect("inside a table"));
                } else if let Some(rest) = trimmed.strip_prefix("PRIMARY KEY") {
                    table.primary_key = quoted_names(rest);
                } else if trimmed.starts_with('"') {
                    let name = quoted_names(trimmed).remove(0);
                    let numeric = trimmed.trim_end_matches(',').ends_with(" numeric");
                    assert!(
                        numeric || trimmed.trim_end_matches(',').ends_with(" text"),
                        "unexpected column type in `{trimmed}`"
                    );
                    table.columns.push(Column { name, numeric });
                }
            }
        }
        assert!(current.is_none(), "the DDL ends inside a CREATE TABLE");
        Corpus {
            queries,
            ddl,
            tables,
            foreign_keys,
        }
    }

    /// The db_ids (schemas), in DDL order.
    pub fn schemas(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.tables {
            if !out.contains(&t.schema) {
                out.push(t.schema.clone());
            }
        }
        out
    }
}

/// Every `"name"` in a line, in order (the generated DDL has no quotes inside names).
fn quoted_names(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn foreign_key(line: &str) -> ForeignKey {
    // ALTER TABLE "s"."t" ADD FOREIGN KEY ("a", "b") REFERENCES "s"."u" ("c", "d");
    let (head, tail) = line
        .split_once(" REFERENCES ")
        .expect("a foreign key line has REFERENCES");
    let (table_part, columns_part) = head
        .split_once(" ADD FOREIGN KEY ")
        .expect("a foreign key line has ADD FOREIGN KEY");
    let table = quoted_names(table_part);
    let (ref_table_part, ref_columns_part) = tail.split_once(" (").expect("referenced columns");
    let ref_table = quoted_names(ref_table_part);
    ForeignKey {
        schema: table[0].clone(),
        table: table[1].clone(),
        columns: quoted_names(columns_part),
        ref_table: ref_table[1].clone(),
        ref_columns: quoted_names(ref_columns_part),
    }
}
