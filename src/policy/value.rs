//! Values of policy variables and how they enter SQL: as typed literal AST nodes, never as text.

use std::fmt;

use sqlparser::ast::{Expr, UnaryOperator, Value};

/// One variable value: what a `{{user.x}}` placeholder stands for.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum VarValue {
    Scalar(Scalar),
    /// Only valid inside `IN (...)`; an empty list admits no row.
    List(Vec<Scalar>),
}

impl Scalar {
    /// The literal for this value. Text becomes a string literal node ([`text_literal`]);
    /// numbers are printed from their typed value; negative numbers are a parenthesised unary
    /// minus, so no printed `--` can start a comment.
    pub fn to_expr(&self) -> Expr {
        match self {
            Scalar::Text(s) => Expr::value(text_literal(s)),
            Scalar::Bool(b) => Expr::value(Value::Boolean(*b)),
            Scalar::Integer(i) => number(i.unsigned_abs().to_string(), *i < 0),
            Scalar::Float(f) => number(format!("{:?}", f.abs()), f.is_sign_negative()),
        }
    }

    pub fn from_toml(value: &toml::Value) -> Result<Scalar, String> {
        match value {
            toml::Value::String(s) => Ok(Scalar::Text(s.clone())),
            toml::Value::Integer(i) => Ok(Scalar::Integer(*i)),
            toml::Value::Float(f) if f.is_finite() => Ok(Scalar::Float(*f)),
            toml::Value::Float(_) => {
                Err("NaN and infinite numbers cannot be variable values".into())
            }
            toml::Value::Boolean(b) => Ok(Scalar::Bool(*b)),
            other => Err(format!(
                "a variable value must be a string, number, boolean or a list of those, not {}",
                other.type_str()
            )),
        }
    }
}

/// A string literal node that sqlparser prints faithfully. Its printer takes `\'` and `''`
/// inside a standard string's value as already escaped, so a value holding either would print
/// as different SQL; such values become E'' literals, whose printer escapes every quote and
/// backslash.
pub fn text_literal(s: &str) -> Value {
    if s.contains(['\'', '\\']) {
        Value::EscapedStringLiteral(s.to_owned())
    } else {
        Value::SingleQuotedString(s.to_owned())
    }
}

fn number(digits: String, negative: bool) -> Expr {
    let literal = Expr::value(Value::Number(digits, false));
    if negative {
        Expr::Nested(Box::new(Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: Box::new(literal),
        }))
    } else {
        literal
    }
}

impl VarValue {
    pub fn from_toml(value: &toml::Value) -> Result<VarValue, String> {
        match value {
            toml::Value::Array(items) => items
                .iter()
                .map(Scalar::from_toml)
                .collect::<Result<_, _>>()
                .map(VarValue::List),
            scalar => Scalar::from_toml(scalar).map(VarValue::Scalar),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(s) => write!(f, "{s:?}"),
            Scalar::Integer(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x:?}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for VarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::Scalar(s) => s.fmt(f),
            VarValue::List(items) => {
                f.write_str("[")?;
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    s.fmt(f)?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_one_string_literal() {
        let e = Scalar::Text("x' OR '1'='1".into()).to_expr();
        assert_eq!(e.to_string(), r"E'x\' OR \'1\'=\'1'");
        let e = Scalar::Text(r"a\'; DROP TABLE t; --".into()).to_expr();
        assert_eq!(e.to_string(), r"E'a\\\'; DROP TABLE t; --'");
        assert_eq!(Scalar::Text("East".into()).to_expr().to_string(), "'East'");
    }

    #[test]
    fn negative_numbers_cannot_form_comments() {
        assert_eq!(Scalar::Integer(-5).to_expr().to_string(), "(-5)");
        assert_eq!(
            Scalar::Integer(i64::MIN).to_expr().to_string(),
            "(-9223372036854775808)"
        );
        assert_eq!(Scalar::Float(-0.5).to_expr().to_string(), "(-0.5)");
        assert_eq!(Scalar::Float(1e300).to_expr().to_string(), "1e300");
    }
}
