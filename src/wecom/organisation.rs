//! Reading the organisation the app can see: the department tree, every department's direct
//! members and the users the visible range names individually, as directory [`User`]s.
//!
//! Departments are walked with a bounded number of user/list calls in flight; each answer is
//! turned into compact users at once and dropped, so memory grows with the number of users, not
//! with the size of WeCom's answers. A user listed in several departments is one user. The
//! first failing call stops the walk (no further calls) and is returned.
//!
//! Answers that contradict each other leave the user out of this sync, as if not visible, and
//! are reported; they never fail the sync (found by red-team review: a user/get answer for
//! another userid was stored, and every later sync failed creating that user again, so leavers
//! were never disabled).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::ProgressBar;

use super::api::ApiUser;
use super::client::WeComClient;
use super::department_paths::DepartmentPaths;
use super::error::WeComError;
use crate::directory::User;
use crate::directory::record::userid_key;

/// A user as WeCom describes it now.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchedUser {
    /// `enabled` is false for WeCom status 2 (disabled) and 5 (left).
    pub user: User,
    pub wecom_status: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Organisation {
    /// By [`userid_key`].
    pub users: HashMap<String, FetchedUser>,
    pub departments: usize,
    /// Users the visible range names individually that WeCom no longer has (60111).
    pub not_found: Vec<String>,
    /// Users WeCom's answers contradict each other about; not in `users`.
    pub left_out: Vec<LeftOut>,
}

/// Why a user WeCom answered about is left out of a sync.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeftOut {
    /// user/get for `asked` answered the user `answered`.
    AnsweredForAnother { asked: String, answered: String },
    /// Userids that differ only in case: one userid to WeCom, so which is meant is unknown.
    SpelledDifferently(Vec<String>),
}

impl fmt::Display for LeftOut {
    /// Userids are quoted and escaped: they come from WeCom and end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOut::AnsweredForAnother { asked, answered } => {
                write!(f, "user/get for {asked:?} answered {answered:?}")
            }
            LeftOut::SpelledDifferently(userids) => {
                write!(f, "one userid spelled {userids:?}")
            }
        }
    }
}

/// The users met in WeCom's answers so far, and the userids met in several spellings.
#[derive(Default)]
struct Met {
    users: HashMap<String, FetchedUser>,
    spellings: BTreeMap<String, BTreeSet<String>>,
}

impl Met {
    fn add(&mut self, found: FetchedUser) {
        match self.users.entry(userid_key(&found.user.userid)) {
            Entry::Vacant(slot) => {
                slot.insert(found);
            }
            Entry::Occupied(slot) if slot.get().user.userid != found.user.userid => {
                self.spellings
                    .entry(slot.key().clone())
                    .or_insert_with(|| BTreeSet::from([slot.get().user.userid.clone()]))
                    .insert(found.user.userid);
            }
            // The same user, listed in another department.
            Entry::Occupied(_) => {}
        }
    }

    fn contains(&self, userid: &str) -> bool {
        self.users.contains_key(&userid_key(userid))
    }

    /// The users, without those met in several spellings, which go to `left_out`.
    fn finish(mut self, left_out: &mut Vec<LeftOut>) -> HashMap<String, FetchedUser> {
        for (key, spellings) in self.spellings {
            self.users.remove(&key);
            left_out.push(LeftOut::SpelledDifferently(spellings.into_iter().collect()));
        }
        self.users
    }
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

fn to_user(
    api: ApiUser,
    listed_in: Option<u64>,
    paths: &DepartmentPaths,
    email_suffix: &str,
) -> FetchedUser {
    let department_ids = api
        .department
        .filter(|ids| !ids.is_empty())
        .unwrap_or_else(|| listed_in.into_iter().collect());
    let email = non_empty(api.email)
        .or_else(|| non_empty(api.biz_mail))
        .unwrap_or_else(|| format!("{}@{email_suffix}", api.userid));
    let attributes = api
        .extattr
        .unwrap_or_default()
        .attrs
        .into_iter()
        .filter(|attr| attr.kind == 0)
        .filter_map(|attr| Some((attr.name, attr.text?.value)))
        .collect();
    FetchedUser {
        user: User {
            name: non_empty(api.name).unwrap_or_else(|| api.userid.clone()),
            email: Some(email),
            departments: department_ids
                .iter()
                .filter_map(|id| paths.get(*id).cloned())
                .collect(),
            position: non_empty(api.position),
            attributes,
            enabled: !matches!(api.status, Some(2) | Some(5)),
            userid: api.userid,
        },
        wecom_status: api.status,
    }
}

/// Reads everything the app can see. `progress` counts departments.
pub async fn fetch_organisation(
    client: &WeComClient,
    email_suffix: &str,
    concurrency: usize,
    progress: &ProgressBar,
) -> Result<Organisation, WeComError> {
    let departments = client.departments().await?;
    let individually_visible = client.individually_visible_users().await?;
    let paths = DepartmentPaths::new(&departments);
    progress.set_length(departments.len() as u64);
    let mut organisation = Organisation {
        departments: departments.len(),
        ..Organisation::default()
    };

    let department_ids: Vec<u64> = departments.iter().map(|d| d.id).collect();
    let mut met = Met::default();
    let mut members = stream::iter(department_ids)
        .map(|id| async move { client.department_members(id).await.map(|m| (id, m)) })
        .buffer_unordered(concurrency.max(1));
    while let Some((department_id, list)) = members.try_next().await? {
        for api in list {
            met.add(to_user(api, Some(department_id), &paths, email_suffix));
        }
        progress.inc(1);
    }
    drop(members);

    // One user/get per userid, however agent/get spells it.
    let missing: BTreeMap<String, String> = individually_visible
        .into_iter()
        .filter(|userid| !met.contains(userid))
        .map(|userid| (userid_key(&userid), userid))
        .collect();
    let mut singles = stream::iter(missing.into_values())
        .map(|userid| async move {
            match client.user(&userid).await {
                Ok(api) => Ok((userid, Some(api))),
                Err(e) if e.code() == Some(60111) => Ok((userid, None)),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((userid, api)) = singles.try_next().await? {
        match api {
            Some(api) if userid_key(&api.userid) != userid_key(&userid) => {
                organisation.left_out.push(LeftOut::AnsweredForAnother {
                    asked: userid,
                    answered: api.userid,
                });
            }
            Some(api) => met.add(to_user(api, None, &paths, email_suffix)),
            None => organisation.not_found.push(userid),
        }
    }
    organisation.users = met.finish(&mut organisation.left_out);
    organisation.not_found.sort();
    organisation.left_out.sort();
    Ok(organisation)
}
