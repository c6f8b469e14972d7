import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

if TYPE_CHECKING:
    import duckdb

    from o365_assets.graph import GraphClient, GraphSettings
    from o365_assets.selection import Rules
    from o365_assets.store.files import FileStore

DEFAULT_DATA_DIR = "data"


class GraphResource(dg.ConfigurableResource):
    """Microsoft Graph access to one shared mailbox; demo data from the emulator when no tenant
    is configured."""

    tenant_id: str | None = None
    client_id: str | None = None
    auth_mode: str = "client_secret"
    client_secret: str | None = None
    client_cert_path: str | None = None
    mailbox: str | None = None
    folders: str = "inbox"
    authority_host: str = "https://login.microsoftonline.com"
    graph_endpoint: str = "https://graph.microsoft.com"
    ca_bundle: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    max_concurrency: int = 4

    # GraphSettings, made on first use.
    _settings: Any = PrivateAttr(default=None)

    @property
    def is_demo(self) -> bool:
        return not self.tenant_id

    def settings(self) -> "GraphSettings":
        """The client settings; in demo mode the emulator is started or reused first."""
        from o365_assets.graph import GraphSettings

        if self._settings is None:
            values = self._configured_values()
            if self.is_demo:
                from o365_assets.demo import demo_env

                values |= demo_env(Path(self.data_dir))
            self._settings = GraphSettings.from_env(values, max_concurrency=self.max_concurrency)
        return self._settings

    @contextmanager
    def client(self) -> Iterator["GraphClient"]:
        from o365_assets.graph import GraphClient

        with GraphClient(self.settings()) as client:
            yield client

    def folder_names(self) -> list[str]:
        return [name.strip() for name in self.folders.split(",") if name.strip()]

    def _configured_values(self) -> dict[str, str]:
        values = {
            "O365_TENANT_ID": self.tenant_id,
            "O365_CLIENT_ID": self.client_id,
            "O365_AUTH_MODE": self.auth_mode,
            "O365_CLIENT_SECRET": self.client_secret,
            "O365_CLIENT_CERT_PATH": self.client_cert_path,
            "O365_MAILBOX": self.mailbox,
            "O365_FOLDERS": self.folders,
            "O365_AUTHORITY_HOST": self.authority_host,
            "O365_GRAPH_ENDPOINT": self.graph_endpoint,
            "O365_CA_BUNDLE": self.ca_bundle,
            "O365_DATA_DIR": self.data_dir,
        }
        return {name: value for name, value in values.items() if value}


class MailDatabaseResource(dg.ConfigurableResource):
    """The project's DuckDB file; its folder is made on first use, and every connection is
    closed when its block ends.

    Connections come from dagster-duckdb's resource, which retries while another process
    holds the file's lock. It is imported when a connection is first asked for: DuckDB takes
    longer to import than the rest of this project, and loading the code location needs
    neither.
    """

    database: str = Field(description="Path of the DuckDB file, or :memory:.")
    connection_config: dict[str, Any] = Field(
        default_factory=dict, description="DuckDB settings for each connection."
    )

    @contextmanager
    def get_connection(self) -> Iterator["duckdb.DuckDBPyConnection"]:
        from dagster_duckdb import DuckDBResource

        if self.database != ":memory:":
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        resource = DuckDBResource(database=self.database, connection_config=self.connection_config)
        with resource.get_connection() as con:
            yield con


class FileStoreResource(dg.ConfigurableResource):
    """The attachment file store: a folder by received date under the data directory."""

    data_dir: str = DEFAULT_DATA_DIR

    def store(self) -> "FileStore":
        from o365_assets.store.files import FileStore

        return FileStore(str(Path(self.data_dir) / "attachments"))


class RulesResource(dg.ConfigurableResource):
    """Which attachments to keep and where their contents are staged (a YAML file)."""

    path: str | None = None

    def rules(self) -> "Rules":
        """The rules file's content, validated; the built-in defaults without a file."""
        from o365_assets.selection import Rules, load_rules

        return load_rules(self.path) if self.path else Rules()


def _env(name: str, default: str | None = None) -> str | dg.EnvVar | None:
    """An `EnvVar` when the variable is set (so the UI shows its name, never its value)."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def data_dir() -> str:
    return os.environ.get("O365_DATA_DIR") or DEFAULT_DATA_DIR


def build_resources() -> dict[str, object]:
    directory = data_dir()
    return {
        "graph": GraphResource(
            tenant_id=_env("O365_TENANT_ID"),
            client_id=_env("O365_CLIENT_ID"),
            auth_mode=_env("O365_AUTH_MODE", "client_secret"),
            client_secret=_env("O365_CLIENT_SECRET"),
            client_cert_path=_env("O365_CLIENT_CERT_PATH"),
            mailbox=_env("O365_MAILBOX"),
            folders=_env("O365_FOLDERS", "inbox"),
            authority_host=_env("O365_AUTHORITY_HOST", "https://login.microsoftonline.com"),
            graph_endpoint=_env("O365_GRAPH_ENDPOINT", "https://graph.microsoft.com"),
            ca_bundle=_env("O365_CA_BUNDLE"),
            data_dir=directory,
        ),
        "duckdb": MailDatabaseResource(database=str(Path(directory) / "o365.duckdb")),
        "files": FileStoreResource(data_dir=directory),
        "rules": RulesResource(path=_env("O365_RULES")),
    }
