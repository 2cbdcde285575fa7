//! Authentication of a client: who is connecting, and as whom they act.
//!
//! Over TLS a user sends their password in clear text, which allows a short-lived WeCom login
//! credential as well as a password; without TLS only SCRAM-SHA-256 is offered, against the
//! directory's verifier. Service accounts (AskTable's engine) always use SCRAM with their own
//! secret, which acts for anyone, and name the user they act for in the `tablegate.act_as`
//! setting. Every failure answers the same way, whether or not the user exists. Each guess is
//! claimed from the [login throttle](super::login_throttle) just before it is checked.

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use pgwire::api::auth::sasl::scram::{ScramSecret, ScramServerAuth};
use pgwire::messages::startup::Authentication;

use super::gate::{Gate, ServiceAccount};
use super::login_throttle::LoginAttempt;
use super::stream::ClientStream;
use super::{Fatal, INVALID_AUTHORIZATION};
use crate::directory::{ScramVerifier, User};
use crate::login::{CREDENTIAL_PREFIX, CredentialLoginError};
use crate::wire::{self, FrameReader, take_cstring};

/// SCRAM without channel binding.
const PLAIN_SCRAM: &str = "SCRAM-SHA-256";
/// SCRAM bound to the TLS connection (tls-server-end-point), offered over TLS.
const BOUND_SCRAM: &str = "SCRAM-SHA-256-PLUS";

/// SQLSTATE invalid_password: a wrong password or credential, or an unknown user.
pub const PASSWORD_FAILED: &str = "28P01";

/// SQLSTATE system_error: the directory could not be read, so the login was not decided (a
/// client may try again; the throttle does not count it as a guess).
pub const DIRECTORY_UNAVAILABLE: &str = "58000";

/// The startup setting a service account uses to name the user it acts for.
pub const ACT_AS: &str = "tablegate.act_as";

/// The first authentication message goes out no sooner than this after the lookup began, so
/// its timing does not tell which names exist: found by red-team review, a known user's
/// directory row took about 10 µs longer to read than an unknown name's, and a service account
/// needs no lookup at all. Timers fire on millisecond ticks, whichever way the lookup went.
pub const LOOKUP_TIME: std::time::Duration = std::time::Duration::from_millis(5);

/// Whom the session is for, and who logged in.
pub struct Identity {
    pub user: User,
    /// The service account that logged in on the user's behalf.
    pub service: Option<String>,
}

enum Principal<'a> {
    Service(&'a ServiceAccount),
    /// A directory user (if one has this userid) and their password's verifier, or a decoy
    /// (`known` false) when there is none.
    User {
        user: Box<Option<User>>,
        verifier: ScramVerifier,
        known: bool,
    },
}

fn unavailable(e: impl std::fmt::Display) -> Fatal {
    Fatal::new(
        DIRECTORY_UNAVAILABLE,
        format!("the user directory is unavailable: {e}"),
    )
}

pub async fn authenticate(
    gate: &Gate,
    stream: &mut ClientStream,
    reader: &mut FrameReader,
    login: &str,
    settings: &BTreeMap<String, String>,
    attempt: &mut LoginAttempt<'_>,
) -> Result<Identity, Fatal> {
    let answer_at = tokio::time::Instant::now() + LOOKUP_TIME;
    let principal = match gate.service_account(login) {
        Some(account) => Principal::Service(account),
        None => {
            let user = Box::new(gate.directory.user(login).await.map_err(unavailable)?);
            let stored = gate
                .directory
                .password_verifier(login)
                .await
                .map_err(unavailable)?;
            Principal::User {
                user,
                known: stored.is_some(),
                // Derived before the timer runs out, so a decoy costs no time after it.
                verifier: stored.unwrap_or_else(|| gate.decoy_verifier(login)),
            }
        }
    };
    tokio::time::sleep_until(answer_at).await;
    let failed = || {
        Fatal::new(
            PASSWORD_FAILED,
            format!("password authentication failed for user \"{login}\""),
        )
    };
    let verified = match &principal {
        // A service account's secret acts for anyone: it never crosses the wire, TLS or not
        // (TLS without a verified certificate does not stop a man in the middle).
        Principal::Service(account) => {
            scram(gate, stream, reader, &account.verifier, true, attempt).await?
        }
        Principal::User {
            verifier, known, ..
        } if stream.is_tls() => {
            let password = cleartext_password(stream, reader).await?;
            attempt.guess().await?;
            match &gate.login {
                Some(service) if password.starts_with(CREDENTIAL_PREFIX) => {
                    // A WeCom login credential: signed for this user, unexpired, user still
                    // an enabled WeCom user.
                    let user =
                        service
                            .authenticate(login, &password)
                            .await
                            .map_err(|e| match e {
                                CredentialLoginError::Refused(_) => failed(),
                                // Not a failed guess: the throttle must not count it.
                                CredentialLoginError::DirectoryUnavailable(e) => unavailable(e),
                            })?;
                    return Ok(Identity {
                        user,
                        service: None,
                    });
                }
                // Against a decoy too: the same work, so the time says nothing about the login.
                _ => matches(verifier.clone(), password).await && *known,
            }
        }
        Principal::User {
            verifier, known, ..
        } => scram(gate, stream, reader, verifier, *known, attempt).await?,
    };
    if !verified {
        // The same hint for every user, existing or not: it only says what TLS allows.
        return Err(match &gate.login {
            Some(_) if !stream.is_tls() => failed().with_hint(
                "a WeCom login credential (tg1.…) is accepted only over TLS: connect with sslmode=require",
            ),
            _ => failed(),
        });
    }
    match principal {
        Principal::User { user, .. } => match *user {
            Some(user) if user.enabled => Ok(Identity {
                user,
                service: None,
            }),
            _ => Err(failed()),
        },
        Principal::Service(account) => {
            let Some(userid) = settings.get(ACT_AS) else {
                return Err(Fatal::new(
                    INVALID_AUTHORIZATION,
                    format!(
                        "service account \"{}\" must name the user it acts for",
                        account.name
                    ),
                )
                .with_hint("set tablegate.act_as, e.g. options='-c tablegate.act_as=<userid>'"));
            };
            match gate.directory.user(userid).await.map_err(unavailable)? {
                Some(user) if user.enabled => Ok(Identity {
                    user,
                    service: Some(account.name.clone()),
                }),
                _ => Err(Fatal::new(
                    INVALID_AUTHORIZATION,
                    format!("user \"{userid}\" does not exist or is disabled"),
                )),
            }
        }
    }
}

async fn send(stream: &mut ClientStream, auth: Authentication) -> Result<(), Fatal> {
    let mut out = BytesMut::new();
    wire::encode(&auth, &mut out);
    wire::send(stream, &out).await.map_err(Fatal::io)
}

async fn password_message(
    stream: &mut ClientStream,
    reader: &mut FrameReader,
) -> Result<BytesMut, Fatal> {
    match reader.next(stream).await.map_err(Fatal::io)? {
        Some(frame) if frame.tag == b'p' => Ok(frame.body),
        Some(_) => Err(Fatal::protocol("expected a password message")),
        None => Err(Fatal::gone()),
    }
}

async fn cleartext_password(
    stream: &mut ClientStream,
    reader: &mut FrameReader,
) -> Result<String, Fatal> {
    send(stream, Authentication::CleartextPassword).await?;
    let mut body = password_message(stream, reader).await?;
    take_cstring(&mut body).map_err(Fatal::io)
}

/// Checks a cleartext password off the async threads: deriving the key costs milliseconds.
async fn matches(verifier: ScramVerifier, password: String) -> bool {
    tokio::task::spawn_blocking(move || verifier.matches_password(&password))
        .await
        .unwrap_or(false)
}

/// Runs SCRAM-SHA-256; over TLS it offers SCRAM-SHA-256-PLUS too, whose proof covers
/// tablegate's certificate: a man in the middle who relays the exchange (to swap
/// `tablegate.act_as`, found by red-team review) holds another certificate and fails, and one
/// who hides -PLUS from a client that can bind is caught by the client's `y` flag. For an
/// unknown user it runs against a decoy verifier (`known` false), so the exchange looks and
/// fails the same as for a wrong password. The client's proof is a guess, claimed from
/// `attempt` once it has arrived.
async fn scram(
    gate: &Gate,
    stream: &mut ClientStream,
    reader: &mut FrameReader,
    verifier: &ScramVerifier,
    known: bool,
    attempt: &mut LoginAttempt<'_>,
) -> Result<bool, Fatal> {
    let secret = ScramSecret::Verifier {
        salt: verifier.salt.clone(),
        iterations: verifier.iterations as usize,
        stored_key: verifier.stored_key.to_vec(),
        server_key: verifier.server_key.to_vec(),
    };
    let server = match &gate.tls_scram {
        Some(bound) if stream.is_tls() => bound.clone(),
        _ => ScramServerAuth::new(),
    };
    let mut mechanisms = vec![PLAIN_SCRAM.to_owned()];
    if server.supports_channel_binding() {
        mechanisms.insert(0, BOUND_SCRAM.to_owned());
    }
    send(stream, Authentication::SASL(mechanisms.clone())).await?;
    let mut first = password_message(stream, reader).await?;
    let mechanism = take_cstring(&mut first).map_err(Fatal::io)?;
    if !mechanisms.contains(&mechanism) || first.len() < 4 {
        return Err(Fatal::protocol("unsupported SASL mechanism"));
    }
    let len = first.get_i32();
    if len < 0 || len as usize != first.len() {
        return Err(Fatal::protocol("malformed SASL message"));
    }
    // RFC 5802: the -PLUS mechanism binds (gs2 flag `p`), the plain one does not.
    if (mechanism == BOUND_SCRAM) != first.starts_with(b"p") {
        return Ok(false);
    }
    // `y` says the client spoke TLS and could have bound. Over plaintext, while tablegate
    // offers -PLUS over TLS, someone in the middle ended that TLS and connected here without
    // it (found in review: such a relay swapped `tablegate.act_as` under libpq's default
    // `channel_binding=prefer`).
    if first.starts_with(b"y") && !stream.is_tls() && gate.tls_scram.is_some() {
        return Ok(false);
    }
    let Ok((server_first, waiting)) = server.on_client_first_message_with_secret(&first, secret)
    else {
        return Ok(false);
    };
    send(
        stream,
        Authentication::SASLContinue(server_first.into_bytes().into()),
    )
    .await?;
    let last = password_message(stream, reader).await?;
    attempt.guess().await?;
    match waiting.on_client_final_message(&last) {
        Ok(server_final) if known => {
            send(
                stream,
                Authentication::SASLFinal(server_final.into_bytes().into()),
            )
            .await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}
