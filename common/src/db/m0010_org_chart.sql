-- The org chart (docs/admin.md, "The org chart"). Each person keeps the raw manager value
-- their mapping gave (`manager_ref`) and, once it names someone of the org, that person
-- (`manager_id`). A deleted manager leaves their reports waiting on the raw value again.
-- `manager_match` is the org's order of keys a raw value is tried against.

ALTER TABLE orgs ADD COLUMN manager_match text[] NOT NULL
    DEFAULT ARRAY['id', 'external_id', 'email', 'user_name', 'employee_number'];

ALTER TABLE users
    ADD COLUMN manager_ref text,
    ADD COLUMN manager_id  uuid REFERENCES users (id) ON DELETE SET NULL;

-- Direct reports (and the foreign key's lookups on delete).
CREATE INDEX users_manager_id ON users (manager_id) WHERE manager_id IS NOT NULL;
-- People waiting for their manager, found by the arriving manager's keys in one statement.
CREATE INDEX users_waiting_manager ON users (org_id, lower(manager_ref))
    WHERE manager_id IS NULL AND manager_ref IS NOT NULL;
-- The one match key without an index yet.
CREATE INDEX users_org_employee_number ON users (org_id, (profile->>'employee_number'));

-- People already stored: their mapped value, resolved by the default order (as the
-- worker does it, `worker::apply::manager`); no match leaves them waiting on it.
UPDATE users SET manager_ref = NULLIF(btrim(profile->>'manager'), '') WHERE profile ? 'manager';
UPDATE users r SET manager_id = COALESCE(
    (SELECT m.id FROM users m WHERE m.org_id = r.org_id AND m.id::text = lower(r.manager_ref)),
    (SELECT m.id FROM users m WHERE m.org_id = r.org_id AND m.external_id = r.manager_ref ORDER BY m.id LIMIT 1),
    (SELECT m.id FROM users m WHERE m.org_id = r.org_id AND lower(m.email) = lower(r.manager_ref) ORDER BY m.id LIMIT 1),
    (SELECT m.id FROM users m WHERE m.org_id = r.org_id AND lower(m.user_name) = lower(r.manager_ref)),
    (SELECT m.id FROM users m WHERE m.org_id = r.org_id AND m.profile->>'employee_number' = r.manager_ref
        ORDER BY m.id LIMIT 1))
WHERE r.manager_ref IS NOT NULL;
-- Stored data may name a cycle: everyone on one waits instead (their next change
-- resolves them again, refusing the link that would close it).
WITH RECURSIVE walk (start, cur, steps) AS (
    SELECT id, manager_id, 1 FROM users WHERE manager_id IS NOT NULL
    UNION ALL
    SELECT w.start, u.manager_id, w.steps + 1 FROM walk w JOIN users u ON u.id = w.cur
    WHERE u.manager_id IS NOT NULL AND w.cur <> w.start AND w.steps < 1000)
UPDATE users SET manager_id = NULL WHERE id IN (SELECT start FROM walk WHERE cur = start);
