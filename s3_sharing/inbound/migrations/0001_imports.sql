-- Scheduled imports: the processed-file ledger and the entity tables of the catalog
-- (s3_sharing/inbound/catalog.py). Every entity row belongs to one import source: its business
-- key is (source, reference_code), and a parent is resolved within the same source.

CREATE TABLE import_ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    entity text NOT NULL,
    bucket text NOT NULL,
    key text NOT NULL,
    etag text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    status text NOT NULL CHECK (status IN ('imported', 'rejected')),
    rows_read bigint NOT NULL DEFAULT 0,
    rows_created bigint NOT NULL DEFAULT 0,
    rows_updated bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    rows_orphaned bigint NOT NULL DEFAULT 0,  -- of the rejected: a parent that does not exist
    attempt integer NOT NULL DEFAULT 0,  -- 0, then 1, 2 ... for each replay of this content
    error_file text,
    message text,
    run_id text,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL DEFAULT now(),
    -- The same content under the same key is imported once (unless an operator replays it); new
    -- content under it is a new import.
    UNIQUE (source, entity, bucket, key, sha256, attempt)
);
CREATE INDEX import_ledger_by_key ON import_ledger (source, entity, bucket, key, etag);

CREATE TABLE risks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    reference_code text NOT NULL,
    name text NOT NULL,
    description text,
    category text,
    likelihood bigint,
    impact bigint,
    identified_on date,
    import_id bigint NOT NULL REFERENCES import_ledger (id),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (source, reference_code)
);

CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    reference_code text NOT NULL,
    parent_id bigint REFERENCES risks (id),
    name text NOT NULL,
    occurred_on date NOT NULL,
    discovered_at timestamp with time zone,
    loss_amount numeric,
    currency text,
    description text,
    import_id bigint NOT NULL REFERENCES import_ledger (id),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (source, reference_code)
);

CREATE TABLE controls (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    reference_code text NOT NULL,
    parent_id bigint REFERENCES risks (id),
    name text NOT NULL,
    frequency text,
    automated boolean,
    owner text,
    import_id bigint NOT NULL REFERENCES import_ledger (id),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (source, reference_code)
);

CREATE TABLE customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    reference_code text NOT NULL,
    name text NOT NULL,
    document_type text NOT NULL,
    document_number text NOT NULL,
    birth_date date,
    country text,
    risk_level text,
    import_id bigint NOT NULL REFERENCES import_ledger (id),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (source, reference_code)
);

CREATE TABLE counterparties (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    reference_code text NOT NULL,
    parent_id bigint REFERENCES customers (id),
    name text NOT NULL,
    country text,
    relationship text,
    import_id bigint NOT NULL REFERENCES import_ledger (id),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (source, reference_code)
);

CREATE TABLE products (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    reference_code text NOT NULL,
    parent_id bigint REFERENCES customers (id),
    product_type text NOT NULL,
    opened_on date,
    status text,
    import_id bigint NOT NULL REFERENCES import_ledger (id),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (source, reference_code)
);

CREATE TABLE transactions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    reference_code text NOT NULL,
    parent_id bigint REFERENCES customers (id),
    booked_at timestamp with time zone NOT NULL,
    amount numeric NOT NULL,
    currency text NOT NULL,
    channel text,
    import_id bigint NOT NULL REFERENCES import_ledger (id),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    UNIQUE (source, reference_code)
);
