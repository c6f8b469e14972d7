"""Parsing kept attachment files and staging their contents in DuckDB.

The public surface: `stage_partition` stages the files of one received date and returns a
`StagingReport`; `Route` and `ParserOptions` are the routing rules a rules file lists;
`PARSER_VERSION` and `PARSER_VERSIONS` tell a caller when files should be staged again.
"""

from o365_assets.parsing.parsers import PARSER_VERSION, PARSER_VERSIONS, parser_version
from o365_assets.parsing.routing import ParserOptions, Route, RouteMatch
from o365_assets.parsing.sources import StagingSource
from o365_assets.parsing.staging import (
    FAILED,
    LINEAGE_COLUMNS,
    QUARANTINED,
    STAGED,
    FileOutcome,
    SchemaChange,
    StagingReport,
    stage_partition,
)

__all__ = [
    "FAILED",
    "LINEAGE_COLUMNS",
    "PARSER_VERSION",
    "PARSER_VERSIONS",
    "QUARANTINED",
    "STAGED",
    "FileOutcome",
    "ParserOptions",
    "Route",
    "RouteMatch",
    "SchemaChange",
    "StagingReport",
    "StagingSource",
    "parser_version",
    "stage_partition",
]
