//! The catalogue of commands: every command type is declared once, in [`catalogue!`]
//! below, with its variant, payload, type name, who may send it, whether it belongs to an
//! org and what it does. The [`Command`] enum, its type names and decoding, the public and
//! known sets ([`PUBLIC_COMMANDS`], [`KNOWN_COMMANDS`]) and the JSON Schemas
//! (`crate::message_schemas`, `docs/schemas/`) all come from that one table.

use super::{
    AcceptInvite, CreateGroup, CreateIntegration, CreateOrg, CreateUser, DecideGuard, DecodeError,
    DeleteGroup, DeleteOrg, DeletePerson, DeleteUser, Envelope, PatchGroup, PatchUser,
    ReplaceGroup, ReplaceUser, RevokeIntegration, RotateAdminKey, RotateScimToken, SCHEMA_VERSION,
    SetMappings, SetOrgRetention, SetProvisioning, SetSso, SetUserActive, SignIn, SignOut,
    UpdatePerson, UpdateSettings,
};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;
use uuid::Uuid;

/// Who may publish a command type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Other services of the org too, with an integration credential.
    Public,
    /// Roster's own services only.
    Own,
}

/// Whether a command type's envelope names an org.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// It needs an `org_id`.
    Org,
    /// It carries none (`org.create`, `org.delete`).
    Global,
}

/// One command type, as the catalogue declares it.
#[derive(Clone, Copy, Debug)]
pub struct CommandType {
    /// The envelope `type`, which is also the routing key.
    pub kind: &'static str,
    pub audience: Audience,
    pub scope: Scope,
    /// What it does, for its schema's description.
    pub about: &'static str,
    /// The JSON Schema of its payload.
    pub payload_schema: fn(&mut SchemaGenerator) -> Schema,
}

fn payload_schema<P: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<P>()
}

/// Declares every command type once; see the invocation below.
macro_rules! catalogue {
    ($( $variant:ident($payload:ty) = $kind:literal, $audience:ident, $scope:ident, $about:literal; )*) => {
        /// Every command the worker applies.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Command {
            $( $variant($payload), )*
        }

        /// Every command type, in the order of the catalogue.
        pub const COMMANDS: &[CommandType] = &[
            $( CommandType {
                kind: $kind,
                audience: Audience::$audience,
                scope: Scope::$scope,
                about: $about,
                payload_schema: payload_schema::<$payload>,
            }, )*
        ];

        impl Command {
            pub fn kind(&self) -> &'static str {
                match self {
                    $( Command::$variant(_) => $kind, )*
                }
            }

            fn payload(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $( Command::$variant(p) => serde_json::to_value(p), )*
                }
            }

            /// The command of a known `type`; `None` for an unknown one.
            fn decode(env: &Envelope) -> Result<Option<Self>, DecodeError> {
                Ok(Some(match env.kind.as_str() {
                    $( $kind => Command::$variant(env.payload_as()?), )*
                    _ => return Ok(None),
                }))
            }
        }
    };
}

catalogue! {
    CreateUser(CreateUser) = "user.create", Public, Org,
        "Create a user (as SCIM `POST /Users`).";
    ReplaceUser(ReplaceUser) = "user.replace", Public, Org,
        "Replace a user (as SCIM `PUT /Users/{id}`).";
    PatchUser(PatchUser) = "user.patch", Public, Org,
        "Patch a user (as SCIM `PATCH /Users/{id}`).";
    DeactivateUser(SetUserActive) = "user.deactivate", Public, Org,
        "Deactivate a user (as a SCIM PATCH setting `active` to false).";
    ReactivateUser(SetUserActive) = "user.reactivate", Public, Org,
        "Reactivate a user (as a SCIM PATCH setting `active` to true).";
    DeleteUser(DeleteUser) = "user.delete", Public, Org,
        "Delete a user (as SCIM `DELETE /Users/{id}`).";
    CreateGroup(CreateGroup) = "group.create", Public, Org,
        "Create a group (as SCIM `POST /Groups`).";
    ReplaceGroup(ReplaceGroup) = "group.replace", Public, Org,
        "Replace a group (as SCIM `PUT /Groups/{id}`).";
    PatchGroup(PatchGroup) = "group.patch", Public, Org,
        "Patch a group (as SCIM `PATCH /Groups/{id}`).";
    DeleteGroup(DeleteGroup) = "group.delete", Public, Org,
        "Delete a group (as SCIM `DELETE /Groups/{id}`).";
    CreateOrg(CreateOrg) = "org.create", Own, Global,
        "Create a tenant.";
    RotateAdminKey(RotateAdminKey) = "admin_key.rotate", Own, Org,
        "Replace the org's admin key; the old one stops working at once.";
    SetProvisioning(SetProvisioning) = "provisioning.set", Own, Org,
        "Switch SCIM provisioning on or off.";
    RotateScimToken(RotateScimToken) = "provisioning.rotate_token", Own, Org,
        "Replace the org's SCIM token.";
    UpdateSettings(UpdateSettings) = "settings.update", Own, Org,
        "Change the org's settings.";
    SetMappings(SetMappings) = "mappings.set", Own, Org,
        "Replace the org's attribute mapping.";
    UpdatePerson(UpdatePerson) = "person.update", Own, Org,
        "An admin's edit of a person's directory fields.";
    DeletePerson(DeletePerson) = "person.delete", Own, Org,
        "Delete a person and erase their personal data (directory API, or the org's policy for deactivated people).";
    DeleteOrg(DeleteOrg) = "org.delete", Own, Global,
        "Remove a tenant and every row it owns (the operator).";
    SetOrgRetention(SetOrgRetention) = "org.set_retention", Own, Org,
        "Set how long the org's activity entries are kept (the operator).";
    AcceptInvite(AcceptInvite) = "invite.accept", Own, Org,
        "A person accepted their invite.";
    CreateIntegration(CreateIntegration) = "integration.create", Own, Org,
        "Issue an integration credential to another service of the org.";
    RevokeIntegration(RevokeIntegration) = "integration.revoke", Own, Org,
        "Revoke an integration credential.";
    SetSso(SetSso) = "sso.set", Own, Org,
        "Set or turn off the org's employee sign-in (OpenID Connect); ends every session.";
    SignIn(SignIn) = "person.sign_in", Own, Org,
        "A person signed in with a valid ID token; from an invite link, accepts it.";
    SignOut(SignOut) = "person.sign_out", Own, Org,
        "A person signed out: every session of theirs ends.";
    DecideGuard(DecideGuard) = "deprovision_guard.decide", Own, Org,
        "An admin approves or rejects the deactivations and deletions the mass-deprovisioning guard holds.";
}

/// Every command type, public or Roster's own.
pub const KNOWN_COMMANDS: &[&str] = &kinds::<{ COMMANDS.len() }>(None);

/// The command types other services may publish with an integration credential; every
/// other type is Roster's own.
pub const PUBLIC_COMMANDS: &[&str] = &kinds::<{ count(Audience::Public) }>(Some(Audience::Public));

/// How many command types have `audience`.
const fn count(audience: Audience) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < COMMANDS.len() {
        if COMMANDS[i].audience as u8 == audience as u8 {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The type names of the catalogue, all or those with `audience`, in its order.
const fn kinds<const N: usize>(audience: Option<Audience>) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < COMMANDS.len() {
        let wanted = match audience {
            Some(a) => COMMANDS[i].audience as u8 == a as u8,
            None => true,
        };
        if wanted {
            out[n] = COMMANDS[i].kind;
            n += 1;
        }
        i += 1;
    }
    out
}

impl CommandType {
    /// The catalogue's entry for `kind`, if Roster knows it.
    pub fn of(kind: &str) -> Option<&'static CommandType> {
        COMMANDS.iter().find(|c| c.kind == kind)
    }
}

impl Command {
    /// Whether `kind` names a command the worker knows.
    pub fn is_known(kind: &str) -> bool {
        KNOWN_COMMANDS.contains(&kind)
    }

    /// Wraps the command for the given org.
    pub fn into_envelope(self, org_id: Option<Uuid>, correlation_id: &str) -> Envelope {
        let payload = self.payload().unwrap_or(Value::Null);
        Envelope::new(self.kind(), org_id, correlation_id, payload)
    }

    pub fn from_envelope(env: &Envelope) -> Result<Self, DecodeError> {
        if env.schema_version != SCHEMA_VERSION {
            return Err(DecodeError(format!(
                "schema_version {} is not supported (expected {SCHEMA_VERSION})",
                env.schema_version
            )));
        }
        // An unknown type is checked for an org first, as it always was.
        let needs_org = CommandType::of(&env.kind).is_none_or(|c| c.scope == Scope::Org);
        if needs_org && env.org_id.is_none() {
            return Err(DecodeError(format!("{} needs an org_id", env.kind)));
        }
        Command::decode(env)?
            .ok_or_else(|| DecodeError(format!("unknown command type {:?}", env.kind.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::TokenHash;
    use std::collections::BTreeSet;

    #[test]
    fn commands_round_trip_through_the_envelope() {
        let cmd = Command::CreateUser(CreateUser {
            resource: serde_json::json!({"userName": "a@b.c"}),
        });
        let org = Uuid::new_v4();
        let env = cmd.clone().into_envelope(Some(org), "req-1");
        assert_eq!(env.kind, "user.create");
        let back = Envelope::from_bytes(&env.to_bytes()).expect("decodes");
        assert_eq!(Command::from_envelope(&back).expect("a command"), cmd);
        assert_eq!(back.org_id, Some(org));
        assert_eq!(back.correlation_id, "req-1");
    }

    #[test]
    fn unknown_or_orgless_commands_are_refused() {
        let mut env = Command::AcceptInvite(AcceptInvite {
            token_hash: TokenHash("x".into()),
        })
        .into_envelope(None, "c");
        assert!(Command::from_envelope(&env).is_err());
        env.org_id = Some(Uuid::new_v4());
        env.kind = "user.explode".into();
        let err = Command::from_envelope(&env).expect_err("unknown");
        assert_eq!(err.0, r#"unknown command type "user.explode""#);
        env.org_id = None;
        let err = Command::from_envelope(&env).expect_err("orgless");
        assert_eq!(err.0, "user.explode needs an org_id");
        assert!(Envelope::from_bytes(b"not json").is_err());
    }

    #[test]
    fn only_org_create_and_org_delete_go_without_an_org() {
        let global: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.scope == Scope::Global)
            .map(|c| c.kind)
            .collect();
        assert_eq!(global, ["org.create", "org.delete"]);
        let env = Command::DeleteOrg(DeleteOrg {
            org_id: Uuid::new_v4(),
        })
        .into_envelope(None, "c");
        assert!(Command::from_envelope(&env).is_ok());
    }

    #[test]
    fn a_credential_travels_but_never_prints() {
        let mut env = Command::DeactivateUser(SetUserActive {
            user_id: Uuid::new_v4(),
            if_match: None,
        })
        .into_envelope(Some(Uuid::new_v4()), "c");
        assert!(!String::from_utf8_lossy(&env.to_bytes()).contains("credential"));
        env.credential = Some("rst_int_sesame".into());
        let back = Envelope::from_bytes(&env.to_bytes()).expect("decodes");
        assert_eq!(back.credential.as_deref(), Some("rst_int_sesame"));
        assert!(!format!("{back:?}").contains("sesame"));
        assert_eq!(
            Command::from_envelope(&back).expect("a command").kind(),
            "user.deactivate"
        );
    }

    #[test]
    fn public_commands_are_known_commands() {
        for kind in PUBLIC_COMMANDS {
            assert!(Command::is_known(kind), "{kind}");
        }
        assert!(Command::is_known("provisioning.set"));
        assert!(!PUBLIC_COMMANDS.contains(&"provisioning.set"));
        assert!(!Command::is_known("user.explode"));
    }

    /// The sets as they were spelled out by hand before the catalogue.
    #[test]
    fn the_sets_are_the_ones_roster_always_had() {
        let public: BTreeSet<&str> = PUBLIC_COMMANDS.iter().copied().collect();
        let expected: BTreeSet<&str> = [
            "user.create",
            "user.replace",
            "user.patch",
            "user.deactivate",
            "user.reactivate",
            "user.delete",
            "group.create",
            "group.replace",
            "group.patch",
            "group.delete",
        ]
        .into();
        assert_eq!(public, expected);
        let known: BTreeSet<&str> = KNOWN_COMMANDS.iter().copied().collect();
        assert_eq!(known.len(), 27);
        assert_eq!(known.len(), KNOWN_COMMANDS.len(), "a type declared twice");
        for kind in ["org.create", "deprovision_guard.decide", "person.sign_out"] {
            assert!(known.contains(kind), "{kind}");
        }
    }

    /// Every catalogued type decodes from its own envelope into the variant of its name.
    #[test]
    fn every_type_decodes_to_its_own_variant() {
        let org = Some(Uuid::new_v4());
        for c in COMMANDS {
            let env = Envelope::new(c.kind, org, "c", serde_json::json!({}));
            match Command::from_envelope(&env) {
                Ok(cmd) => assert_eq!(cmd.kind(), c.kind),
                // A payload of the wrong shape, named with its type: decoded by its entry.
                Err(e) => assert!(e.0.starts_with(&format!("{} payload:", c.kind)), "{e}"),
            }
        }
    }
}
