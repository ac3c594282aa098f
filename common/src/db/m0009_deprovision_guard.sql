-- The mass-deprovisioning guard (docs/admin.md). One row per org holds its settings and
-- state and is the lock every deactivation or deletion in the org takes, so concurrent
-- workers count and trip it one at a time.
--   tripped_at:     set when the guard trips; deactivations and deletions are held until
--                   an admin approves or rejects.
--   rejected_until: after a rejection, they are refused until then (tripped_at + window).

CREATE TABLE deprovision_guards (
    org_id            uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    enabled           boolean NOT NULL DEFAULT true,
    threshold_percent integer NOT NULL DEFAULT 10,
    min_count         integer NOT NULL DEFAULT 10,
    window_minutes    integer NOT NULL DEFAULT 60,
    tripped_at        timestamptz,
    rejected_until    timestamptz
);
INSERT INTO deprovision_guards (org_id) SELECT id FROM orgs;

-- The deactivations and deletions applied within the window: what the guard counts.
CREATE TABLE deprovisions (
    org_id  uuid NOT NULL,
    user_id uuid NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deprovisions_org ON deprovisions (org_id, at);

-- The people whose deactivation or deletion is held (or was refused after a rejection).
-- `decision`: NULL while held, 'approved' (the next retry applies it), 'rejected'.
CREATE TABLE deprovision_holds (
    org_id          uuid NOT NULL,
    user_id         uuid NOT NULL,
    action          text NOT NULL,
    held_at         timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 1,
    decision        text,
    PRIMARY KEY (org_id, user_id)
);
