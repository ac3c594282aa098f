//! Message contracts: the envelope every command and event travels in, the commands the
//! worker applies, its replies, and the events it publishes. Plain serde data.
//!
//! Every command type is declared once, in the catalogue of [`command`]; its payload is a
//! type of the module of its subject ([`org`], [`settings`], [`scim`], [`directory`],
//! [`sign_in`]).

pub mod command;
pub mod directory;
pub mod envelope;
pub mod events;
pub mod org;
pub mod provisioning_log;
pub mod reply;
pub mod scim;
pub mod settings;
pub mod sign_in;

pub use command::{
    Audience, COMMANDS, Command, CommandType, KNOWN_COMMANDS, PUBLIC_COMMANDS, Scope,
};
pub use directory::{AcceptInvite, DeletePerson, SetMappings, UpdatePerson};
pub use envelope::{DecodeError, Envelope};
pub use events::{GroupEvent, UserEvent};
pub use org::{
    CreateIntegration, CreateOrg, DeleteOrg, NewToken, RevokeIntegration, RotateAdminKey,
    RotateScimToken, SetOrgRetention, SetProvisioning,
};
pub use provisioning_log::{PROVISIONING_LOG, ProvisioningLogEntries, ProvisioningLogEntry};
pub use reply::Reply;
pub use scim::{
    CreateGroup, CreateUser, DeleteGroup, DeleteUser, PatchGroup, PatchUser, ReplaceGroup,
    ReplaceUser, SetUserActive,
};
pub use settings::{DeactivatedPeople, DecideGuard, GuardDecision, GuardSettings, UpdateSettings};
pub use sign_in::{OidcClient, SetSso, SignIn, SignInClaim, SignOut};

/// The version of the message schemas in this module.
pub const SCHEMA_VERSION: u32 = 1;
