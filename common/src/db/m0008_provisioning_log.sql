-- The per-org provisioning log: every SCIM request's outcome (never a body or a secret),
-- written by the worker from the ingress's `provisioning_log.entries` messages and kept
-- for PROVISIONING_LOG_RETENTION_DAYS (the worker prunes older rows). `id` is a UUIDv7
-- made by the ingress: newest sorts last, and a redelivered batch inserts nothing twice.

CREATE TABLE provisioning_log (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL,
    at             timestamptz NOT NULL,
    method         text NOT NULL,
    path           text NOT NULL,
    resource_type  text,
    resource_id    uuid,
    status         smallint NOT NULL,
    detail         text,
    duration_ms    integer NOT NULL,
    correlation_id text NOT NULL
);
CREATE INDEX provisioning_log_org ON provisioning_log (org_id, id DESC);
CREATE INDEX provisioning_log_person ON provisioning_log (org_id, resource_id, id DESC)
    WHERE resource_id IS NOT NULL;
CREATE INDEX provisioning_log_failed ON provisioning_log (org_id, id DESC) WHERE status >= 400;
CREATE INDEX provisioning_log_at ON provisioning_log (at);
