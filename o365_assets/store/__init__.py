"""DuckDB schema and queries, and the attachment file store. Knows nothing of Graph."""
