//! Assignments: which users get which roles, and the variables that come with them.

use std::collections::BTreeMap;

use super::filter::BindError;
use super::origin::Origin;
use super::set::{Located, PolicySet};
use super::value::{Scalar, VarValue};
use crate::directory::User;

/// Variables every user has from the directory; assignments cannot redefine them.
pub const RESERVED_VARIABLES: [&str; 6] = [
    "userid",
    "name",
    "email",
    "position",
    "departments",
    "department_ids",
];

#[derive(Clone, Debug, PartialEq)]
pub enum Matcher {
    /// These userids (case-insensitive).
    Users(Vec<String>),
    /// A department by name (`Sales`) or path from the root (`Corp/Sales`), with its
    /// sub-departments. A path never matches a department whose path from the root is unknown.
    Department(String),
    /// A department by WeCom id, with its sub-departments.
    DepartmentId(u64),
    Position(String),
}

impl Matcher {
    pub fn matches(&self, user: &User) -> bool {
        match self {
            Matcher::Users(ids) => ids.iter().any(|id| user.is(id)),
            Matcher::Department(name) => {
                let wanted: Vec<&str> = name.split('/').map(str::trim).collect();
                user.departments.iter().any(|d| {
                    if wanted.len() == 1 {
                        d.path.iter().any(|n| n.name == wanted[0])
                    } else {
                        d.from_root
                            && d.path.len() >= wanted.len()
                            && d.path.iter().zip(&wanted).all(|(n, w)| n.name == *w)
                    }
                })
            }
            Matcher::DepartmentId(id) => user
                .departments
                .iter()
                .any(|d| d.path.iter().any(|n| n.id == Some(*id))),
            Matcher::Position(p) => user.position.as_deref() == Some(p.as_str()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Matcher::Users(ids) => format!("user {}", ids.join(", ")),
            Matcher::Department(d) => format!("department {d}"),
            Matcher::DepartmentId(id) => format!("department id {id}"),
            Matcher::Position(p) => format!("position {p}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Assignment {
    pub matcher: Matcher,
    pub roles: Vec<Located<String>>,
    pub vars: BTreeMap<String, VarValue>,
    pub origin: Origin,
}

/// A role a user holds, and the assignment that gave it.
#[derive(Clone, Debug)]
pub struct HeldRole {
    pub role: String,
    pub via: String,
    pub origin: Origin,
}

/// What the policy set says about one user: roles and variable values.
#[derive(Clone, Debug, Default)]
pub struct Entitlements {
    pub roles: Vec<HeldRole>,
    /// Variables set by assignments: every value with its origin.
    assigned: BTreeMap<String, Vec<(VarValue, Origin)>>,
    /// Variables only assignments other than the user's set, with one of their origins: never
    /// taken from a custom attribute of the same name.
    withheld: BTreeMap<String, Origin>,
}

impl PolicySet {
    /// The roles and assigned variables of `user`, in assignment order.
    pub fn entitlements(&self, user: &User) -> Entitlements {
        let mut out = Entitlements::default();
        if !user.enabled {
            return out;
        }
        for a in self.assignments.iter().filter(|a| a.matcher.matches(user)) {
            for role in &a.roles {
                if !out.roles.iter().any(|r| r.role == role.value) {
                    out.roles.push(HeldRole {
                        role: role.value.clone(),
                        via: a.matcher.describe(),
                        origin: a.origin.clone(),
                    });
                }
            }
            for (name, value) in &a.vars {
                out.assigned
                    .entry(name.clone())
                    .or_default()
                    .push((value.clone(), a.origin.clone()));
            }
        }
        // A variable the policies set in assignments is the DBA's to give: an employee who
        // holds the role some other way must not supply it as a WeCom attribute (found by
        // red-team review: a custom attribute `regions` widened a sales rep's rows).
        for a in &self.assignments {
            for name in a.vars.keys() {
                if !out.assigned.contains_key(name) {
                    out.withheld
                        .entry(name.clone())
                        .or_insert_with(|| a.origin.clone());
                }
            }
        }
        out
    }
}

impl Entitlements {
    /// The value of `{{user.<name>}}`: a directory attribute for reserved names; otherwise what
    /// assignments set (lists merge; differing scalars are an error naming both sources); else,
    /// unless some other assignment sets it, a custom attribute of the user.
    pub fn variable(&self, user: &User, name: &str) -> Result<VarValue, BindError> {
        let text = |s: &str| VarValue::Scalar(Scalar::Text(s.to_owned()));
        match name {
            "userid" => return Ok(text(&user.userid)),
            "name" => return Ok(text(&user.name)),
            "email" => {
                return user
                    .email
                    .as_deref()
                    .map(text)
                    .ok_or_else(|| BindError::Missing(name.into()));
            }
            "position" => {
                return user
                    .position
                    .as_deref()
                    .map(text)
                    .ok_or_else(|| BindError::Missing(name.into()));
            }
            "departments" => {
                return Ok(VarValue::List(
                    user.departments
                        .iter()
                        .map(|d| Scalar::Text(d.node().name.clone()))
                        .collect(),
                ));
            }
            "department_ids" => {
                return Ok(VarValue::List(
                    user.departments
                        .iter()
                        .filter_map(|d| d.node().id)
                        .map(|id| Scalar::Integer(id as i64))
                        .collect(),
                ));
            }
            _ => {}
        }
        if let Some(values) = self.assigned.get(name) {
            return merge(name, values);
        }
        if let Some(origin) = self.withheld.get(name) {
            return Err(BindError::Unresolved {
                variable: name.into(),
                reason: format!(
                    "assignments set it (e.g. at {origin}) and none of them applies to this user; \
                     a custom attribute of that name is not used"
                ),
            });
        }
        user.attributes
            .get(name)
            .map(|v| text(v))
            .ok_or_else(|| BindError::Missing(name.into()))
    }
}

/// Where the value of a `{{user.x}}` variable comes from (for `explain`).
#[derive(Clone, Debug, PartialEq)]
pub enum VariableSource {
    /// A field of the user's directory entry (userid, name, email, position, departments).
    Directory,
    /// An assignment's `vars`, and the value that assignment sets.
    Assignment { value: VarValue, origin: Origin },
    /// A custom attribute of the user's directory entry.
    Attribute,
}

impl Entitlements {
    /// Where [`Entitlements::variable`] takes the value of `name` from; empty if nowhere.
    pub fn variable_sources(&self, user: &User, name: &str) -> Vec<VariableSource> {
        if RESERVED_VARIABLES.contains(&name) {
            return vec![VariableSource::Directory];
        }
        if let Some(values) = self.assigned.get(name) {
            return values
                .iter()
                .map(|(value, origin)| VariableSource::Assignment {
                    value: value.clone(),
                    origin: origin.clone(),
                })
                .collect();
        }
        if !self.withheld.contains_key(name) && user.attributes.contains_key(name) {
            return vec![VariableSource::Attribute];
        }
        Vec::new()
    }

    /// The variables the user's assignments set.
    pub fn assigned_variables(&self) -> impl Iterator<Item = &str> {
        self.assigned.keys().map(String::as_str)
    }
}

fn merge(name: &str, values: &[(VarValue, Origin)]) -> Result<VarValue, BindError> {
    let (first, first_origin) = &values[0];
    if values.iter().all(|(v, _)| matches!(v, VarValue::List(_))) {
        let mut merged: Vec<Scalar> = Vec::new();
        for (v, _) in values {
            if let VarValue::List(items) = v {
                for item in items {
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                }
            }
        }
        return Ok(VarValue::List(merged));
    }
    match values.iter().find(|(v, _)| v != first) {
        None => Ok(first.clone()),
        Some((other, other_origin)) => Err(BindError::Unresolved {
            variable: name.into(),
            reason: format!(
                "assignments disagree: {first} at {first_origin}, {other} at {other_origin}"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Department, DepartmentNode};

    fn user(departments: &[&[(u64, &str)]]) -> User {
        User {
            userid: "Alice".into(),
            name: "Alice".into(),
            email: None,
            departments: departments
                .iter()
                .map(|path| Department {
                    path: path
                        .iter()
                        .map(|(id, name)| DepartmentNode {
                            id: Some(*id),
                            name: name.to_string(),
                        })
                        .collect(),
                    from_root: true,
                })
                .collect(),
            position: Some("Sales Rep".into()),
            attributes: [("region".to_string(), "East".to_string())].into(),
            enabled: true,
        }
    }

    #[test]
    fn departments_match_with_their_sub_departments() {
        let u = user(&[&[(1, "Corp"), (2, "Sales"), (3, "East")]]);
        assert!(Matcher::Department("Sales".into()).matches(&u));
        assert!(Matcher::Department("Corp/Sales".into()).matches(&u));
        assert!(!Matcher::Department("Sales/East".into()).matches(&u));
        assert!(Matcher::DepartmentId(2).matches(&u));
        assert!(!Matcher::DepartmentId(4).matches(&u));
        assert!(Matcher::Users(vec!["alice".into()]).matches(&u));
        assert!(Matcher::Position("Sales Rep".into()).matches(&u));
    }

    /// Found by red-team review: with `Corp/Ops` outside the app's visible range, the path of
    /// `Corp/Ops/Finance/Payroll` read `Finance/Payroll` and matched that path assignment.
    #[test]
    fn a_path_never_matches_a_department_whose_path_from_the_root_is_unknown() {
        let mut u = user(&[&[(12, "Finance"), (13, "Payroll")]]);
        u.departments[0].from_root = false;
        assert!(!Matcher::Department("Finance/Payroll".into()).matches(&u));
        assert!(!Matcher::Department("Finance".into()).matches(&user(&[])));
        assert!(Matcher::Department("Finance".into()).matches(&u));
        assert!(Matcher::Department("Payroll".into()).matches(&u));
        assert!(Matcher::DepartmentId(12).matches(&u));
        u.departments[0].from_root = true;
        assert!(Matcher::Department("Finance/Payroll".into()).matches(&u));
    }

    #[test]
    fn variables_come_from_assignments_then_attributes() {
        let set = PolicySet::from_str(
            "p.toml",
            "[datasource.d]\n[role.r.datasource.d]\ntables=[\"public.t\"]\n\
             [[assign]]\ndepartment_id = 2\nroles=[\"r\"]\nvars = { regions = [\"East\"], level = 1 }\n\
             [[assign]]\nuser = \"alice\"\nroles=[\"r\"]\nvars = { regions = [\"North\", \"East\"], level = 2 }\n",
        )
        .unwrap();
        let u = user(&[&[(2, "Sales")]]);
        let e = set.entitlements(&u);
        assert_eq!(e.roles.len(), 1);
        assert_eq!(
            e.variable(&u, "regions").unwrap().to_string(),
            "[\"East\", \"North\"]"
        );
        let err = e.variable(&u, "level").unwrap_err();
        assert!(matches!(err, BindError::Unresolved { .. }), "{err:?}");
        assert_eq!(e.variable(&u, "region").unwrap().to_string(), "\"East\"");
        assert_eq!(e.variable(&u, "department_ids").unwrap().to_string(), "[2]");
        assert_eq!(
            e.variable(&u, "nope"),
            Err(BindError::Missing("nope".into()))
        );
        let sources = e.variable_sources(&u, "regions");
        assert_eq!(sources.len(), 2);
        assert!(
            matches!(&sources[1], VariableSource::Assignment { origin, .. } if origin.line == 8),
            "{sources:?}"
        );
        assert_eq!(
            e.variable_sources(&u, "region"),
            [VariableSource::Attribute]
        );
        assert_eq!(
            e.variable_sources(&u, "userid"),
            [VariableSource::Directory]
        );
        assert!(e.variable_sources(&u, "nope").is_empty());
        assert_eq!(
            e.assigned_variables().collect::<Vec<_>>(),
            ["level", "regions"]
        );
    }

    /// Found by red-team review: mallory held `sales_rep` through `department = "Sales"`, which
    /// sets no `regions`, and her WeCom attribute `regions = Secret` filled the variable that
    /// the East and West assignments set.
    #[test]
    fn a_variable_assignments_set_is_never_taken_from_an_attribute() {
        let set = PolicySet::from_str(
            "p.toml",
            "[datasource.d]\n[role.r.datasource.d]\ntables=[\"public.t\"]\n\
             [[assign]]\ndepartment = \"Sales\"\nroles=[\"r\"]\n\
             [[assign]]\ndepartment_id = 99\nroles=[\"r\"]\nvars = { regions = [\"East\"] }\n",
        )
        .unwrap();
        let mut mallory = user(&[&[(2, "Sales")]]);
        mallory.attributes.insert("regions".into(), "Secret".into());
        let e = set.entitlements(&mallory);
        assert_eq!(e.roles.len(), 1);
        let err = e.variable(&mallory, "regions").unwrap_err();
        assert!(
            matches!(&err, BindError::Unresolved { reason, .. } if reason.contains("p.toml:7")),
            "{err:?}"
        );
        assert!(e.variable_sources(&mallory, "regions").is_empty());
        // An attribute no assignment sets is still a variable.
        assert_eq!(
            e.variable(&mallory, "region").unwrap().to_string(),
            "\"East\""
        );
        let east = user(&[&[(99, "East")]]);
        assert_eq!(
            set.entitlements(&east)
                .variable(&east, "regions")
                .unwrap()
                .to_string(),
            "[\"East\"]"
        );
    }

    #[test]
    fn disabled_users_hold_no_roles() {
        let set = PolicySet::from_str(
            "p.toml",
            "[datasource.d]\n[role.r.datasource.d]\ntables=[\"public.t\"]\n[[assign]]\nuser=\"alice\"\nroles=[\"r\"]\n",
        )
        .unwrap();
        let mut u = user(&[]);
        assert_eq!(set.entitlements(&u).roles.len(), 1);
        u.enabled = false;
        assert!(set.entitlements(&u).roles.is_empty());
    }
}
