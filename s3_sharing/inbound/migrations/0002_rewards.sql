-- Reward points from FI transaction files (s3_sharing/inbound/rewards/): the processed-file
-- ledger of the landing bucket, the normalised transactions, one reward row per transaction, and
-- the balances the runs keep (a table, so a balance is one indexed read; a check reconciles it
-- with the reward rows). No foreign keys between these tables: a file's rows are written by one
-- set-based transaction that makes them consistent, and per-row referential triggers cost more
-- than the load itself (a million rows: 29 s instead of 6); the no_duplicate_transactions and
-- points_reconcile checks prove what the keys would.

CREATE TABLE fi_file_ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fi text NOT NULL,
    bucket text NOT NULL,
    key text NOT NULL,
    version_id text NOT NULL,
    etag text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    landed_at timestamp with time zone NOT NULL,
    status text NOT NULL CHECK (status IN ('loaded', 'rejected')),
    reason text,
    signed_by text,  -- the fingerprint of the pinned key that signed it
    rules_version integer,
    rows_read bigint NOT NULL DEFAULT 0,
    rows_loaded bigint NOT NULL DEFAULT 0,
    rows_duplicate bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    amount_read_minor bigint NOT NULL DEFAULT 0,  -- of the rows whose amount parsed
    amount_loaded_minor bigint NOT NULL DEFAULT 0,
    amount_duplicate_minor bigint NOT NULL DEFAULT 0,
    amount_rejected_minor bigint NOT NULL DEFAULT 0,
    points bigint NOT NULL DEFAULT 0,
    error_file text,
    quarantined_as text,
    attempt integer NOT NULL DEFAULT 0,  -- 0, then 1, 2 ... for each replay
    run_id text,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (bucket, key, version_id, attempt)
);

CREATE TABLE fi_transactions (
    fi text NOT NULL,
    transaction_id text NOT NULL,
    user_id text NOT NULL,
    card_token text,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency char(3) NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    business_day date NOT NULL,
    type text NOT NULL,
    mcc char(4),
    merchant text,
    original_transaction_id text,
    file_id bigint NOT NULL,  -- fi_file_ledger.id
    loaded_at timestamp with time zone NOT NULL DEFAULT now(),
    PRIMARY KEY (fi, transaction_id)
);
CREATE INDEX fi_transactions_by_file ON fi_transactions (file_id);

CREATE TABLE reward_points (
    fi text NOT NULL,
    transaction_id text NOT NULL,
    program text NOT NULL,
    user_id text NOT NULL,
    business_day date NOT NULL,
    rules_version integer NOT NULL,
    points bigint NOT NULL,
    reason text NOT NULL CHECK (reason IN ('earned', 'capped', 'excluded', 'clawback')),
    file_id bigint NOT NULL,  -- fi_file_ledger.id
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    PRIMARY KEY (fi, transaction_id)  -- one reward row per transaction of fi_transactions
);
CREATE INDEX reward_points_by_file ON reward_points (file_id);

-- What each user earned per business day (the daily cap's running total), kept with the rows.
CREATE TABLE reward_daily_earned (
    program text NOT NULL,
    user_id text NOT NULL,
    business_day date NOT NULL,
    points bigint NOT NULL,
    PRIMARY KEY (program, user_id, business_day)
);

CREATE TABLE reward_balances (
    program text NOT NULL,
    user_id text NOT NULL,
    points bigint NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    PRIMARY KEY (program, user_id)
);
