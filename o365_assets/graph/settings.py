"""Everything the Graph client needs to know, read from the `O365_*` environment variables or
built by the Dagster layer from its resource configuration."""

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from o365_assets.graph.errors import ConfigurationError

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"

# The Graph hosts of Microsoft's clouds. A token is asked for the Graph host of the cloud in
# use; any other Graph endpoint (the emulator, a reverse proxy) fronts global Graph.
NATIONAL_GRAPH_HOSTS = frozenset(
    {
        "graph.microsoft.com",
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "microsoftgraph.chinacloudapi.cn",
    }
)

# Outlook allows at most this many requests in flight per app and mailbox.
MAILBOX_CONCURRENCY_LIMIT = 4


class AuthMode(StrEnum):
    """How the pipeline proves who it is to Entra."""

    CLIENT_SECRET = "client_secret"  # noqa: S105 - a mode name, not a secret
    CERTIFICATE = "certificate"
    DELEGATED = "delegated"


class GraphSettings(BaseModel):
    """Connection, credential and pacing settings of the Graph client.

    Secrets are `SecretStr`, so neither `repr` nor a validation error shows them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    auth_mode: AuthMode = AuthMode.CLIENT_SECRET
    client_secret: SecretStr | None = None
    cert_path: Path | None = None
    cert_passphrase: SecretStr | None = None
    mailbox: str = Field(min_length=3)
    folders: list[str] = Field(default_factory=lambda: ["inbox"], min_length=1)
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_endpoint: str = DEFAULT_GRAPH_ENDPOINT
    # The resource whose `.default` (app-only) or `Mail.Read.Shared` (delegated) scope is asked
    # for; derived from `graph_endpoint` when unset, see `scope_resource`.
    graph_resource: str | None = None
    ca_bundle: Path | None = None
    token_cache_path: Path = Path("data") / "msal_token_cache.bin"

    max_concurrency: int = Field(default=MAILBOX_CONCURRENCY_LIMIT, ge=1, le=4)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=120.0, gt=0)
    # Retries of one request (429, 503, 504, dropped connections) stop at whichever comes first.
    retry_max_attempts: int = Field(default=8, ge=1)
    retry_max_wait_s: float = Field(default=300.0, ge=0)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_cap_s: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=1000, ge=1, le=1000)
    download_chunk_bytes: int = Field(default=1024 * 1024, ge=4096)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for name in ("authority_host", "graph_endpoint"):
            url = urlsplit(getattr(self, name))
            if url.scheme != "https" or not url.hostname:
                raise ValueError(f"{name} must be an https:// URL")
        if any(ch in self.mailbox for ch in "/?#\\ "):
            raise ValueError("mailbox must be an address or an object id")
        if self.auth_mode is AuthMode.CLIENT_SECRET and not self.client_secret:
            raise ValueError("auth_mode client_secret needs client_secret (O365_CLIENT_SECRET)")
        if self.auth_mode is AuthMode.CERTIFICATE and self.cert_path is None:
            raise ValueError("auth_mode certificate needs cert_path (O365_CLIENT_CERT_PATH)")
        return self

    @property
    def authority(self) -> str:
        """The Entra authority URL msal signs in against: host plus tenant."""
        return f"{self.authority_host.rstrip('/')}/{self.tenant_id}"

    @property
    def graph_base(self) -> str:
        """Root of Graph v1.0 requests, e.g. `https://graph.microsoft.com/v1.0`."""
        return f"{self.graph_endpoint.rstrip('/')}/v1.0"

    @property
    def scope_resource(self) -> str:
        """The resource URI tokens are asked for.

        A national cloud's Graph host is its own resource; any other endpoint is taken to
        stand in for global Graph, whose resource the emulator also accepts.
        """
        if self.graph_resource:
            return self.graph_resource.rstrip("/")
        host = urlsplit(self.graph_endpoint).hostname or ""
        if host in NATIONAL_GRAPH_HOSTS:
            return f"https://{host}"
        return DEFAULT_GRAPH_ENDPOINT

    @property
    def scopes(self) -> list[str]:
        """Scopes for msal: `.default` for app-only, `Mail.Read.Shared` when delegated.

        msal adds `offline_access`, `openid` and `profile` to delegated requests itself.
        """
        if self.auth_mode is AuthMode.DELEGATED:
            return [f"{self.scope_resource}/Mail.Read.Shared"]
        return [f"{self.scope_resource}/.default"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Self:
        """Read the `O365_*` variables (see DESIGN.md); `overrides` win over the environment.

        Raises `ConfigurationError` naming what is missing or malformed, never a value.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        data_dir = Path(get("O365_DATA_DIR") or "data")
        raw: dict[str, object] = {
            "tenant_id": get("O365_TENANT_ID"),
            "client_id": get("O365_CLIENT_ID"),
            "auth_mode": get("O365_AUTH_MODE") or AuthMode.CLIENT_SECRET.value,
            "client_secret": get("O365_CLIENT_SECRET"),
            "cert_path": get("O365_CLIENT_CERT_PATH"),
            "cert_passphrase": get("O365_CLIENT_CERT_PASSPHRASE"),
            "mailbox": get("O365_MAILBOX"),
            "folders": [
                f.strip() for f in (get("O365_FOLDERS") or "inbox").split(",") if f.strip()
            ],
            "authority_host": get("O365_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST,
            "graph_endpoint": get("O365_GRAPH_ENDPOINT") or DEFAULT_GRAPH_ENDPOINT,
            "ca_bundle": get("O365_CA_BUNDLE"),
            "token_cache_path": get("O365_TOKEN_CACHE_PATH") or data_dir / "msal_token_cache.bin",
        }
        raw.update(overrides)
        return cls.validated({k: v for k, v in raw.items() if v is not None})

    @classmethod
    def validated(cls, data: Mapping[str, object]) -> Self:
        """Build settings from plain values, turning validation errors into a
        `ConfigurationError` that names fields but never echoes their values."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False, include_input=False, include_context=False):
                where = ".".join(str(part) for part in error["loc"]) or "settings"
                problems.append(f"{where}: {error['msg']}")
        # Raised outside the handler, so the validation error (whose input holds the secret)
        # is not chained as this one's context.
        raise ConfigurationError(
            "the Graph settings are incomplete or wrong: " + "; ".join(problems)
        )
