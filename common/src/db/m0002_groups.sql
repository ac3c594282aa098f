-- Groups (Okta Push Groups) and their members. displayName is unique per org,
-- case-insensitively: Okta and Entra find a pushed group by `displayName eq`.

CREATE TABLE groups (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    display_name text NOT NULL,
    external_id  text,
    resource     jsonb NOT NULL,
    version      bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX groups_org_display_name ON groups (org_id, lower(display_name));
CREATE INDEX groups_org_id ON groups (org_id, id);
CREATE INDEX groups_org_external_id ON groups (org_id, external_id);

CREATE TABLE group_members (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id   uuid NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);
