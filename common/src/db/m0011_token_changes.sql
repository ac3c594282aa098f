-- Every change that can end a SCIM token's validity is announced on the channel
-- `roster_scim_tokens` (NOTIFY, delivered when its transaction commits): a token revoked
-- or deleted, an org's provisioning switched, an org deleted, whoever makes the change (a
-- worker, an operator in psql). Each ingress keeps the tokens it has checked for a moment
-- and forgets them all when it hears this (ingress/src/tokens.rs), so a revoked token is
-- refused at once everywhere. A token created is not announced: no ingress can hold a
-- token that did not exist.

CREATE FUNCTION roster_scim_tokens_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('roster_scim_tokens', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER scim_tokens_changed
    AFTER UPDATE OR DELETE OR TRUNCATE ON scim_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION roster_scim_tokens_changed();

CREATE TRIGGER orgs_provisioning_changed
    AFTER UPDATE OF provisioning_enabled OR DELETE OR TRUNCATE ON orgs
    FOR EACH STATEMENT EXECUTE FUNCTION roster_scim_tokens_changed();
