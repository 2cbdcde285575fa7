//! Writing identifiers and literals into the SQL the test itself runs.

/// `"name"`: always quoted, so reserved words and mixed case mean exactly `name`.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// A value as a literal: numbers as they are, text as a standard string (the server runs with
/// standard_conforming_strings on, so only quotes need doubling).
pub fn literal(value: &str, numeric: bool) -> String {
    if numeric {
        assert!(
            value.parse::<f64>().is_ok_and(f64::is_finite),
            "not a number: {value}"
        );
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}
