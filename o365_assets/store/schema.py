"""The DuckDB schema shared by every step of the pipeline.

Tables carry no primary-key constraints: partitions are rewritten with delete-then-insert inside
one transaction, which DuckDB's constraint checking handles badly, and uniqueness is guarded by
asset checks instead.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: the code location imports this module, and DuckDB only when used.
    import duckdb

SCHEMA_DDL = """
CREATE SCHEMA IF NOT EXISTS mail;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS staging_rows;

CREATE TABLE IF NOT EXISTS mail.messages (
    id VARCHAR NOT NULL,
    internet_message_id VARCHAR,
    mailbox VARCHAR NOT NULL,
    folder VARCHAR NOT NULL,
    received_at TIMESTAMPTZ,
    received_date DATE,
    sender VARCHAR,
    subject VARCHAR,
    has_attachments BOOLEAN,
    removed BOOLEAN NOT NULL DEFAULT FALSE,
    synced_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS mail.attachments (
    message_id VARCHAR NOT NULL,
    attachment_id VARCHAR NOT NULL,
    parent_attachment_id VARCHAR,
    name VARCHAR,
    content_type VARCHAR,
    detected_type VARCHAR,
    size BIGINT,
    kind VARCHAR NOT NULL,
    is_inline BOOLEAN,
    decision VARCHAR NOT NULL,
    reason VARCHAR,
    sha256 VARCHAR,
    path VARCHAR,
    source_url VARCHAR,
    received_date DATE,
    rules_digest VARCHAR,
    decided_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS mail.sync_state (
    mailbox VARCHAR NOT NULL,
    folder VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS mail.parse_log (
    message_id VARCHAR NOT NULL,
    attachment_id VARCHAR NOT NULL,
    sha256 VARCHAR,
    received_date DATE,
    source_name VARCHAR,
    detected_type VARCHAR,
    parser VARCHAR,
    parser_version VARCHAR,
    status VARCHAR NOT NULL,
    staging_table VARCHAR,
    rows BIGINT,
    error VARCHAR,
    parsed_at TIMESTAMPTZ NOT NULL,
    route VARCHAR,
    notes VARCHAR,
    -- The key of this file's rows in the staging_rows tables; NULL when nothing was staged.
    file_id BIGINT
);
CREATE SEQUENCE IF NOT EXISTS mail.parse_log_file_id;
"""

# Decisions a row of mail.attachments can carry.
KEPT = "kept"
SKIPPED = "skipped"
QUARANTINED = "quarantined"
FAILED = "failed"
DECISIONS = (KEPT, SKIPPED, QUARANTINED, FAILED)


# Columns added since the tables were first made, for databases made before them.
_ADDED_COLUMNS = ("ALTER TABLE mail.parse_log ADD COLUMN IF NOT EXISTS file_id BIGINT;",)


def ensure_schema(con: "duckdb.DuckDBPyConnection") -> None:
    """Create the schemas and tables the pipeline writes, if they are missing."""
    con.execute(SCHEMA_DDL)
    for statement in _ADDED_COLUMNS:
        con.execute(statement)
