//! An email several users hold is given to none of them.
//!
//! `{{user.email}}` is a policy variable, so a row filter `owner_email = {{user.email}}` hands
//! a user the rows of everyone who shares their email. Emails are not unique: an employee can
//! set her WeCom email to a colleague's generated `<userid>@<email_suffix>` (found by red-team
//! review). So after each fetch an email (compared case-insensitively) that two users hold —
//! WeCom's, generated, or a users-file user's — is withheld from every WeCom user holding it,
//! and reported; a policy reading `{{user.email}}` then refuses their statements, naming the
//! variable. Users-file users keep theirs: the admin wrote them, and the users file refuses
//! two users with one email.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use super::organisation::FetchedUser;
use crate::control_chars::escape_control;
use crate::directory::record::email_key;

/// An email withheld from the WeCom users holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedEmail {
    pub email: String,
    /// The WeCom users it was withheld from, by userid.
    pub userids: Vec<String>,
    /// A users-file user holds it too.
    pub local_user_too: bool,
}

impl fmt::Display for SharedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} held by {}",
            escape_control(&self.email),
            escape_control(&self.userids.join(", "))
        )?;
        if self.local_user_too {
            f.write_str(" and a users-file user")?;
        }
        Ok(())
    }
}

/// Withholds every email that more than one of `users`, or one of them and a users-file user
/// (`local_emails`), hold. Returned in the order of their emails.
pub fn withhold_shared_emails<'u>(
    users: impl Iterator<Item = &'u mut FetchedUser>,
    local_emails: &[String],
) -> Vec<SharedEmail> {
    let local: HashSet<String> = local_emails.iter().map(|e| email_key(e)).collect();
    let mut holders: BTreeMap<String, Vec<&'u mut FetchedUser>> = BTreeMap::new();
    for found in users {
        if let Some(email) = &found.user.email {
            holders.entry(email_key(email)).or_default().push(found);
        }
    }
    let mut shared = Vec::new();
    for (key, holders) in holders {
        let local_user_too = local.contains(&key);
        if holders.len() < 2 && !local_user_too {
            continue;
        }
        let mut userids = Vec::with_capacity(holders.len());
        for found in holders {
            userids.push(found.user.userid.clone());
            found.user.email = None;
        }
        userids.sort();
        shared.push(SharedEmail {
            email: key,
            userids,
            local_user_too,
        });
    }
    shared
}
