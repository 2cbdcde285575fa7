//! The AskTable export, as its policy and role APIs return them: policies (`permission`,
//! `dataset_config` with `datasource_ids`, `regex_patterns`, `rows_filters`) and roles
//! (`policy_ids`, `role_variables`), plus the datasources' ids and names.
//!
//! Lenient where AskTable's documentation is: `datasource_ids` may be one string or a list, a
//! row filter may be the documented text form or the structured form of the newer API.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Export {
    #[serde(default)]
    pub datasources: Vec<DatasourceRef>,
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub roles: Vec<Role>,
}

#[derive(Debug, Deserialize)]
pub struct DatasourceRef {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Policy {
    pub id: Option<String>,
    pub name: String,
    pub permission: Permission,
    pub dataset_config: DatasetConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
pub struct DatasetConfig {
    pub datasource_ids: OneOrMany,
    #[serde(default)]
    pub regex_patterns: Option<RegexPatterns>,
    /// Per datasource id, the row filters.
    #[serde(default)]
    pub rows_filters: Option<BTreeMap<String, Vec<RowsFilter>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn ids(&self) -> &[String] {
        match self {
            OneOrMany::One(id) => std::slice::from_ref(id),
            OneOrMany::Many(ids) => ids,
        }
    }
}

/// Three regular expressions; an absent or empty one matches every name.
#[derive(Debug, Default, Deserialize)]
pub struct RegexPatterns {
    pub schemas_regex_pattern: Option<String>,
    pub tables_regex_pattern: Option<String>,
    pub fields_regex_pattern: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RowsFilter {
    /// `schema.table.field <operator expression>`, `*` allowed in schema and table.
    Text(String),
    /// The structured form: regexes for schema, table and field, and the operator expression.
    Structured {
        condition: String,
        db_regex: String,
        table_regex: String,
        field_regex: String,
        operator_expression: String,
    },
}

#[derive(Debug, Deserialize)]
pub struct Role {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub policy_ids: Vec<String>,
    /// The variables the role's filters expect, as names or as an object of example values.
    #[serde(default)]
    pub role_variables: Option<serde_json::Value>,
}

impl Role {
    /// The names `role_variables` declares: an object's keys, or a list's strings.
    pub fn declared_variables(&self) -> Vec<String> {
        match &self.role_variables {
            Some(serde_json::Value::Object(values)) => values.keys().cloned().collect(),
            Some(serde_json::Value::Array(names)) => names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}
