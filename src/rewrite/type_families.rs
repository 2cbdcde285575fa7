//! Which comparisons convert a value with a conversion that can fail.
//!
//! PostgreSQL compares values of different types by converting one of them where no cross-type
//! operator exists: a numeric compared with a float becomes float8 on every row, and fails on
//! values beyond float8's range ("… is out of range for type double precision", quoting the
//! value); a bigint compared with an `oid` becomes an oid and fails beyond 2^32. Run before a
//! row filter, such a comparison quotes hidden values or tells them from others. Integers
//! compared with numerics or floats, and dates with timestamps (PostgreSQL 13 and later),
//! compare through operators that never fail.
//!
//! A column's families come from the live catalog (its base type, through domains and
//! arrays); [`crate::rewrite::leakproof`] asks whether the two sides of a comparison may be of
//! a failing pair.

use std::ops::BitOr;

use sqlparser::ast::{ArrayElemTypeDef, DataType, ObjectNamePart};

use crate::names::fold;

/// A set of type families a value may belong to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeFamilies(u8);

impl TypeFamilies {
    pub const NONE: TypeFamilies = TypeFamilies(0);
    /// `smallint` and `integer`: compared with anything without failing, but summed to bigint.
    pub const INTEGER: TypeFamilies = TypeFamilies(1);
    pub const BIGINT: TypeFamilies = TypeFamilies(2);
    pub const NUMERIC: TypeFamilies = TypeFamilies(4);
    /// `real` and `double precision`.
    pub const FLOAT: TypeFamilies = TypeFamilies(8);
    /// `oid` and its aliases (`regclass`, `regtype`, …).
    pub const OID: TypeFamilies = TypeFamilies(16);
    /// A value of a type tablegate does not know: any family.
    pub const ANY: TypeFamilies = TypeFamilies(31);

    /// Pairs compared by converting one side, with a conversion that can fail.
    const FAILING_PAIRS: [(TypeFamilies, TypeFamilies); 2] = [
        (TypeFamilies::NUMERIC, TypeFamilies::FLOAT),
        (TypeFamilies::BIGINT, TypeFamilies::OID),
    ];

    /// The built-in base types that belong to a family, by OID: `smallint`, `integer`,
    /// `bigint`, `numeric`, `real`, `double precision`, `oid`, `regproc`, `regprocedure`,
    /// `regoper`, `regoperator`, `regclass`, `regtype`, `regconfig`, `regdictionary`,
    /// `regnamespace`, `regrole`, `regcollation`.
    pub const BASE_TYPES: [(u32, TypeFamilies); 18] = [
        (21, TypeFamilies::INTEGER),
        (23, TypeFamilies::INTEGER),
        (20, TypeFamilies::BIGINT),
        (1700, TypeFamilies::NUMERIC),
        (700, TypeFamilies::FLOAT),
        (701, TypeFamilies::FLOAT),
        (26, TypeFamilies::OID),
        (24, TypeFamilies::OID),
        (2202, TypeFamilies::OID),
        (2203, TypeFamilies::OID),
        (2204, TypeFamilies::OID),
        (2205, TypeFamilies::OID),
        (2206, TypeFamilies::OID),
        (3734, TypeFamilies::OID),
        (3769, TypeFamilies::OID),
        (4089, TypeFamilies::OID),
        (4096, TypeFamilies::OID),
        (4191, TypeFamilies::OID),
    ];

    /// The family of a base type (a domain's or array's base resolved), by its OID.
    pub fn of_base_type(oid: u32) -> TypeFamilies {
        TypeFamilies::BASE_TYPES
            .iter()
            .find(|(base, _)| *base == oid)
            .map_or(TypeFamilies::NONE, |(_, families)| *families)
    }

    /// The families of a type as a query names it (in a cast or a typed literal); an array's
    /// are its elements'. A type name tablegate does not know (a domain) may be any.
    pub fn of_data_type(data_type: &DataType) -> TypeFamilies {
        match data_type {
            DataType::Array(
                ArrayElemTypeDef::SquareBracket(inner, _)
                | ArrayElemTypeDef::AngleBracket(inner)
                | ArrayElemTypeDef::Parenthesis(inner)
                | ArrayElemTypeDef::Qualified(inner, _),
            ) => TypeFamilies::of_data_type(inner),
            DataType::SmallInt(_)
            | DataType::Int(_)
            | DataType::Integer(_)
            | DataType::Int2(_)
            | DataType::Int4(_) => TypeFamilies::INTEGER,
            DataType::BigInt(_) | DataType::Int8(_) => TypeFamilies::BIGINT,
            DataType::Numeric(_) | DataType::Decimal(_) | DataType::Dec(_) => TypeFamilies::NUMERIC,
            DataType::Real
            | DataType::Float(_)
            | DataType::Float4
            | DataType::Float8
            | DataType::Double(_)
            | DataType::DoublePrecision => TypeFamilies::FLOAT,
            DataType::Text
            | DataType::Varchar(_)
            | DataType::CharacterVarying(_)
            | DataType::CharVarying(_)
            | DataType::Char(_)
            | DataType::Character(_)
            | DataType::Bool
            | DataType::Boolean
            | DataType::Bytea
            | DataType::Date
            | DataType::Time(..)
            | DataType::Timestamp(..)
            | DataType::Interval { .. }
            | DataType::Uuid
            | DataType::JSON
            | DataType::JSONB => TypeFamilies::NONE,
            DataType::Custom(name, _) => match name.0.as_slice() {
                [ObjectNamePart::Identifier(id)] if fold(id) == "oid" => TypeFamilies::OID,
                _ => TypeFamilies::ANY,
            },
            _ => TypeFamilies::ANY,
        }
    }

    pub fn intersects(self, other: TypeFamilies) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether comparing a value of these families with one of `other` may convert one side
    /// with a conversion that fails on some values.
    pub fn comparison_may_fail(self, other: TypeFamilies) -> bool {
        TypeFamilies::FAILING_PAIRS.iter().any(|&(a, b)| {
            (self.intersects(a) && other.intersects(b))
                || (self.intersects(b) && other.intersects(a))
        })
    }
}

impl BitOr for TypeFamilies {
    type Output = TypeFamilies;

    fn bitor(self, other: TypeFamilies) -> TypeFamilies {
        TypeFamilies(self.0 | other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_conversions_that_can_fail_count() {
        let failing = [
            (TypeFamilies::NUMERIC, TypeFamilies::FLOAT),
            (TypeFamilies::FLOAT, TypeFamilies::NUMERIC),
            (TypeFamilies::OID, TypeFamilies::BIGINT),
            (TypeFamilies::ANY, TypeFamilies::FLOAT),
            (
                TypeFamilies::NUMERIC | TypeFamilies::INTEGER,
                TypeFamilies::ANY,
            ),
        ];
        for (a, b) in failing {
            assert!(a.comparison_may_fail(b), "{a:?} {b:?}");
        }
        let safe = [
            (TypeFamilies::NUMERIC, TypeFamilies::NUMERIC),
            (TypeFamilies::INTEGER, TypeFamilies::FLOAT),
            (TypeFamilies::BIGINT, TypeFamilies::NUMERIC),
            (TypeFamilies::INTEGER, TypeFamilies::OID),
            (TypeFamilies::NONE, TypeFamilies::ANY),
            (TypeFamilies::INTEGER, TypeFamilies::ANY),
        ];
        for (a, b) in safe {
            assert!(!a.comparison_may_fail(b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn base_types_outside_the_table_have_no_family() {
        assert_eq!(TypeFamilies::of_base_type(1700), TypeFamilies::NUMERIC);
        assert_eq!(TypeFamilies::of_base_type(2205), TypeFamilies::OID);
        assert_eq!(TypeFamilies::of_base_type(25), TypeFamilies::NONE);
    }
}
