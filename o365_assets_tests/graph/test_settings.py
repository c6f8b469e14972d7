"""Settings from the `O365_*` variables: defaults, validation that names fields but never
values, the scope resource rule for national clouds and the emulator."""

from pathlib import Path

import pytest

from o365_assets.graph import AuthMode, ConfigurationError, GraphSettings

BASE_ENV = {
    "O365_TENANT_ID": "contoso.example",
    "O365_CLIENT_ID": "3b2d6a0e-8f41-4c1e-9d57-0a6e4b1c2f31",
    "O365_MAILBOX": "shared@contoso.example",
}


def test_defaults_follow_the_design_table(tmp_path: Path) -> None:
    env = {**BASE_ENV, "O365_CLIENT_SECRET": "s3cr3t-value", "O365_DATA_DIR": str(tmp_path)}

    settings = GraphSettings.from_env(env)

    assert settings.auth_mode is AuthMode.CLIENT_SECRET
    assert settings.folders == ["inbox"]
    assert settings.authority == "https://login.microsoftonline.com/contoso.example"
    assert settings.graph_base == "https://graph.microsoft.com/v1.0"
    assert settings.scopes == ["https://graph.microsoft.com/.default"]
    assert settings.token_cache_path == tmp_path / "msal_token_cache.bin"
    assert settings.max_concurrency == 4
    assert "s3cr3t-value" not in repr(settings)


def test_folders_are_split_and_trimmed() -> None:
    env = {**BASE_ENV, "O365_CLIENT_SECRET": "x", "O365_FOLDERS": " inbox , Inbox/Invoices ,"}

    assert GraphSettings.from_env(env).folders == ["inbox", "Inbox/Invoices"]


@pytest.mark.parametrize(
    ("endpoint", "resource"),
    [
        ("https://graph.microsoft.com", "https://graph.microsoft.com"),
        ("https://graph.microsoft.us", "https://graph.microsoft.us"),
        ("https://dod-graph.microsoft.us/", "https://dod-graph.microsoft.us"),
        ("https://microsoftgraph.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
        # The emulator, or a proxy in front of global Graph.
        ("https://127.0.0.1:8443", "https://graph.microsoft.com"),
    ],
)
def test_scope_resource_is_the_clouds_graph_host(endpoint: str, resource: str) -> None:
    env = {**BASE_ENV, "O365_CLIENT_SECRET": "x", "O365_GRAPH_ENDPOINT": endpoint}

    settings = GraphSettings.from_env(env)

    assert settings.scopes == [f"{resource}/.default"]
    assert settings.graph_base == endpoint.rstrip("/") + "/v1.0"


def test_delegated_mode_asks_for_mail_read_shared() -> None:
    env = {**BASE_ENV, "O365_AUTH_MODE": "delegated"}

    settings = GraphSettings.from_env(env)

    assert settings.scopes == ["https://graph.microsoft.com/Mail.Read.Shared"]


def test_missing_values_are_named_and_secrets_never_echoed() -> None:
    env = {
        "O365_CLIENT_ID": "id",
        "O365_CLIENT_SECRET": "do-not-print-me",
        "O365_MAILBOX": "shared@contoso.example",
        "O365_GRAPH_ENDPOINT": "http://graph.example",
    }

    with pytest.raises(ConfigurationError) as caught:
        GraphSettings.from_env(env)

    text = str(caught.value)
    assert "tenant_id: Field required" in text
    assert "do-not-print-me" not in text
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_tls_is_never_optional() -> None:
    env = {**BASE_ENV, "O365_CLIENT_SECRET": "x", "O365_GRAPH_ENDPOINT": "http://graph.example"}

    with pytest.raises(ConfigurationError, match="graph_endpoint must be an https:// URL"):
        GraphSettings.from_env(env)


@pytest.mark.parametrize(
    ("mode", "needs"),
    [("client_secret", "O365_CLIENT_SECRET"), ("certificate", "O365_CLIENT_CERT_PATH")],
)
def test_each_mode_needs_its_credential(mode: str, needs: str) -> None:
    with pytest.raises(ConfigurationError, match=needs):
        GraphSettings.from_env({**BASE_ENV, "O365_AUTH_MODE": mode})


def test_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="auth_mode"):
        GraphSettings.from_env({**BASE_ENV, "O365_AUTH_MODE": "password"})


def test_concurrency_cannot_exceed_graphs_mailbox_limit() -> None:
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        GraphSettings.from_env({**BASE_ENV, "O365_CLIENT_SECRET": "x"}, max_concurrency=5)


def test_a_mailbox_cannot_smuggle_a_path() -> None:
    env = {**BASE_ENV, "O365_CLIENT_SECRET": "x", "O365_MAILBOX": "a@b.example/../admin"}

    with pytest.raises(ConfigurationError, match="mailbox"):
        GraphSettings.from_env(env)
