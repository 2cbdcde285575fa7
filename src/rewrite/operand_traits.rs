//! What a compared value may be, and whether comparing two such values can fail at run time.
//!
//! PostgreSQL compares values of different types by converting one of them where no cross-type
//! operator exists: a numeric compared with a float becomes float8 on every row, and fails on
//! values beyond float8's range ("… is out of range for type double precision", quoting the
//! value); a bigint compared with an `oid` becomes an oid and fails beyond 2^32. Integers
//! compared with numerics or floats, and dates with timestamps (PostgreSQL 13 and later),
//! compare through operators that never fail — but the column an outer join's USING merges is
//! converted to the common type, and a date beyond the timestamp range fails then, as does a
//! timestamp at the range's edge becoming a timestamptz. Two strings of different non-default
//! collations ("C" and an ICU collation, say) have none to compare by, and PostgreSQL says so
//! only when it compares two values: "could not determine which collation to use". Run before
//! a row filter, either failure quotes hidden values or tells them from others.
//!
//! A value's [`OperandTraits`] are the [`TypeFamilies`] it may belong to and the
//! [`Collations`] it may carry. A column's come from the live catalog (its base type through
//! domains and arrays, its collation); [`crate::rewrite::leakproof`] asks whether the two sides
//! of a comparison may fail.

use std::ops::BitOr;

use sqlparser::ast::{ArrayElemTypeDef, DataType, ObjectNamePart, TimezoneInfo};

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
    pub const DATE: TypeFamilies = TypeFamilies(32);
    pub const TIMESTAMP: TypeFamilies = TypeFamilies(64);
    pub const TIMESTAMPTZ: TypeFamilies = TypeFamilies(128);
    /// A value of a type tablegate does not know: any family.
    pub const ANY: TypeFamilies = TypeFamilies(u8::MAX);

    /// Pairs compared by converting one side, with a conversion that can fail.
    const FAILING_COMPARISONS: [(TypeFamilies, TypeFamilies); 2] = [
        (TypeFamilies::NUMERIC, TypeFamilies::FLOAT),
        (TypeFamilies::BIGINT, TypeFamilies::OID),
    ];

    /// Pairs of which converting one to the other's type can fail: those compared by
    /// conversion, and the dates and timestamps, compared by operators of their own.
    const FAILING_CONVERSIONS: [(TypeFamilies, TypeFamilies); 5] = [
        (TypeFamilies::NUMERIC, TypeFamilies::FLOAT),
        (TypeFamilies::BIGINT, TypeFamilies::OID),
        (TypeFamilies::DATE, TypeFamilies::TIMESTAMP),
        (TypeFamilies::DATE, TypeFamilies::TIMESTAMPTZ),
        (TypeFamilies::TIMESTAMP, TypeFamilies::TIMESTAMPTZ),
    ];

    /// The built-in base types that belong to a family, by OID: `smallint`, `integer`,
    /// `bigint`, `numeric`, `real`, `double precision`, `oid`, `regproc`, `regprocedure`,
    /// `regoper`, `regoperator`, `regclass`, `regtype`, `regconfig`, `regdictionary`,
    /// `regnamespace`, `regrole`, `regcollation`, `date`, `timestamp`, `timestamptz`.
    pub const BASE_TYPES: [(u32, TypeFamilies); 21] = [
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
        (1082, TypeFamilies::DATE),
        (1114, TypeFamilies::TIMESTAMP),
        (1184, TypeFamilies::TIMESTAMPTZ),
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
        match element_type(data_type) {
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
            DataType::Date => TypeFamilies::DATE,
            DataType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                TypeFamilies::TIMESTAMP
            }
            DataType::Timestamp(..) => TypeFamilies::TIMESTAMPTZ,
            DataType::Text
            | DataType::Varchar(_)
            | DataType::CharacterVarying(_)
            | DataType::CharVarying(_)
            | DataType::Char(_)
            | DataType::Character(_)
            | DataType::Bool
            | DataType::Boolean
            | DataType::Bytea
            | DataType::Time(..)
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

    pub const fn union(self, other: TypeFamilies) -> TypeFamilies {
        TypeFamilies(self.0 | other.0)
    }

    pub fn intersects(self, other: TypeFamilies) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether comparing a value of these families with one of `other` may convert one side
    /// with a conversion that fails on some values.
    pub fn comparison_may_fail(self, other: TypeFamilies) -> bool {
        self.pairs_with(other, &TypeFamilies::FAILING_COMPARISONS)
    }

    /// Whether converting a value of these families to the common type with one of `other`,
    /// or the reverse, may fail on some values.
    pub fn conversion_may_fail(self, other: TypeFamilies) -> bool {
        self.pairs_with(other, &TypeFamilies::FAILING_CONVERSIONS)
    }

    fn pairs_with(self, other: TypeFamilies, pairs: &[(TypeFamilies, TypeFamilies)]) -> bool {
        pairs.iter().any(|&(a, b)| {
            (self.intersects(a) && other.intersects(b))
                || (self.intersects(b) && other.intersects(a))
        })
    }
}

impl BitOr for TypeFamilies {
    type Output = TypeFamilies;

    fn bitor(self, other: TypeFamilies) -> TypeFamilies {
        self.union(other)
    }
}

/// The type of an array's elements, however many dimensions it has; any other type itself.
pub fn element_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Array(
            ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::Parenthesis(inner)
            | ArrayElemTypeDef::Qualified(inner, _),
        ) => element_type(inner),
        other => other,
    }
}

/// The non-default collations a value may carry, as positions in the catalog's list of the
/// collations its columns use ([`Collations::at`]). The database's default collation is none:
/// a non-default implicit collation beats it, so it never conflicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Collations(u64);

impl Collations {
    pub const NONE: Collations = Collations(0);
    /// A value whose collation is not known: any.
    pub const ANY: Collations = Collations(u64::MAX);

    /// The collation at `position` in the catalog's list; past the 64th, any (so that two
    /// collations never share a position).
    pub fn at(position: usize) -> Collations {
        if position < 64 {
            Collations(1 << position)
        } else {
            Collations::ANY
        }
    }

    /// Whether a value carrying one of these and a value carrying one of `other` may carry two
    /// different ones.
    pub fn may_conflict(self, other: Collations) -> bool {
        self.0 != 0 && other.0 != 0 && !(self == other && self.0.is_power_of_two())
    }
}

impl BitOr for Collations {
    type Output = Collations;

    fn bitor(self, other: Collations) -> Collations {
        Collations(self.0 | other.0)
    }
}

/// What a compared value may be: of which type families, carrying which collations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperandTraits {
    pub families: TypeFamilies,
    pub collations: Collations,
}

impl OperandTraits {
    pub const NONE: OperandTraits = OperandTraits {
        families: TypeFamilies::NONE,
        collations: Collations::NONE,
    };
    /// A value tablegate knows nothing about.
    pub const ANY: OperandTraits = OperandTraits {
        families: TypeFamilies::ANY,
        collations: Collations::ANY,
    };

    pub fn of_families(families: TypeFamilies) -> OperandTraits {
        OperandTraits {
            families,
            collations: Collations::NONE,
        }
    }

    /// Whether comparing a value of these traits with one of `other` may fail on some values:
    /// a conversion that can fail, or collations in conflict.
    pub fn comparison_may_fail(self, other: OperandTraits) -> bool {
        self.families.comparison_may_fail(other.families)
            || self.collations.may_conflict(other.collations)
    }

    /// Whether merging a value of these traits with one of `other` into one column (an outer
    /// join's USING column) may fail on some values.
    pub fn merge_may_fail(self, other: OperandTraits) -> bool {
        self.families.conversion_may_fail(other.families)
            || self.collations.may_conflict(other.collations)
    }
}

impl BitOr for OperandTraits {
    type Output = OperandTraits;

    fn bitor(self, other: OperandTraits) -> OperandTraits {
        OperandTraits {
            families: self.families | other.families,
            collations: self.collations | other.collations,
        }
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
        // Dates and timestamps compare through operators that cannot fail, but converting one
        // to the other can.
        for (a, b) in [
            (TypeFamilies::DATE, TypeFamilies::TIMESTAMP),
            (TypeFamilies::TIMESTAMPTZ, TypeFamilies::TIMESTAMP),
            (TypeFamilies::DATE, TypeFamilies::TIMESTAMPTZ),
        ] {
            assert!(!a.comparison_may_fail(b), "{a:?} {b:?}");
            assert!(a.conversion_may_fail(b), "{a:?} {b:?}");
        }
        assert!(TypeFamilies::NUMERIC.conversion_may_fail(TypeFamilies::FLOAT));
        assert!(!TypeFamilies::DATE.conversion_may_fail(TypeFamilies::DATE));
    }

    #[test]
    fn base_types_outside_the_table_have_no_family() {
        assert_eq!(TypeFamilies::of_base_type(1700), TypeFamilies::NUMERIC);
        assert_eq!(TypeFamilies::of_base_type(2205), TypeFamilies::OID);
        assert_eq!(TypeFamilies::of_base_type(25), TypeFamilies::NONE);
    }

    #[test]
    fn only_two_different_collations_conflict() {
        let (c, icu) = (Collations::at(0), Collations::at(1));
        assert!(c.may_conflict(icu));
        assert!((c | icu).may_conflict(c | icu));
        assert!(Collations::ANY.may_conflict(c));
        assert!(Collations::at(64).may_conflict(Collations::at(65)));
        assert!(!c.may_conflict(c));
        assert!(!c.may_conflict(Collations::NONE));
        assert!(!Collations::ANY.may_conflict(Collations::NONE));
    }
}
