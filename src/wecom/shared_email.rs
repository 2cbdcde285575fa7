//! An email several users hold is given to none of them.
//!
//! `{{user.email}}` is a policy variable, so a row filter `owner_email = {{user.email}}` hands
//! a user the rows of everyone who shares their email. Emails are not unique: an employee can
//! set her WeCom email to a colleague's generated `<userid>@<email_suffix>` (found by red-team
//! review). So after each fetch an email (compared case-insensitively) that two users hold —
//! WeCom's, generated, or a users-file user's — is withheld from every WeCom user holding it,
//! and reported; a policy reading `{{user.email}}` then refuses their statements, naming the
//! variable. Users-file users keep theirs: the admin wrote them, and the users file refuses
//! two users with one email. So do users this sync does not bring (disabled, left, out of the
//! visible range): their records keep their rows' email, which nobody else may take (found in
//! review).

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
    /// A users-file user, or a stored user this sync does not bring, holds it too.
    pub held_elsewhere: bool,
}

impl fmt::Display for SharedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} held by {}",
            escape_control(&self.email),
            escape_control(&self.userids.join(", "))
        )?;
        if self.held_elsewhere {
            f.write_str(" and a users-file, disabled or departed user")?;
        }
        Ok(())
    }
}

/// Withholds every email that more than one of `users`, or one of them and a user outside the
/// sync (`other_emails`), hold. Returned in the order of their emails.
pub fn withhold_shared_emails<'u>(
    users: impl Iterator<Item = &'u mut FetchedUser>,
    other_emails: impl Iterator<Item = &'u str>,
) -> Vec<SharedEmail> {
    let elsewhere: HashSet<String> = other_emails.map(email_key).collect();
    let mut holders: BTreeMap<String, Vec<&'u mut FetchedUser>> = BTreeMap::new();
    for found in users {
        if let Some(email) = &found.user.email {
            holders.entry(email_key(email)).or_default().push(found);
        }
    }
    let mut shared = Vec::new();
    for (key, holders) in holders {
        let held_elsewhere = elsewhere.contains(&key);
        if holders.len() < 2 && !held_elsewhere {
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
            held_elsewhere,
        });
    }
    shared
}
