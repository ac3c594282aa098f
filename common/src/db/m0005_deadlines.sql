-- Issue 13: a command is applied only before its deadline, and a caller that stopped
-- waiting can learn for certain whether it was (docs/reliability.md, "Every answer is the truth").

-- True when the command may still commit: taken by the worker in the statement just before
-- COMMIT. It holds a transaction lock on the command id until the commit, so the ingress's
-- fence (the same lock, then a read) waits for a commit under way instead of missing it,
-- and both sides read one clock: PostgreSQL's.
CREATE FUNCTION roster_before_deadline(command_id uuid, apply_by timestamptz)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF apply_by IS NULL THEN
        RETURN true;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(command_id::text, 0));
    RETURN clock_timestamp() <= apply_by;
END
$$;

-- When a person was first active in the directory: an invite is due then, once.
ALTER TABLE users ADD COLUMN activated_at timestamptz;
UPDATE users u SET activated_at = created_at
 WHERE active OR EXISTS (SELECT 1 FROM invites i WHERE i.user_id = u.id);

-- An outbox row the relay cannot read is kept and counted, never marked published.
ALTER TABLE outbox ADD COLUMN unreadable_at timestamptz;
