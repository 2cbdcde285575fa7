//! Department paths from the organisation's root, as policies match them (`Corp/Sales/East`).
//!
//! A department's path is built up its chain of parents through the departments the app can
//! see. Only a chain that reaches the root (the department whose parent is 0, id 1 in WeCom)
//! gives the path from the root. When an ancestor is outside the visible range the path starts
//! at the highest visible ancestor and is marked as not from the root: a deep team
//! (`Corp/Ops/Finance`) would otherwise read as a top-level one (`Corp/Finance`) and match its
//! path assignments (found by red-team review).

use std::collections::HashMap;

use super::api::ApiDepartment;
use crate::directory::{Department, DepartmentNode};

/// Deeper than WeCom allows (15 levels), with room to spare.
const MAX_DEPTH: usize = 64;

/// Every visible department's path, by department id.
pub struct DepartmentPaths(HashMap<u64, Department>);

impl DepartmentPaths {
    pub fn new(departments: &[ApiDepartment]) -> DepartmentPaths {
        let by_id: HashMap<u64, &ApiDepartment> = departments.iter().map(|d| (d.id, d)).collect();
        let mut paths = HashMap::with_capacity(departments.len());
        for department in departments {
            let mut path = vec![];
            let mut from_root = false;
            let mut current = Some(department);
            // WeCom nests at most 15 levels: a longer chain (or a cycle) is no path from the
            // root, and the bound keeps a hostile list from costing its length squared.
            while let Some(d) = current.filter(|_| path.len() <= MAX_DEPTH) {
                path.push(DepartmentNode {
                    id: Some(d.id),
                    name: d.name.clone(),
                });
                from_root = d.parentid == 0;
                current = by_id.get(&d.parentid).copied().filter(|p| p.id != d.id);
            }
            path.reverse();
            paths.insert(department.id, Department { path, from_root });
        }
        DepartmentPaths(paths)
    }

    pub fn get(&self, id: u64) -> Option<&Department> {
        self.0.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn department(id: u64, name: &str, parentid: u64) -> ApiDepartment {
        ApiDepartment {
            id,
            name: name.into(),
            parentid,
        }
    }

    #[test]
    fn only_a_chain_reaching_the_root_gives_a_path_from_the_root() {
        let paths = DepartmentPaths::new(&[
            department(1, "Corp", 0),
            department(2, "Sales", 1),
            department(3, "East", 2),
            // Corp/Ops (10) is not visible.
            department(12, "Finance", 10),
            department(13, "Payroll", 12),
            // A cycle never reaches the root.
            department(20, "A", 21),
            department(21, "B", 20),
        ]);
        let east = paths.get(3).unwrap();
        assert_eq!(
            (east.path_string(), east.from_root),
            ("Corp/Sales/East".into(), true)
        );
        let payroll = paths.get(13).unwrap();
        assert_eq!(
            (payroll.path_string(), payroll.from_root),
            ("…/Finance/Payroll".into(), false)
        );
        assert!(!paths.get(20).unwrap().from_root);
    }
}
