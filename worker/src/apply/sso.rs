//! Employee sign-in: an org's OpenID Connect settings (`sso.set`) and a person signing in
//! (`person.sign_in`). The ingress checked the ID token; here the worker decides, with the
//! rows locked, whether its claim names an active person of the org, records who signed
//! in and which claim matched, and accepts the invite the sign-in came from.

mod statements;

use super::Tx;
use super::{Audit, audit, invites::accept_on_sign_in};
use common::{
    messages::{Envelope, Reply, SetSso, SignIn, SignInClaim, SignOut},
    sso::{validate_client_value, validate_issuer},
};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde_json::json;
use uuid::Uuid;

/// Longest sealed secret stored (a sealed `MAX_LEN` secret is well under it).
const MAX_SEALED_LEN: usize = 4096;

pub(super) async fn set(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &SetSso,
) -> Result<Reply, DbErr> {
    let Some(row) = tx.query_one(&statements::lock_org(org_id)).await? else {
        return Ok(Reply::error(404, None, "organisation not found"));
    };
    let Some(oidc) = &cmd.oidc else {
        let row = tx.query_one(&statements::disable(org_id)).await?;
        let generation: i64 = row.map_or(Ok(0), |r| r.try_get("", "oidc_generation"))?;
        audit(tx, env, Some(org_id), sso_audit("sso.disabled", json!({})));
        return Ok(Reply::ok(
            200,
            json!({"enabled": false, "generation": generation}),
        ));
    };
    let issuer = oidc.issuer.trim().trim_end_matches('/');
    let client_id = oidc.client_id.trim();
    let checks = [
        validate_issuer(issuer),
        validate_client_value("client_id", client_id),
    ];
    if let Some(Err(e)) = checks.into_iter().find(Result::is_err) {
        return Ok(Reply::error(400, None, e));
    }
    let has_secret: bool = row.try_get("", "has_secret")?;
    match &oidc.client_secret_sealed {
        None if !has_secret => {
            return Ok(Reply::error(
                400,
                None,
                "client_secret is required the first time sign-in is set up",
            ));
        }
        Some(s) if s.is_empty() || s.len() > MAX_SEALED_LEN => {
            return Ok(Reply::error(400, None, "client_secret is malformed"));
        }
        _ => {}
    }
    let configure = statements::configure(
        org_id,
        issuer,
        client_id,
        oidc.client_secret_sealed.clone(),
        oidc.claim.as_str(),
    );
    let row = tx.query_one(&configure).await?;
    let generation: i64 = row.map_or(Ok(0), |r| r.try_get("", "oidc_generation"))?;
    let detail = json!({
        "issuer": issuer,
        "client_id": client_id,
        "claim": oidc.claim.as_str(),
        "client_secret_replaced": oidc.client_secret_sealed.is_some(),
    });
    audit(tx, env, Some(org_id), sso_audit("sso.updated", detail));
    Ok(Reply::ok(
        200,
        json!({"enabled": true, "issuer": issuer, "client_id": client_id,
               "claim": oidc.claim.as_str(), "generation": generation}),
    ))
}

fn sso_audit(action: &'static str, detail: serde_json::Value) -> Audit<'static> {
    Audit {
        action,
        resource_type: "SignIn",
        resource_id: None,
        detail,
    }
}

/// The person a claim value names, locked: by userName first, then (for the `email`
/// claim) by the directory email. `matched` says which of the person's fields it was.
struct Found {
    id: Uuid,
    user_name: String,
    active: bool,
    session_generation: i64,
    matched: &'static str,
}

fn found(r: &QueryResult, matched: &'static str) -> Result<Found, DbErr> {
    Ok(Found {
        id: r.try_get("", "id")?,
        user_name: r.try_get("", "user_name")?,
        active: r.try_get("", "active")?,
        session_generation: r.try_get("", "session_generation")?,
        matched,
    })
}

/// Every person the value names: the userName match, then directory-email matches (active
/// first), each row locked so a deactivation cannot slip in before commit.
async fn people_named(tx: &Tx<'_>, org_id: Uuid, cmd: &SignIn) -> Result<Vec<Found>, DbErr> {
    let mut out = Vec::new();
    if let Some(r) = tx
        .query_one(&statements::by_user_name(org_id, &cmd.value))
        .await?
    {
        out.push(found(&r, "userName")?);
    }
    if cmd.claim == SignInClaim::Email {
        let rows = tx
            .query_all(&statements::by_email(org_id, &cmd.value))
            .await?;
        for r in &rows {
            let f = found(r, "email")?;
            if !out.iter().any(|o| o.id == f.id) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Which person signs in: the userName match if active, else the one active person whose
/// directory email matches. Refusals change nothing and say why.
fn choose(people: Vec<Found>, claim: SignInClaim) -> Result<Found, Reply> {
    let claim = claim.as_str();
    if people.is_empty() {
        return Err(Reply::error(
            403,
            Some("not_in_directory"),
            format!("no one in this organisation's directory has this {claim}"),
        ));
    }
    let mut active: Vec<Found> = people.into_iter().filter(|p| p.active).collect();
    if active.is_empty() {
        return Err(Reply::error(
            403,
            Some("deactivated"),
            "this person is deactivated in the directory",
        ));
    }
    if active[0].matched == "userName" || active.len() == 1 {
        return Ok(active.swap_remove(0));
    }
    Err(Reply::error(
        409,
        Some("ambiguous"),
        format!("more than one active person has this {claim}; ask your administrator"),
    ))
}

pub(super) async fn sign_in(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &SignIn,
) -> Result<Reply, DbErr> {
    let Some(org) = tx.query_one(&statements::org_settings(org_id)).await? else {
        return Ok(Reply::error(404, None, "organisation not found"));
    };
    let generation: i64 = org.try_get("", "oidc_generation")?;
    let claim: String = org.try_get("", "oidc_claim")?;
    if !org.try_get::<bool>("", "enabled")? {
        return Ok(Reply::error(
            409,
            Some("sign_in_off"),
            "sign-in with Okta is off for this organisation",
        ));
    }
    if generation != cmd.oidc_generation || claim != cmd.claim.as_str() {
        return Ok(Reply::error(
            409,
            Some("settings_changed"),
            "the organisation's sign-in settings changed while you were signing in; sign in again",
        ));
    }
    let person = match choose(people_named(tx, org_id, cmd).await?, cmd.claim) {
        Ok(p) => p,
        Err(refusal) => return Ok(refusal),
    };
    tx.execute(&statements::signed_in(person.id)).await?;
    let invite_accepted = match &cmd.invite_token_hash {
        Some(hash) => accept_on_sign_in(tx, env, org_id, person.id, hash.as_str()).await?,
        None => false,
    };
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "person.signed_in",
            resource_type: "User",
            resource_id: Some(person.id.to_string()),
            detail: json!({
                "userName": person.user_name,
                "claim": cmd.claim.as_str(),
                "matched": person.matched,
                "subject": cmd.subject,
                "invite_accepted": invite_accepted,
            }),
        },
    );
    Ok(Reply::ok(
        200,
        json!({
            "user_id": person.id,
            "session_generation": person.session_generation,
            "oidc_generation": generation,
            "invite_accepted": invite_accepted,
        }),
    ))
}

/// Ends every session of the person: their session generation moves on.
pub(super) async fn sign_out(
    tx: &Tx<'_>,
    env: &Envelope,
    org_id: Uuid,
    cmd: &SignOut,
) -> Result<Reply, DbErr> {
    let Some(row) = tx
        .query_one(&statements::sign_out(org_id, cmd.user_id))
        .await?
    else {
        return Ok(super::not_found("User", cmd.user_id));
    };
    let user_name: String = row.try_get("", "user_name")?;
    audit(
        tx,
        env,
        Some(org_id),
        Audit {
            action: "person.signed_out",
            resource_type: "User",
            resource_id: Some(cmd.user_id.to_string()),
            detail: json!({"userName": user_name}),
        },
    );
    Ok(Reply::ok(200, json!({"signed_out": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(active: bool, matched: &'static str) -> Found {
        Found {
            id: Uuid::now_v7(),
            user_name: "jane@example.com".into(),
            active,
            session_generation: 0,
            matched,
        }
    }

    /// Which of the person's fields matched, for the one `choose` signs in.
    fn matched(people: Vec<Found>) -> &'static str {
        choose(people, SignInClaim::Email)
            .expect("signs in")
            .matched
    }

    #[test]
    fn an_active_user_name_match_wins() {
        let people = vec![person(true, "userName"), person(true, "email")];
        assert_eq!(matched(people), "userName");
    }

    #[test]
    fn one_active_email_match_signs_in_even_beside_an_inactive_user_name() {
        let people = vec![person(false, "userName"), person(true, "email")];
        assert_eq!(matched(people), "email");
    }

    #[test]
    fn refusals_say_why() {
        let status = |r: Result<Found, Reply>| r.err().map(|r| r.status());
        assert_eq!(status(choose(vec![], SignInClaim::Email)), Some(403));
        assert_eq!(
            status(choose(vec![person(false, "userName")], SignInClaim::Email)),
            Some(403)
        );
        assert_eq!(
            status(choose(
                vec![person(true, "email"), person(true, "email")],
                SignInClaim::Email
            )),
            Some(409)
        );
    }
}
