//! An [`Explanation`] as text for a DBA's terminal: one section per link of the chain, every
//! policy item with the `file:line` it was written at.

use std::fmt::{self, Display, Formatter};

use super::{
    ColumnExplanation, Explanation, Outcome, Read, RoleExplanation, Shown, TableExplanation,
    VariableExplanation,
};
use crate::policy::{ColumnEffect, ColumnRule, VariableSource};

impl Display for Explanation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "user {} on datasource {}", self.user, self.datasource)?;
        if !self.datasource_declared {
            writeln!(
                f,
                "  the policies have no [datasource.{}] section: nothing on it is granted",
                self.datasource
            )?;
        }

        writeln!(f, "\nroles")?;
        if self.roles.is_empty() {
            writeln!(f, "  none: no assignment matches this user")?;
        }
        for role in &self.roles {
            write_role(f, role, &self.datasource)?;
        }

        writeln!(f, "\nvariables")?;
        if self.variables.is_empty() {
            writeln!(f, "  none used")?;
        }
        for variable in &self.variables {
            write_variable(f, variable)?;
        }

        writeln!(f, "\ntables read")?;
        if self.tables.is_empty() {
            writeln!(f, "  none")?;
        }
        for table in &self.tables {
            write_table(f, table, &self.datasource)?;
        }

        match &self.outcome {
            Outcome::Rewritten {
                sql,
                notices,
                fenced,
            } => {
                writeln!(f, "\nfenced")?;
                if *fenced {
                    writeln!(
                        f,
                        "  yes: a condition could fail on rows the filters remove, so row-filtered sources are read first (OFFSET 0)"
                    )?;
                } else {
                    writeln!(
                        f,
                        "  no: every condition is leakproof, or no source is row-filtered"
                    )?;
                }
                writeln!(f, "\nrewritten SQL\n  {sql}")?;
                if !notices.is_empty() {
                    writeln!(f, "\nnotices")?;
                    for notice in notices {
                        writeln!(f, "  {notice}")?;
                    }
                }
            }
            Outcome::Refused(refusal) => {
                writeln!(f, "\nrefused\n  {}", refusal.message)?;
                if let Some(hint) = &refusal.hint {
                    writeln!(f, "  HINT: {hint}")?;
                }
            }
        }
        Ok(())
    }
}

fn write_role(f: &mut Formatter<'_>, role: &RoleExplanation, datasource: &str) -> fmt::Result {
    let held = &role.held;
    write!(
        f,
        "  {}: assigned to {} at {}",
        held.role, held.via, held.origin
    )?;
    if !role.grants_here {
        write!(f, " (grants nothing on {datasource})")?;
    }
    writeln!(f)
}

fn write_variable(f: &mut Formatter<'_>, variable: &VariableExplanation) -> fmt::Result {
    match &variable.value {
        Ok(value) => writeln!(f, "  user.{} = {value}", variable.name)?,
        Err(why) => writeln!(f, "  user.{}: {why}", variable.name)?,
    }
    for source in &variable.sources {
        match source {
            VariableSource::Directory => writeln!(f, "    from the user's directory entry")?,
            VariableSource::Attribute => {
                writeln!(f, "    from the directory attribute `{}`", variable.name)?
            }
            VariableSource::Assignment { value, origin } => {
                writeln!(f, "    from the assignment at {origin}: {value}")?
            }
        }
    }
    Ok(())
}

fn write_table(f: &mut Formatter<'_>, table: &TableExplanation, datasource: &str) -> fmt::Result {
    writeln!(f, "  {}", table.name)?;
    match &table.read {
        Read::Whole => writeln!(f, "    read as it is: no row filter, every column plain")?,
        Read::Protected(sql) => writeln!(f, "    read through: {sql}")?,
        Read::Refused(refusal) => writeln!(f, "    cannot be read: {}", refusal.message)?,
    }
    for role in &table.unfiltered_roles {
        writeln!(f, "    rows of role {role}: every row (no row filter)")?;
    }
    for filter in &table.filters {
        writeln!(
            f,
            "    rows of role {} ({}): {}",
            filter.role, filter.origin, filter.text
        )?;
        writeln!(f, "      bound: {}", filter.bound)?;
    }
    for column in &table.columns {
        write_column(f, column, datasource)?;
    }
    Ok(())
}

fn write_column(
    f: &mut Formatter<'_>,
    column: &ColumnExplanation,
    datasource: &str,
) -> fmt::Result {
    let shown = match column.shown {
        Shown::Hidden => "hidden",
        Shown::Masked => "masked",
        Shown::ByOtherRoles => "shown only on rows of the roles that show it",
    };
    writeln!(f, "    column {}: {shown}", column.column)?;
    for rule in &column.rules {
        writeln!(f, "      {}", RuleText { rule, datasource })?;
    }
    Ok(())
}

struct RuleText<'a> {
    rule: &'a ColumnRule,
    datasource: &'a str,
}

impl Display for RuleText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let rule = self.rule;
        let whose = match &rule.role {
            Some(role) => format!("role {role}"),
            None => format!("datasource {} (every role)", self.datasource),
        };
        match &rule.effect {
            ColumnEffect::Denied => write!(f, "deny_columns of {whose} at {}", rule.origin),
            ColumnEffect::NotListed => {
                write!(f, "not in the columns list of {whose} at {}", rule.origin)
            }
            ColumnEffect::Masked(mask) => {
                write!(f, "mask `{mask}` of {whose} at {}", rule.origin)
            }
        }
    }
}
