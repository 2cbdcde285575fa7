//! Authentication of a client: who is connecting, and as whom they act.
//!
//! Over TLS the client sends its password in clear text, which allows a short-lived login
//! credential as well as a password; without TLS only SCRAM-SHA-256 is offered, against the
//! directory's verifier. Service accounts (AskTable's engine) authenticate with their own secret
//! and name the user they act for in the `tablegate.act_as` setting. Every failure answers the
//! same way, whether or not the user exists.

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use pgwire::api::auth::sasl::scram::ScramServerAuth;
use pgwire::messages::startup::Authentication;
use tokio::io::AsyncWriteExt;

use super::Fatal;
use super::gate::Gate;
use super::stream::ClientStream;
use crate::directory::{Login, User, password};
use crate::wire::{self, FrameReader, take_cstring};

/// The startup setting a service account uses to name the user it acts for.
pub const ACT_AS: &str = "tablegate.act_as";

/// Whom the session is for, and who logged in.
pub struct Identity {
    pub user: User,
    /// The service account that logged in on the user's behalf.
    pub service: Option<String>,
}

enum Principal<'a> {
    Service(&'a super::gate::ServiceAccount),
    User(Option<Login>),
}

pub async fn authenticate(
    gate: &Gate,
    stream: &mut ClientStream,
    reader: &mut FrameReader,
    login: &str,
    settings: &BTreeMap<String, String>,
) -> Result<Identity, Fatal> {
    let principal =
        match gate.service_account(login) {
            Some(account) => Principal::Service(account),
            None => Principal::User(gate.directory.lookup(login).await.map_err(|e| {
                Fatal::new("58000", format!("the user directory is unavailable: {e}"))
            })?),
        };
    let verified = if stream.is_tls() {
        let password = cleartext_password(stream, reader).await?;
        match &principal {
            Principal::Service(account) => account.check_secret(&password),
            Principal::User(Some(login)) => login
                .verifier
                .as_deref()
                .is_some_and(|v| password::check_password(v, &password)),
            Principal::User(None) => false,
        }
    } else {
        let verifier = match &principal {
            Principal::Service(account) => Some(account.verifier.as_str()),
            Principal::User(Some(login)) => login.verifier.as_deref(),
            Principal::User(None) => None,
        };
        scram(stream, reader, verifier).await?
    };
    let failed = || {
        Fatal::new(
            "28P01",
            format!("password authentication failed for user \"{login}\""),
        )
    };
    if !verified {
        return Err(failed());
    }
    match principal {
        Principal::User(Some(login)) if login.user.enabled => Ok(Identity {
            user: login.user,
            service: None,
        }),
        Principal::User(_) => Err(failed()),
        Principal::Service(account) => {
            let Some(userid) = settings.get(ACT_AS) else {
                return Err(Fatal::new(
                    "28000",
                    format!(
                        "service account \"{}\" must name the user it acts for",
                        account.name
                    ),
                )
                .with_hint("set tablegate.act_as, e.g. options='-c tablegate.act_as=<userid>'"));
            };
            match gate.directory.lookup(userid).await {
                Ok(Some(login)) if login.user.enabled => Ok(Identity {
                    user: login.user,
                    service: Some(account.name.clone()),
                }),
                Ok(_) => Err(Fatal::new(
                    "28000",
                    format!("user \"{userid}\" does not exist or is disabled"),
                )),
                Err(e) => Err(Fatal::new(
                    "58000",
                    format!("the user directory is unavailable: {e}"),
                )),
            }
        }
    }
}

async fn send(stream: &mut ClientStream, auth: Authentication) -> Result<(), Fatal> {
    let mut out = BytesMut::new();
    wire::encode(&auth, &mut out);
    stream.write_all(&out).await.map_err(Fatal::io)
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

/// Runs SCRAM-SHA-256; without a verifier it runs against a random one, so an unknown user
/// fails the same way a wrong password does.
async fn scram(
    stream: &mut ClientStream,
    reader: &mut FrameReader,
    verifier: Option<&str>,
) -> Result<bool, Fatal> {
    let secret = verifier
        .and_then(password::parse_verifier)
        .unwrap_or_else(|| {
            password::parse_verifier(&password::make_verifier(&random_text()))
                .expect("a fresh verifier parses")
        });
    send(stream, Authentication::SASL(vec!["SCRAM-SHA-256".into()])).await?;
    let mut first = password_message(stream, reader).await?;
    let mechanism = take_cstring(&mut first).map_err(Fatal::io)?;
    if mechanism != "SCRAM-SHA-256" || first.len() < 4 {
        return Err(Fatal::protocol("unsupported SASL mechanism"));
    }
    let len = first.get_i32();
    if len < 0 || len as usize != first.len() {
        return Err(Fatal::protocol("malformed SASL message"));
    }
    let server = ScramServerAuth::new();
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
    match waiting.on_client_final_message(&last) {
        Ok(server_final) if verifier.is_some() => {
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

fn random_text() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
