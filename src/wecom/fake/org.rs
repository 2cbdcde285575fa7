//! The organisation a fake WeCom serves: departments, users and the app's visible range, built
//! by tests as nested structures, or generated at scale.

/// A custom attribute (extattr) as the admin set it in WeCom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeAttr {
    Text {
        name: String,
        value: String,
    },
    Web {
        name: String,
        url: String,
        title: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeDepartment {
    pub id: u64,
    pub name: String,
    /// 0 for the root (id 1).
    pub parent_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeUser {
    pub userid: String,
    pub name: String,
    /// Every department the user belongs to, visible or not; the first is the main one.
    pub departments: Vec<u64>,
    pub position: String,
    pub mobile: String,
    pub email: String,
    pub biz_mail: String,
    /// 1 active, 2 disabled, 4 not activated, 5 left.
    pub status: i64,
    pub attributes: Vec<FakeAttr>,
}

impl FakeUser {
    pub fn new(userid: &str, name: &str, departments: &[u64]) -> FakeUser {
        FakeUser {
            userid: userid.into(),
            name: name.into(),
            departments: departments.to_vec(),
            position: String::new(),
            mobile: "13800000000".into(),
            email: format!("{}@mail.example.com", userid.to_ascii_lowercase()),
            biz_mail: String::new(),
            status: 1,
            attributes: vec![],
        }
    }

    pub fn position(mut self, position: &str) -> FakeUser {
        self.position = position.into();
        self
    }

    pub fn status(mut self, status: i64) -> FakeUser {
        self.status = status;
        self
    }

    /// A text custom attribute.
    pub fn attr(mut self, name: &str, value: &str) -> FakeUser {
        self.attributes.push(FakeAttr::Text {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// A web custom attribute (not a policy variable: it has no text value).
    pub fn web_attr(mut self, name: &str, url: &str) -> FakeUser {
        self.attributes.push(FakeAttr::Web {
            name: name.into(),
            url: url.into(),
            title: name.into(),
        });
        self
    }
}

/// A company with one self-built app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeOrg {
    pub corp_id: String,
    pub agent_id: u64,
    pub secret: String,
    pub departments: Vec<FakeDepartment>,
    pub users: Vec<FakeUser>,
    /// Departments in the app's visible range, each with its sub-departments.
    pub visible_departments: Vec<u64>,
    /// Users in the app's visible range individually (agent/get's allow_userinfos).
    pub visible_users: Vec<String>,
    /// Apps created after 2022-06-20 get no mobile, gender, email, biz_mail, avatar or address.
    pub post_2022_app: bool,
}

impl FakeOrg {
    /// A company with only its root department (id 1), which the app can see.
    pub fn new(corp_id: &str, agent_id: u64, secret: &str, root_name: &str) -> FakeOrg {
        FakeOrg {
            corp_id: corp_id.into(),
            agent_id,
            secret: secret.into(),
            departments: vec![FakeDepartment {
                id: 1,
                name: root_name.into(),
                parent_id: 0,
            }],
            users: vec![],
            visible_departments: vec![1],
            visible_users: vec![],
            post_2022_app: false,
        }
    }

    pub fn department(mut self, id: u64, name: &str, parent_id: u64) -> FakeOrg {
        self.departments.push(FakeDepartment {
            id,
            name: name.into(),
            parent_id,
        });
        self
    }

    pub fn user(mut self, user: FakeUser) -> FakeOrg {
        self.users.push(user);
        self
    }

    pub fn user_mut(&mut self, userid: &str) -> Option<&mut FakeUser> {
        self.users
            .iter_mut()
            .find(|u| u.userid.eq_ignore_ascii_case(userid))
    }

    /// `users` users in `departments` departments (a tree ten wide), every seventh user in two
    /// departments, each with a position and a `region` attribute; a post-2022 app that sees
    /// the whole company.
    pub fn generated(users: usize, departments: usize) -> FakeOrg {
        const POSITIONS: [&str; 4] = ["Engineer", "Sales Rep", "Manager", "Analyst"];
        const REGIONS: [&str; 4] = ["East", "West", "North", "South"];
        let mut org = FakeOrg::new("wwgenerated", 1000002, "generated-secret", "Company");
        org.post_2022_app = true;
        let departments = departments.max(1) as u64;
        for id in 2..=departments {
            org.departments.push(FakeDepartment {
                id,
                name: format!("Department {id}"),
                parent_id: 1 + (id - 2) / 10,
            });
        }
        let department_of = |n: usize| {
            if departments == 1 {
                1
            } else {
                2 + (n as u64) % (departments - 1)
            }
        };
        for n in 0..users {
            let mut in_departments = vec![department_of(n)];
            let second = department_of(n.wrapping_mul(31) + 1);
            if n % 7 == 0 && second != in_departments[0] {
                in_departments.push(second);
            }
            org.users.push(
                FakeUser::new(
                    &format!("user{n:05}"),
                    &format!("User {n}"),
                    &in_departments,
                )
                .position(POSITIONS[n % 4])
                .attr("region", REGIONS[n % 4]),
            );
        }
        org
    }
}
