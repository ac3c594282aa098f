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

-- People already stored wait on the value their mapping gave; the next change of either
-- side links them.
UPDATE users SET manager_ref = NULLIF(btrim(profile->>'manager'), '') WHERE profile ? 'manager';
