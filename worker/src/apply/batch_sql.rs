//! The batch writer's statements, in one place and written by hand on purpose: they are
//! the measured hot path of group commit (docs/performance.md, "Group commit"), one round
//! trip each per batch however many commands it holds. Each sends a batch's rows as one
//! JSON document unpacked by `jsonb_to_recordset(…) AS t (column type, …)`, whose column
//! list sea-query cannot spell; that keeps nulls and order, and needs one parameter per
//! table, not one per row. Everything else the worker writes is built with sea-query.

/// Claims the commands' ids (`$1`: `[{id, org_id, kind}]`), key-share locking their orgs;
/// returns the ids claimed (see `commit::claim`).
pub(super) const CLAIM: &str = "\
    WITH t AS (SELECT * FROM jsonb_to_recordset($1) AS t (id uuid, org_id uuid, kind text)), \
         org AS (SELECT id FROM orgs WHERE id IN (SELECT org_id FROM t) \
                 ORDER BY id FOR KEY SHARE) \
    INSERT INTO processed_commands (command_id, org_id, command_type) \
    SELECT id, org_id, kind FROM t \
    WHERE org_id IS NULL OR org_id IN (SELECT id FROM org) \
    ON CONFLICT (command_id) DO NOTHING RETURNING command_id";

/// Locks the users (`$1`) and groups (`$2`) a batch changes, in id order.
pub(super) const LOCK_IN_ORDER: &str = "\
    WITH u AS (SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE), \
         g AS (SELECT id FROM groups WHERE id = ANY($2) ORDER BY id FOR UPDATE) \
    SELECT (SELECT count(*) FROM u) AS users, (SELECT count(*) FROM g) AS groups";

/// Stores replies (`$1`: `[{id, reply, apply_by}]`) of commands whose deadline has not
/// passed; returns the ids stored (see `commit::store_replies`).
pub(super) const STORE_REPLIES: &str = "\
    UPDATE processed_commands p SET reply = t.reply \
    FROM jsonb_to_recordset($1) AS t (id uuid, reply jsonb, apply_by timestamptz) \
    WHERE p.command_id = t.id AND roster_before_deadline(t.id, t.apply_by) \
    RETURNING p.command_id";

/// Writes a batch's activity entries (`$1`), outbox events (`$2`) and invites (`$3`, kept
/// only for orgs that send invites) in one statement; data-modifying `WITH` parts run once
/// each (see `effects::Effects::write`).
pub(super) const WRITE_EFFECTS: &str = "\
    WITH audit AS (\
             INSERT INTO audit_log (org_id, command_id, correlation_id, actor, action, \
                                    resource_type, resource_id, detail) \
             SELECT org_id, command_id, correlation_id, actor, action, resource_type, \
                    resource_id, detail \
             FROM jsonb_to_recordset($1) AS t (org_id uuid, command_id uuid, \
                  correlation_id text, actor text, action text, resource_type text, \
                  resource_id text, detail jsonb)), \
         event AS (\
             INSERT INTO outbox (event_id, org_id, routing_key, envelope) \
             SELECT event_id, org_id, routing_key, envelope \
             FROM jsonb_to_recordset($2) AS t (event_id uuid, org_id uuid, \
                  routing_key text, envelope jsonb)) \
    INSERT INTO invites (id, org_id, user_id, email) \
    SELECT t.id, o.id, t.user_id, t.email \
    FROM jsonb_to_recordset($3) AS t (id uuid, org_id uuid, user_id uuid, email text) \
    JOIN orgs o ON o.id = t.org_id AND o.send_invites \
    ON CONFLICT (user_id) DO NOTHING";
