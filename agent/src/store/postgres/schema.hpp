// The PostgreSQL schema of the run store and queue (version 1; SCHEMA.md, "PostgreSQL"), and the
// server-side functions that make each operation one statement: one round trip, one
// transaction, and idempotent under retry (creates, appends, submits and claims carry a token
// recorded in the same transaction).
#pragma once

#include <array>

namespace wafer::store::postgres {

/// migrations[v] turns schema version v into v + 1 (version 0: no tables yet). Run inside one
/// transaction, with search_path set to the store's schema.
inline constexpr std::array<const char*, 1> migrations = {
    R"SQL(
CREATE TABLE wafer_meta (key text PRIMARY KEY, value text NOT NULL);

CREATE TABLE runs (
    id text PRIMARY KEY,
    parent_id text NOT NULL,
    agent text NOT NULL,
    task bytea NOT NULL,
    scope text NOT NULL,
    status text NOT NULL,
    stop_reason text NOT NULL,
    turns bigint NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    setup bytea NOT NULL,
    lease_owner text NOT NULL,
    lease_expires_ms bigint NOT NULL,
    create_token text NOT NULL DEFAULT '',
    row_order bigserial NOT NULL
);
CREATE INDEX runs_by_update ON runs (updated_ms DESC, row_order DESC);
CREATE INDEX runs_by_parent ON runs (parent_id) WHERE parent_id <> '';

CREATE TABLE journal (
    run_id text NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    at_ms bigint NOT NULL,
    body bytea NOT NULL,
    append_token text,
    PRIMARY KEY (run_id, seq)
);
CREATE UNIQUE INDEX journal_by_token ON journal (run_id, append_token)
    WHERE append_token IS NOT NULL;

CREATE TABLE run_queue (
    run_id text PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    generation bigint NOT NULL DEFAULT 0,
    owner text NOT NULL DEFAULT '',
    lease_expires_ms bigint NOT NULL DEFAULT 0,
    claim_token text,
    reason text NOT NULL DEFAULT '',
    submitted_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    queue_order bigserial NOT NULL
);
CREATE INDEX run_queue_open ON run_queue (queue_order) WHERE state IN ('queued', 'claimed');
CREATE INDEX run_queue_by_claim ON run_queue (claim_token) WHERE claim_token IS NOT NULL;

CREATE FUNCTION wafer_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- One append: fencing, seq assignment and the row update in one transaction. A retry with the
-- same token of an append that committed returns its last seq and changes nothing.
CREATE FUNCTION wafer_append(
    p_run text, p_owner text, p_token text, p_kinds text[], p_bodies bytea[], p_status text,
    p_stop text, p_turns bigint, p_prompt bigint, p_completion bigint, p_release boolean,
    p_retry boolean,
    OUT o_outcome text, OUT o_seq bigint, OUT o_holder text, OUT o_expires bigint,
    OUT o_now bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r runs%ROWTYPE;
    n integer := coalesce(array_length(p_kinds, 1), 0);
    last bigint;
BEGIN
    o_now := wafer_now_ms();
    SELECT * INTO r FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'not_found'; o_seq := 0; o_holder := ''; o_expires := 0;
        RETURN;
    END IF;
    o_holder := r.lease_owner;
    o_expires := r.lease_expires_ms;
    IF n > 0 AND p_retry THEN
        SELECT j.seq INTO last FROM journal j WHERE j.run_id = p_run AND j.append_token = p_token;
        IF FOUND THEN
            o_outcome := 'ok'; o_seq := last;
            RETURN;
        END IF;
    END IF;
    SELECT coalesce(max(j.seq), 0) INTO last FROM journal j WHERE j.run_id = p_run;
    IF (p_owner = '' AND r.lease_owner <> '' AND r.lease_expires_ms > o_now)
       OR (p_owner <> '' AND NOT (r.lease_owner = p_owner AND r.lease_expires_ms > o_now)) THEN
        -- A retried append without entries whose first attempt released the lease finds it
        -- free: its update is idempotent, so it counts as done.
        IF NOT (p_retry AND n = 0 AND p_release AND r.lease_owner = '') THEN
            o_outcome := 'refused'; o_seq := last;
            RETURN;
        END IF;
    END IF;
    IF n > 0 THEN
        INSERT INTO journal (run_id, seq, kind, at_ms, body, append_token)
        SELECT p_run, last + i, p_kinds[i], o_now, p_bodies[i],
               CASE WHEN i = n THEN p_token END
        FROM generate_subscripts(p_kinds, 1) AS i;
    END IF;
    UPDATE runs SET
        status = coalesce(p_status, status),
        stop_reason = coalesce(p_stop, stop_reason),
        turns = coalesce(p_turns, turns),
        prompt_tokens = coalesce(p_prompt, prompt_tokens),
        completion_tokens = coalesce(p_completion, completion_tokens),
        updated_ms = o_now,
        lease_owner = CASE WHEN p_release AND p_owner <> '' AND lease_owner = p_owner
                           THEN '' ELSE lease_owner END,
        lease_expires_ms = CASE WHEN p_release AND p_owner <> '' AND lease_owner = p_owner
                                THEN 0 ELSE lease_expires_ms END
    WHERE id = p_run;
    o_outcome := 'ok';
    o_seq := last + n;
END $$;

CREATE FUNCTION wafer_acquire_lease(p_run text, p_owner text, p_ttl bigint, p_take_over text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r runs%ROWTYPE;
    t bigint := wafer_now_ms();
BEGIN
    SELECT * INTO r FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF r.lease_owner <> '' AND r.lease_owner <> p_owner AND r.lease_expires_ms > t
       AND (p_take_over = '' OR r.lease_owner <> p_take_over) THEN
        RETURN 'held';
    END IF;
    UPDATE runs SET lease_owner = p_owner,
        lease_expires_ms = CASE WHEN p_ttl > 9223372036854775807 - t
                                THEN 9223372036854775807 ELSE t + greatest(p_ttl, 0) END
    WHERE id = p_run;
    RETURN 'ok';
END $$;

-- Submits a run: its row (running, no lease) and its queue entry, and wakes the listeners.
CREATE FUNCTION wafer_submit(
    p_id text, p_parent text, p_agent text, p_task bytea, p_scope text, p_setup bytea,
    p_max integer, p_token text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t bigint := wafer_now_ms();
BEGIN
    INSERT INTO runs (id, parent_id, agent, task, scope, status, stop_reason, turns,
                      prompt_tokens, completion_tokens, created_ms, updated_ms, setup,
                      lease_owner, lease_expires_ms, create_token)
    VALUES (p_id, p_parent, p_agent, p_task, p_scope, 'running', '', 0, 0, 0, t, t, p_setup,
            '', 0, p_token)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        IF (SELECT create_token FROM runs WHERE id = p_id) = p_token THEN
            RETURN 'ok';
        END IF;
        RETURN 'exists';
    END IF;
    INSERT INTO run_queue (run_id, state, max_attempts, submitted_ms, updated_ms)
    VALUES (p_id, 'queued', greatest(p_max, 1), t, t);
    PERFORM pg_notify(current_schema() || '.run_queue', p_id);
    RETURN 'ok';
END $$;

-- Claims the oldest queued run, or one whose claim expired (its worker died or hung). One that
-- already lost max_attempts claims that way is failed instead (a poison run). The owner is
-- WORKER#GENERATION, the fencing token: it becomes the run's lease owner.
CREATE FUNCTION wafer_claim(p_worker text, p_ttl bigint, p_token text)
RETURNS TABLE (o_run text, o_owner text, o_generation bigint, o_attempt integer,
               o_expires bigint, o_task bytea, o_setup bytea, o_agent text, o_parent text,
               o_scope text)
LANGUAGE plpgsql AS $$
DECLARE
    q run_queue%ROWTYPE;
    t bigint;
BEGIN
    RETURN QUERY
        SELECT c.run_id, c.owner, c.generation, c.attempts, c.lease_expires_ms, r.task,
               r.setup, r.agent, r.parent_id, r.scope
        FROM run_queue c JOIN runs r ON r.id = c.run_id
        WHERE c.claim_token = p_token AND c.state = 'claimed';
    IF FOUND THEN
        RETURN;
    END IF;
    LOOP
        t := wafer_now_ms();
        SELECT * INTO q FROM run_queue c
        WHERE c.state = 'queued' OR (c.state = 'claimed' AND c.lease_expires_ms <= t)
        ORDER BY c.queue_order LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        IF q.state = 'claimed' AND q.attempts >= q.max_attempts THEN
            UPDATE run_queue SET state = 'failed', updated_ms = t, lease_expires_ms = 0,
                claim_token = NULL,
                reason = format('its worker lost the claim %s times without finishing it '
                                '(crashed or hung; the last owner was %s)', q.attempts, q.owner)
            WHERE run_id = q.run_id;
            UPDATE runs SET status = 'finished', stop_reason = 'error', lease_owner = '',
                lease_expires_ms = 0, updated_ms = t
            WHERE id = q.run_id;
            CONTINUE;
        END IF;
        UPDATE run_queue SET state = 'claimed', attempts = attempts + 1,
            generation = generation + 1, owner = p_worker || '#' || (generation + 1),
            lease_expires_ms = t + greatest(p_ttl, 0), claim_token = p_token, updated_ms = t
        WHERE run_id = q.run_id;
        UPDATE runs SET lease_owner = p_worker || '#' || (q.generation + 1),
            lease_expires_ms = t + greatest(p_ttl, 0)
        WHERE id = q.run_id;
        RETURN QUERY
            SELECT c.run_id, c.owner, c.generation, c.attempts, c.lease_expires_ms, r.task,
                   r.setup, r.agent, r.parent_id, r.scope
            FROM run_queue c JOIN runs r ON r.id = c.run_id
            WHERE c.run_id = q.run_id;
        RETURN;
    END LOOP;
END $$;

-- Renews a claim and the run's lease; 0 if the claim is no longer this owner's.
CREATE FUNCTION wafer_heartbeat(p_run text, p_owner text, p_ttl bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    t bigint := wafer_now_ms();
BEGIN
    UPDATE runs SET lease_owner = p_owner, lease_expires_ms = t + greatest(p_ttl, 0)
    WHERE id = p_run AND (lease_owner = p_owner OR lease_owner = '' OR lease_expires_ms <= t)
      AND EXISTS (SELECT 1 FROM run_queue c WHERE c.run_id = p_run AND c.owner = p_owner
                  AND c.state = 'claimed');
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    UPDATE run_queue SET lease_expires_ms = t + greatest(p_ttl, 0), updated_ms = t
    WHERE run_id = p_run;
    RETURN t + greatest(p_ttl, 0);
END $$;

-- Ends a claim: done, failed (the run is finished with an error) or queued again (released,
-- the attempt not counted). False if the claim is not this owner's any more.
CREATE FUNCTION wafer_finish(p_run text, p_owner text, p_state text, p_reason text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    t bigint := wafer_now_ms();
BEGIN
    UPDATE run_queue SET state = p_state, reason = p_reason, lease_expires_ms = 0,
        claim_token = NULL, updated_ms = t,
        attempts = CASE WHEN p_state = 'queued' THEN greatest(attempts - 1, 0) ELSE attempts END
    WHERE run_id = p_run AND owner = p_owner AND state = 'claimed';
    IF NOT FOUND THEN
        -- A retry of a finish that committed.
        RETURN EXISTS (SELECT 1 FROM run_queue c WHERE c.run_id = p_run AND c.owner = p_owner
                       AND c.state = p_state);
    END IF;
    UPDATE runs SET lease_owner = '', lease_expires_ms = 0
    WHERE id = p_run AND lease_owner = p_owner;
    IF p_state = 'failed' THEN
        UPDATE runs SET status = 'finished', stop_reason = 'error', updated_ms = t
        WHERE id = p_run AND status <> 'finished';
    ELSIF p_state = 'queued' THEN
        PERFORM pg_notify(current_schema() || '.run_queue', p_run);
    END IF;
    RETURN true;
END $$;
)SQL",
};

} // namespace wafer::store::postgres
