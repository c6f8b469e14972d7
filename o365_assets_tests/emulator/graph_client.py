"""A plain HTTPS client for the emulator's Graph side, as the emulator's own tests use it.

Tokens come from the emulator's issuer (the same keys its Entra side signs with), so these
tests exercise Graph alone; the Entra round trip is covered by msal in `test_graph.py` and by
the third-party client tests.
"""

import hashlib
from typing import Any

import requests

from o365_assets.emulator import ThreadedEmulator
from o365_assets.emulator.state import DEMO_USER

GRAPH = "https://graph.microsoft.com"


def app_token(
    emu: ThreadedEmulator,
    client_id: str | None = None,
    roles: tuple[str, ...] = ("Mail.Read",),
    lifetime: int = 3600,
) -> str:
    """An app-only access token, as the client credentials grant issues it."""
    client_id = client_id or emu.info["client_id"]
    claims = {
        "aud": GRAPH,
        "appid": client_id,
        "azp": client_id,
        "roles": list(roles),
        "idtyp": "app",
        "oid": client_id,
        "sub": client_id,
    }
    return emu.state.issuer.issue(claims, lifetime)


def delegated_token(
    emu: ThreadedEmulator, scopes: str = "Mail.Read.Shared User.Read", upn: str = DEMO_USER
) -> str:
    """A delegated access token for a user of the demo tenant."""
    user = emu.state.users[upn]
    claims = {
        "aud": GRAPH,
        "appid": emu.info["client_id"],
        "azp": emu.info["client_id"],
        "scp": scopes,
        "upn": user.upn,
        "oid": user.object_id,
        "idtyp": "user",
        "sub": user.object_id,
    }
    return emu.state.issuer.issue(claims, 3600)


class Graph:
    """requests against `<base_url>/v1.0`, trusting only the emulator's CA."""

    def __init__(self, emu: ThreadedEmulator, token: str | None = None) -> None:
        self.emu = emu
        self.info = emu.info
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = self.info["ca_path"]
        if token is None:
            token = app_token(emu)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Graph":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> str:
        return f"{self.info['base_url']}/v1.0"

    @property
    def mailbox(self) -> str:
        return f"/users/{self.info['mailbox']}"

    def get(self, path: str, *, prefer: str | None = None, **kwargs: Any) -> requests.Response:
        """GET a path under `/v1.0`, or a whole link such as `@odata.nextLink`."""
        url = path if path.startswith("https://") else f"{self.root}{path}"
        headers = dict(kwargs.pop("headers", {}))
        if prefer:
            headers["Prefer"] = prefer
        return self.session.get(url, headers=headers, timeout=60, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(f"{self.root}{path}", timeout=60, **kwargs)

    def all_pages(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a collection, following `@odata.nextLink` whole."""
        items: list[dict[str, Any]] = []
        response = self.get(path, **kwargs)
        kwargs.pop("params", None)
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            items.extend(body["value"])
            link = body.get("@odata.nextLink")
            if not link:
                return items
            response = self.get(link, **kwargs)

    def sha256_of_value(self, path: str) -> str:
        """Stream `$value` and hash it without holding it."""
        digest = hashlib.sha256()
        with self.get(path, stream=True) as response:
            assert response.status_code == 200, response.text
            for chunk in response.iter_content(64 * 1024):
                digest.update(chunk)
        return digest.hexdigest()


def assert_graph_error(response: requests.Response, status: int, code: str | None = None) -> None:
    """The reply is a Graph error of this status (and code), with an innerError."""
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert error["message"]
    assert error["innerError"]["request-id"]
    assert error["innerError"]["date"]
    if code is not None:
        assert error["code"] == code, error
