-- Data has a lifetime (docs/data-lifecycle.md): when a person was deactivated (for the
-- per-org "erase deactivated people after N days" policy), the org's retention choices,
-- pending erasures, and the indexes the background pruning walks.

-- Kept by a trigger, so every path that flips `active` (SCIM, integrations, the directory)
-- records it without knowing about it.
ALTER TABLE users ADD COLUMN deactivated_at timestamptz;
UPDATE users SET deactivated_at = updated_at WHERE NOT active;

CREATE FUNCTION users_track_deactivation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.active THEN
        NEW.deactivated_at := NULL;
    ELSIF TG_OP = 'INSERT' OR OLD.active THEN
        NEW.deactivated_at := now();
    ELSE
        NEW.deactivated_at := OLD.deactivated_at;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER users_track_deactivation BEFORE INSERT OR UPDATE OF active ON users
    FOR EACH ROW EXECUTE FUNCTION users_track_deactivation();

CREATE INDEX IF NOT EXISTS users_deactivated ON users (deactivated_at) WHERE deactivated_at IS NOT NULL;

-- NULL: keep deactivated people (the default); N: erase them N days after deactivation.
ALTER TABLE orgs ADD COLUMN erase_deactivated_after_days integer
    CHECK (erase_deactivated_after_days BETWEEN 1 AND 3650);
-- NULL: ACTIVITY_RETENTION; N: the operator's override for this org, in days.
ALTER TABLE orgs ADD COLUMN activity_retention_days integer
    CHECK (activity_retention_days BETWEEN 1 AND 36500);

-- A deleted person whose data is still to be scrubbed from outbox envelopes, stored
-- replies and activity entries. `needles` are the person's identifying strings (userName,
-- emails, names, externalId), kept only until the scrub is done (bounded: GC_INTERVAL,
-- and the outbox relay publishing the person's last events first).
CREATE TABLE erasures (
    user_id      uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    needles      text[] NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);

-- What the pruning and the erasure scrub look rows up by. IF NOT EXISTS: on a large
-- database, create them beforehand with CREATE INDEX CONCURRENTLY (same names) and this
-- migration does not lock the tables to build them (docs/data-lifecycle.md, "Upgrading").
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_user ON outbox ((envelope #>> '{payload,user_id}'));
CREATE INDEX IF NOT EXISTS outbox_org ON outbox (org_id);
CREATE INDEX IF NOT EXISTS processed_commands_processed_at ON processed_commands (processed_at);
CREATE INDEX IF NOT EXISTS processed_commands_org ON processed_commands (org_id);
CREATE INDEX IF NOT EXISTS audit_log_created_at ON audit_log (created_at);
CREATE INDEX IF NOT EXISTS audit_log_resource ON audit_log (org_id, resource_id);
