//! The statements of the measured hot path, in one place and written by hand on purpose
//! (docs/performance.md, "Hand-written on the hot path"); the other statements of
//! `apply` are built with sea-query.
//!
//! - The batch writer's (group commit): one round trip each per batch however many
//!   commands it holds. Each sends a batch's rows as one JSON document unpacked by
//!   `jsonb_to_recordset(…) AS t (column type, …)`, whose column list sea-query cannot
//!   spell; that keeps nulls and order, and needs one parameter per table, not one per row.
//! - The org chart's, which every create runs ([`LOCK_VALUES`], [`LINK_WAITING`]; for the
//!   creates a batch writes together, [`CREATE_USERS`] and [`LINK_ARRIVALS`]): built
//!   with sea-query they cost the worker 50 µs a create to build and render, and the create
//!   benchmark lost 10 % of its throughput (the worker's CPU per create rose by a third).

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

/// Stores replies (`$1`: `[{id, reply, apply_by}]`; `$2`: the same ids, `uuid[]`) of
/// commands whose deadline has not passed; returns the ids stored (see
/// `commit::store_replies`).
///
/// `p.command_id = ANY($2)` says nothing the join does not, but it is what makes the plan
/// an index lookup. Without it PostgreSQL guesses `jsonb_to_recordset` returns 100 rows
/// and, until the table has been analysed (a new database, its first minute: an org's
/// first import), hash-joins them against a sequential scan of every stored reply: 3–5 ms
/// a batch at 15,000 rows, growing with the table (docs/performance.md, "A sequential scan
/// a batch").
pub const STORE_REPLIES: &str = "\
    UPDATE processed_commands p SET reply = t.reply \
    FROM jsonb_to_recordset($1) AS t (id uuid, reply jsonb, apply_by timestamptz) \
    WHERE p.command_id = ANY($2) AND p.command_id = t.id \
      AND roster_before_deadline(t.id, t.apply_by) \
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

/// Locks the values a person waits on (`$2`, a JSON array: shared) and arrives with (`$3`:
/// exclusive) for org `$1`, one advisory lock a value in hash order; returns the org's
/// match keys (`keys`, JSON) and how many were locked (`locked`). See
/// `manager::lock_values`.
pub(super) const LOCK_VALUES: &str = "\
    SELECT to_jsonb(o.manager_match) AS keys, \
        (SELECT count(CASE WHEN s.x THEN pg_advisory_xact_lock(s.h) \
                           ELSE pg_advisory_xact_lock_shared(s.h) END) \
         FROM (SELECT a.h, bool_or(a.x) AS x FROM ( \
                 SELECT hashtextextended($1::text || ':' || t.v, 7262810515) AS h, false AS x \
                 FROM jsonb_array_elements_text($2::jsonb) AS t (v) \
                 UNION ALL SELECT hashtextextended($1::text || ':' || t.v, 7262810515), true \
                 FROM jsonb_array_elements_text($3::jsonb) AS t (v)) a \
               GROUP BY a.h ORDER BY a.h) s) AS locked \
    FROM orgs o WHERE o.id = $1";

/// People `r` of org `$1` other than `$2` waiting on a value among `$3` (lowercased),
/// equal to one of `$4` (keys compared exactly) or, lowercased, to one of `$5` (the
/// others); all three JSON arrays. The first test is the `users_waiting_manager` index.
macro_rules! waiting {
    () => {
        "r.org_id = $1 AND r.id <> $2 AND r.manager_id IS NULL AND r.manager_ref IS NOT NULL \
         AND lower(r.manager_ref) = ANY (ARRAY(SELECT jsonb_array_elements_text($3::jsonb))) \
         AND (r.manager_ref = ANY (ARRAY(SELECT jsonb_array_elements_text($4::jsonb))) \
              OR lower(r.manager_ref) = ANY (ARRAY(SELECT jsonb_array_elements_text($5::jsonb))))"
    };
}

/// Whether anyone is waiting (see `waiting!`): `found`.
pub(super) const ANY_WAITING: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM users r WHERE ",
    waiting!(),
    ") AS found"
);

/// Links everyone waiting (see `waiting!`) to the manager `$2`, but those above the
/// manager (a cycle), with a new version. Rows: the linked (`linked` true, `id`, `version`,
/// `user_name`), then those left waiting (`linked` false, `id`, `user_name`,
/// `manager_ref`).
pub(super) const LINK_WAITING: &str = concat!(
    "WITH RECURSIVE up (id, manager_id) AS ( \
         SELECT id, manager_id FROM users WHERE id = $2 \
         UNION SELECT u.id, u.manager_id FROM users u JOIN up ON u.id = up.manager_id), \
     cand AS ( \
         SELECT r.id, r.user_name, r.manager_ref, r.id IN (SELECT id FROM up) AS cycle \
         FROM users r WHERE ",
    waiting!(),
    "), \
     linked AS ( \
         UPDATE users u SET manager_id = $2, version = u.version + 1, updated_at = now() \
         FROM cand WHERE u.id = cand.id AND NOT cand.cycle \
           AND u.manager_id IS NULL AND u.manager_ref = cand.manager_ref \
         RETURNING u.id, u.version, u.user_name) \
     SELECT true AS linked, id, version, user_name, NULL::text AS manager_ref FROM linked \
     UNION ALL \
     SELECT false, id, NULL, user_name, manager_ref FROM cand WHERE cycle"
);

/// Links the people waiting on a value of the people a batch creates (`$1`: `[{n, org_id,
/// manager, v, lv, exact}]`, a row a value: `lv` lowercased, `exact` when the key compares
/// exactly) to the first of them (lowest `n`) whose value they wait on, with a new
/// version; returns the linked (`n`, `id`, `version`, `user_name`) in order. No cycle
/// check: the people created have no manager (see `manager::link_arrivals`). The `ANY`
/// tests say nothing the join does not; they make the lookup the `users_waiting_manager`
/// index's, whatever the statistics say and however many people wait (tests/e2e/
/// query_plans.rs).
pub const LINK_ARRIVALS: &str = "\
    WITH k AS (SELECT * FROM jsonb_to_recordset($1) \
                 AS k (n int, org_id uuid, manager uuid, v text, lv text, exact boolean)), \
         cand AS (\
             SELECT DISTINCT ON (r.id) r.id, r.manager_ref, k.manager, k.n \
             FROM users r JOIN k ON r.org_id = k.org_id AND lower(r.manager_ref) = k.lv \
                  AND r.id <> k.manager AND (NOT k.exact OR r.manager_ref = k.v) \
             WHERE r.org_id = ANY (ARRAY(SELECT org_id FROM k)) \
               AND r.manager_id IS NULL AND r.manager_ref IS NOT NULL \
               AND lower(r.manager_ref) = ANY (ARRAY(SELECT lv FROM k)) \
             ORDER BY r.id, k.n), \
         linked AS (\
             UPDATE users u SET manager_id = cand.manager, version = u.version + 1, \
                    updated_at = now() \
             FROM cand WHERE u.id = cand.id \
               AND u.manager_id IS NULL AND u.manager_ref = cand.manager_ref \
             RETURNING cand.n, u.id, u.version, u.user_name) \
    SELECT n, id, version, user_name FROM linked ORDER BY n, id";

/// Creates people (`$1`: `[{n, id, org_id, user_name, external_id, active, display_name,
/// given_name, family_name, email, resource, profile}]`) in order of `n`, at version 1,
/// skipping each whose `userName` the org already has in any case (an earlier one of the
/// same statement included), and takes the exclusive value locks (`$2`: `[{id, org_id,
/// v}]`, in hash order) of those it created. Returns the rows created, each with its org's match
/// keys (`keys`). See `users::together`.
pub(super) const CREATE_USERS: &str = "\
    WITH t AS (SELECT * FROM jsonb_to_recordset($1) AS t (n int, id uuid, org_id uuid, \
                 user_name text, external_id text, active boolean, display_name text, \
                 given_name text, family_name text, email text, resource jsonb, \
                 profile jsonb)), \
         ins AS (\
             INSERT INTO users (id, org_id, user_name, external_id, active, display_name, \
                                given_name, family_name, email, resource, profile, version, \
                                created_at, updated_at, activated_at) \
             SELECT id, org_id, user_name, external_id, active, display_name, given_name, \
                    family_name, email, resource, profile, 1, now(), now(), \
                    CASE WHEN active THEN now() END \
             FROM t ORDER BY n \
             ON CONFLICT (org_id, lower(user_name)) DO NOTHING RETURNING *), \
         locked AS (\
             SELECT count(pg_advisory_xact_lock(s.h)) AS locks FROM (\
                 SELECT DISTINCT hashtextextended(v.org_id::text || ':' || v.v, 7262810515) AS h \
                 FROM jsonb_to_recordset($2) AS v (id uuid, org_id uuid, v text) \
                 JOIN ins ON ins.id = v.id ORDER BY h) s) \
    SELECT ins.*, to_jsonb(o.manager_match) AS keys, (SELECT locks FROM locked) AS locks \
    FROM ins JOIN orgs o ON o.id = ins.org_id";
