-- The directory: each person's fields (as the org's mapping wrote them, or as they edited
-- them), and the org's mapping. An org without rows uses the default mapping.

ALTER TABLE users ADD COLUMN profile jsonb NOT NULL DEFAULT '{}';

CREATE TABLE field_mappings (
    org_id         uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    field          text NOT NULL,
    scim_attribute text NOT NULL,
    policy         text NOT NULL CHECK (policy IN ('create_only', 'overwrite', 'ignore')),
    position       integer NOT NULL,
    PRIMARY KEY (org_id, field)
);

CREATE INDEX users_org_active ON users (org_id, active, id);
