//! Output column names of select-list expressions, as PostgreSQL's FigureColname chooses them.
//!
//! They name the columns of derived tables and CTEs, so that references to those columns from
//! outside resolve as PostgreSQL resolves them.

use sqlparser::ast::{AccessExpr, DataType, Expr, TrimWhereField};

use crate::names::fold;

/// The column name PostgreSQL gives an unaliased select-list expression.
pub(super) fn output_name(expr: &Expr) -> String {
    figure(expr).unwrap_or_else(|| "?column?".to_owned())
}

fn figure(expr: &Expr) -> Option<String> {
    Some(match expr {
        Expr::Identifier(id) => fold(id),
        Expr::CompoundIdentifier(ids) => fold(ids.last()?),
        // The last field name, subscripts skipped; without one, the subscripted value's name
        // (`tags` for `o.tags[1]`, found in review).
        Expr::CompoundFieldAccess { root, access_chain } => {
            match access_chain.iter().rev().find_map(|access| match access {
                AccessExpr::Dot(Expr::Identifier(id)) => Some(fold(id)),
                _ => None,
            }) {
                Some(name) => name,
                None => figure(root)?,
            }
        }
        Expr::Function(f) => match f.name.0.last()? {
            sqlparser::ast::ObjectNamePart::Identifier(id) => fold(id),
            _ => return None,
        },
        Expr::Cast {
            expr, data_type, ..
        } => figure(expr).or_else(|| type_name(data_type))?,
        Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => figure(inner)?,
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        Expr::Tuple(_) => "row".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::AtTimeZone { .. } => "timezone".into(),
        Expr::Interval(_) => "interval".into(),
        Expr::TypedString(t) => type_name(&t.data_type)?,
        Expr::Trim { trim_where, .. } => match trim_where {
            Some(TrimWhereField::Leading) => "ltrim",
            Some(TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }
        .into(),
        _ => return None,
    })
}

fn type_name(data_type: &DataType) -> Option<String> {
    match data_type {
        DataType::Custom(name, _) => match name.0.last()? {
            sqlparser::ast::ObjectNamePart::Identifier(id) => Some(fold(id)),
            _ => None,
        },
        DataType::Date => Some("date".into()),
        DataType::Text => Some("text".into()),
        DataType::Interval { .. } => Some("interval".into()),
        _ => None,
    }
}
