-- The shared store's schema, version 1. Applied by refinery at start-up, under an advisory
-- lock (see `schema.rs`). Every rule that decides between replicas is a constraint here:
-- whichever replica takes a call, PostgreSQL decides once.
--
-- `seq`: the insertion key lists run along (oldest first, as index range scans), given by
-- an identity sequence at insert and never changed or reused. Page tokens carry the last
-- `seq` a page showed. `body`: the record as the API shows it (serde JSON, as in the
-- embedded store).
CREATE TABLE participants (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL,
    seq             bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    body            text NOT NULL
);
CREATE UNIQUE INDEX participants_by_conversation ON participants (conversation_id, seq);

-- One row per (conversation, channel, address): Twilio's uniqueness rule for v2.
CREATE TABLE participant_addresses (
    conversation_id text NOT NULL,
    channel         text NOT NULL,
    address         text NOT NULL,
    participant_id  text NOT NULL,
    PRIMARY KEY (conversation_id, channel, address)
);

CREATE TABLE service_participants (
    sid              text PRIMARY KEY,
    chat_service_sid text NOT NULL,
    conversation_sid text NOT NULL,
    identity         text,
    binding_address  text,
    binding_proxy    text,
    seq              bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    body             text NOT NULL
);
CREATE UNIQUE INDEX service_participants_by_identity
    ON service_participants (chat_service_sid, conversation_sid, identity)
    WHERE identity IS NOT NULL;
-- A binding without a proxy address conflicts with another without one: the missing proxy
-- is compared as '' (works on every PostgreSQL, unlike NULLS NOT DISTINCT).
CREATE UNIQUE INDEX service_participants_by_binding
    ON service_participants (chat_service_sid, conversation_sid, binding_address, (coalesce(binding_proxy, '')))
    WHERE binding_address IS NOT NULL;
CREATE UNIQUE INDEX service_participants_by_conversation
    ON service_participants (chat_service_sid, conversation_sid, seq);

-- Idempotency keys, of the local backend (`key` as the caller sent it) and of the twilio
-- backend (`key` prefixed with a hash of the caller's credential). `response`: the answer
-- the first create gave, replayed as is. NULL while a twilio-mode create is in flight: the
-- row is then a claim, and `resource_id` the claim's random id (see `keys.rs`).
CREATE TABLE idempotency_keys (
    key         text PRIMARY KEY,
    fingerprint bytea NOT NULL,
    resource_id text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    response    text
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Random keys, made once by the first replica that needs them and read by every other:
-- `page_token` signs page tokens (so a token one replica issued is good on every other, and
-- after restarts); `idempotency_scope` keys the hash that scopes a twilio-mode caller's
-- idempotency keys to their credential.
CREATE TABLE store_keys (
    name text PRIMARY KEY,
    key  bytea NOT NULL
);

-- Creates, one per call, run by the writer several in one transaction (one round trip and
-- one commit for the group). A create that meets a taken key, address, identity or binding
-- inserts nothing (`ON CONFLICT DO NOTHING`: when the holder is another transaction still
-- in flight, PostgreSQL waits for it and then decides), undoes what it inserted itself,
-- and answers why; so it never aborts the group's transaction, and needs no
-- subtransaction. Outcomes: ('created', body), ('replay', first response), ('reused',
-- NULL: the key was used for another request), ('conflict', holder id, and in `kind`
-- 'address', 'identity' or 'binding'), ('retry', why: the holder went away meanwhile).
-- A create's idempotency key: no row when the key is new (it is now inserted, with the
-- answer this create will give, in the create's transaction; another transaction holding
-- the key makes this wait for it, then see its row), else ('replay', the first answer) or
-- ('reused', NULL) when the key came with another request. A key past its TTL is new.
CREATE FUNCTION facade_take_key(
    p_key text, p_fingerprint bytea, p_ttl_seconds bigint, p_id text, p_body text)
RETURNS TABLE (outcome text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
    v_fingerprint bytea;
    v_response text;
BEGIN
    DELETE FROM idempotency_keys
     WHERE key = p_key AND created_at < now() - make_interval(secs => p_ttl_seconds);
    INSERT INTO idempotency_keys (key, fingerprint, resource_id, response)
         VALUES (p_key, p_fingerprint, p_id, p_body)
    ON CONFLICT (key) DO NOTHING;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT k.fingerprint, k.response INTO v_fingerprint, v_response
      FROM idempotency_keys k WHERE k.key = p_key;
    IF v_fingerprint IS DISTINCT FROM p_fingerprint THEN
        RETURN QUERY SELECT 'reused'::text, NULL::text;
    ELSE
        RETURN QUERY SELECT 'replay'::text, v_response;
    END IF;
END;
$$;

CREATE FUNCTION facade_create_participant(
    p_key text, p_fingerprint bytea, p_ttl_seconds bigint,
    p_id text, p_conversation_id text, p_body text,
    p_channels text[], p_addresses text[])
RETURNS TABLE (outcome text, detail text, kind text)
LANGUAGE plpgsql AS $$
DECLARE
    v_outcome text;
    v_detail text;
    v_holder text;
    v_inserted bigint;
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT k.outcome, k.detail INTO v_outcome, v_detail
          FROM facade_take_key(p_key, p_fingerprint, p_ttl_seconds, p_id, p_body) AS k;
        IF FOUND THEN
            RETURN QUERY SELECT v_outcome, v_detail, NULL::text;
            RETURN;
        END IF;
    END IF;
    INSERT INTO participants (id, conversation_id, body)
         VALUES (p_id, p_conversation_id, p_body);
    INSERT INTO participant_addresses (conversation_id, channel, address, participant_id)
         SELECT p_conversation_id, t.channel, t.address, p_id
           FROM unnest(p_channels, p_addresses) AS t (channel, address)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    IF v_inserted = cardinality(p_channels) THEN
        RETURN QUERY SELECT 'created'::text, p_body, NULL::text;
        RETURN;
    END IF;
    -- An address is taken: undo this create (its own rows, by their keys).
    DELETE FROM participant_addresses a
     USING unnest(p_channels, p_addresses) AS t (channel, address)
     WHERE a.conversation_id = p_conversation_id AND a.channel = t.channel
       AND a.address = t.address AND a.participant_id = p_id;
    DELETE FROM participants WHERE id = p_id;
    IF p_key IS NOT NULL THEN
        DELETE FROM idempotency_keys WHERE key = p_key;
    END IF;
    SELECT a.participant_id INTO v_holder
      FROM participant_addresses a
      JOIN unnest(p_channels, p_addresses) AS t (channel, address)
        ON a.conversation_id = p_conversation_id
       AND a.channel = t.channel AND a.address = t.address
     LIMIT 1;
    IF v_holder IS NULL THEN
        RETURN QUERY SELECT 'retry'::text, 'the address was released meanwhile'::text, NULL::text;
    ELSE
        RETURN QUERY SELECT 'conflict'::text, v_holder, 'address'::text;
    END IF;
END;
$$;

CREATE FUNCTION facade_create_service_participant(
    p_key text, p_fingerprint bytea, p_ttl_seconds bigint,
    p_sid text, p_chat_service_sid text, p_conversation_sid text,
    p_identity text, p_binding_address text, p_binding_proxy text, p_body text)
RETURNS TABLE (outcome text, detail text, kind text)
LANGUAGE plpgsql AS $$
DECLARE
    v_outcome text;
    v_detail text;
    v_holder text;
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT k.outcome, k.detail INTO v_outcome, v_detail
          FROM facade_take_key(p_key, p_fingerprint, p_ttl_seconds, p_sid, p_body) AS k;
        IF FOUND THEN
            RETURN QUERY SELECT v_outcome, v_detail, NULL::text;
            RETURN;
        END IF;
    END IF;
    -- Every unique index is an arbiter: the identity's, the binding's, the sid's.
    INSERT INTO service_participants
           (sid, chat_service_sid, conversation_sid, identity, binding_address, binding_proxy, body)
    VALUES (p_sid, p_chat_service_sid, p_conversation_sid, p_identity, p_binding_address,
            p_binding_proxy, p_body)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT 'created'::text, p_body, NULL::text;
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        DELETE FROM idempotency_keys WHERE key = p_key;
    END IF;
    SELECT s.sid INTO v_holder FROM service_participants s
     WHERE s.chat_service_sid = p_chat_service_sid AND s.conversation_sid = p_conversation_sid
       AND s.identity = p_identity;
    IF v_holder IS NOT NULL THEN
        RETURN QUERY SELECT 'conflict'::text, v_holder, 'identity'::text;
        RETURN;
    END IF;
    SELECT s.sid INTO v_holder FROM service_participants s
     WHERE s.chat_service_sid = p_chat_service_sid AND s.conversation_sid = p_conversation_sid
       AND s.binding_address = p_binding_address
       AND coalesce(s.binding_proxy, '') = coalesce(p_binding_proxy, '');
    IF v_holder IS NOT NULL THEN
        RETURN QUERY SELECT 'conflict'::text, v_holder, 'binding'::text;
    ELSE
        RETURN QUERY SELECT 'retry'::text, 'the identity or binding was released meanwhile'::text, NULL::text;
    END IF;
END;
$$;
