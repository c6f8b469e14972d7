"""The emulator's Entra, driven by the real, unmodified msal (and azure-identity) over HTTPS.

Every scenario builds its own msal application: msal remembers HTTP error replies for a while,
and a reused application would answer from that memory instead of asking the emulator.
"""

import hashlib
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from o365_assets.emulator import ThreadedEmulator, entra_grants
from o365_assets.emulator.entra_browser import EmulatorBrowser
from o365_assets.emulator.state import self_signed_certificate

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
MAIL_SHARED = "https://graph.microsoft.com/Mail.Read.Shared"
LOOPBACK = "http://localhost:8400"


def https_session(info: dict[str, Any]) -> requests.Session:
    """A session that trusts the emulator's CA even with REQUESTS_CA_BUNDLE set, which would
    otherwise override `verify` on a session that trusts the environment."""
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_path"]
    return session


@pytest.fixture
def info(emulator: ThreadedEmulator) -> dict[str, Any]:
    return emulator.info


@pytest.fixture
def http(info: dict[str, Any]) -> Iterator[requests.Session]:
    with https_session(info) as session:
        yield session


@pytest.fixture
def browser(info: dict[str, Any]) -> Iterator[EmulatorBrowser]:
    with EmulatorBrowser(info["ca_path"]) as scripted:
        yield scripted


def confidential(
    info: dict[str, Any],
    http: requests.Session,
    credential: Any,
    *,
    client_id: str | None = None,
    authority: str | None = None,
    instance_discovery: bool | str = False,
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id or info["client_id"],
        client_credential=credential,
        authority=authority or f"{info['base_url']}/{info['tenant_id']}",
        instance_discovery=instance_discovery,
        http_client=http,
    )


def public(
    info: dict[str, Any], http: requests.Session, **kwargs: Any
) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        info["client_id"],
        authority=f"{info['base_url']}/{info['tenant_id']}",
        instance_discovery=False,
        http_client=http,
        **kwargs,
    )


def sign_in_with_code(
    app: msal.ClientApplication,
    browser: EmulatorBrowser,
    scopes: list[str],
    **flow_options: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Authorization code with PKCE: msal builds the request, the browser signs in, msal
    redeems the code. Returns the flow and msal's result."""
    options = {"redirect_uri": LOOPBACK, "response_mode": "form_post", **flow_options}
    flow = app.initiate_auth_code_flow(scopes, **options)
    reply = browser.sign_in(flow["auth_uri"])
    return flow, app.acquire_token_by_auth_code_flow(flow, reply.params)


def refresh_token_in(app: msal.ClientApplication) -> str:
    (entry,) = app.token_cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)
    return str(entry["secret"])


def make_certificate() -> tuple[str, str]:
    """A key and self-signed certificate that the tenant never registered."""
    key_pem, cert_pem = self_signed_certificate("stranger", days=30)
    return key_pem.decode(), cert_pem.decode()


# -- app-only: client credentials -------------------------------------------------------------


def test_client_secret_gives_an_app_token_graph_accepts(
    emulator: ThreadedEmulator, info: dict[str, Any], http: requests.Session
) -> None:
    app = confidential(info, http, info["client_secret"])

    result = app.acquire_token_for_client([GRAPH_DEFAULT])

    assert result.get("token_type") == "Bearer", result.get("error_description")
    assert result["expires_in"] == emulator.state.faults.token_lifetime_s
    assert "ext_expires_in" in result and result["scope"] == GRAPH_DEFAULT
    claims = emulator.state.issuer.verify(result["access_token"])
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == info["tenant_id"]
    assert claims["roles"] == ["Mail.Read"]
    assert claims["appid"] == claims["azp"] == info["client_id"]
    assert claims["idtyp"] == "app" and claims["azpacr"] == "1"
    assert claims["oid"] and "scp" not in claims and "upn" not in claims

    again = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert again["token_source"] == "cache"


def test_wrong_client_secret_is_refused_without_echoing_it(
    info: dict[str, Any], http: requests.Session
) -> None:
    wrong = "not-the-secret-" + "x" * 24
    app = confidential(info, http, wrong)

    result = app.acquire_token_for_client([GRAPH_DEFAULT])

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215:")
    assert wrong not in str(result)


def test_unknown_client_is_unauthorized(info: dict[str, Any], http: requests.Session) -> None:
    app = confidential(
        info, http, info["client_secret"], client_id="11111111-2222-3333-4444-555555555555"
    )

    result = app.acquire_token_for_client([GRAPH_DEFAULT])

    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]


def test_certificate_assertion_ps256_with_sha256_thumbprint(
    emulator: ThreadedEmulator, info: dict[str, Any], http: requests.Session
) -> None:
    pem = Path(info["cert_path"]).read_text()
    app = confidential(info, http, {"private_key": pem, "public_certificate": pem})

    result = app.acquire_token_for_client([GRAPH_DEFAULT])

    assert "access_token" in result, result.get("error_description")
    claims = emulator.state.issuer.verify(result["access_token"])
    assert claims["azpacr"] == "2" and claims["roles"] == ["Mail.Read"]


def test_certificate_assertion_rs256_with_sha1_thumbprint(
    emulator: ThreadedEmulator, info: dict[str, Any], http: requests.Session
) -> None:
    pem = Path(info["cert_path"]).read_text()
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    sha1 = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    app = confidential(info, http, {"private_key": pem, "thumbprint": sha1})

    result = app.acquire_token_for_client([GRAPH_DEFAULT])

    assert "access_token" in result, result.get("error_description")
    assert emulator.state.issuer.verify(result["access_token"])["azpacr"] == "2"


def test_certificate_not_registered_is_refused(
    info: dict[str, Any], http: requests.Session
) -> None:
    key_pem, cert_pem = make_certificate()
    app = confidential(info, http, {"private_key": key_pem, "public_certificate": cert_pem})

    result = app.acquire_token_for_client([GRAPH_DEFAULT])

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


def test_token_lifetime_follows_the_fault_knob_while_running(
    make_emulator: Callable[..., ThreadedEmulator],
) -> None:
    emu = make_emulator(mail={"messages": 0}, faults={"token_lifetime_s": 120})
    info = emu.info
    with https_session(info) as http:
        first = confidential(info, http, info["client_secret"]).acquire_token_for_client(
            [GRAPH_DEFAULT]
        )
        emu.state.faults.token_lifetime_s = 30
        second = confidential(info, http, info["client_secret"]).acquire_token_for_client(
            [GRAPH_DEFAULT]
        )

    assert first["expires_in"] == 120
    assert second["expires_in"] == 30
    claims = emu.state.issuer.verify(second["access_token"])
    assert claims["exp"] - claims["iat"] == 30


# -- delegated: authorization code with PKCE, refresh -----------------------------------------


def test_authorization_code_with_pkce_signs_in_the_demo_user(
    emulator: ThreadedEmulator,
    info: dict[str, Any],
    http: requests.Session,
    browser: EmulatorBrowser,
) -> None:
    app = public(info, http)

    flow, result = sign_in_with_code(app, browser, [MAIL_SHARED])

    assert "access_token" in result, result.get("error_description")
    assert "refresh_token" in result and "client_info" in result
    assert result["scope"].split()[0] == MAIL_SHARED
    access = emulator.state.issuer.verify(result["access_token"])
    assert access["idtyp"] == "user"
    assert access["scp"] == "Mail.Read.Shared"
    assert access["upn"] == access["preferred_username"] == info["user"]
    assert access["name"] == "Megan Demo"
    assert access["appid"] == access["azp"] == info["client_id"]
    assert access["azpacr"] == "0"

    identity = emulator.state.issuer.verify(result["id_token"], audiences=(info["client_id"],))
    # msal sends the SHA-256 of its nonce; the id token must carry it back.
    assert identity["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()
    assert identity["oid"] == access["oid"]
    assert identity["tid"] == info["tenant_id"]
    assert identity["preferred_username"] == info["user"]

    (account,) = app.get_accounts()
    assert account["username"] == info["user"]
    assert account["home_account_id"] == f"{access['oid']}.{info['tenant_id']}"


def test_authorization_code_query_mode_for_a_confidential_client(
    emulator: ThreadedEmulator,
    info: dict[str, Any],
    http: requests.Session,
    browser: EmulatorBrowser,
) -> None:
    app = confidential(info, http, info["client_secret"])

    # msal recommends form_post and says so; query mode is still what many apps use.
    with pytest.warns(UserWarning, match="form_post"):
        flow = app.initiate_auth_code_flow(
            ["Mail.Read"], redirect_uri="http://127.0.0.1:51234", response_mode="query"
        )
    reply = browser.sign_in(flow["auth_uri"])
    result = app.acquire_token_by_auth_code_flow(flow, reply.params)

    assert reply.response_mode == "query"
    assert reply.redirect_uri == "http://127.0.0.1:51234"
    assert reply.params["state"] == flow["state"]
    assert "access_token" in result, result.get("error_description")
    access = emulator.state.issuer.verify(result["access_token"])
    assert access["scp"] == "Mail.Read" and access["azpacr"] == "1"


def test_interactive_sign_in_through_msal_loopback_listener(
    emulator: ThreadedEmulator,
    info: dict[str, Any],
    http: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`acquire_token_interactive` as a desktop app runs it: msal listens on a loopback port
    and opens "the browser", here the scripted one, which signs in and posts the reply back."""
    failures: list[BaseException] = []
    threads: list[threading.Thread] = []

    def scripted_browser(url: str, *args: Any, **kwargs: Any) -> bool:
        def sign_in_and_return() -> None:
            try:
                with EmulatorBrowser(info["ca_path"]) as user_browser:
                    user_browser.deliver(user_browser.sign_in(url))
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        threads.append(threading.Thread(target=sign_in_and_return))
        threads[-1].start()
        return True

    # A BROWSER setting keeps msal away from an installed Edge; webbrowser.open is then the
    # user's browser.
    monkeypatch.setenv("BROWSER", "scripted")
    monkeypatch.setattr(webbrowser, "open", scripted_browser)
    app = public(info, http)

    result = app.acquire_token_interactive([MAIL_SHARED], timeout=30)
    for thread in threads:
        thread.join()

    assert not failures
    assert "access_token" in result, result.get("error_description")
    assert emulator.state.issuer.verify(result["access_token"])["upn"] == info["user"]
    (account,) = app.get_accounts()
    assert account["username"] == info["user"]


def test_authorization_code_is_single_use(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    app = public(info, http)
    flow = app.initiate_auth_code_flow(
        [MAIL_SHARED], redirect_uri=LOOPBACK, response_mode="form_post"
    )
    reply = browser.sign_in(flow["auth_uri"])

    first = app.acquire_token_by_auth_code_flow(dict(flow), reply.params)
    second = public(info, http).acquire_token_by_auth_code_flow(dict(flow), reply.params)

    assert "access_token" in first
    assert second["error"] == "invalid_grant"
    assert second["error_codes"] == [54005]


def test_wrong_pkce_verifier_is_refused(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    app = public(info, http)
    flow = app.initiate_auth_code_flow(
        [MAIL_SHARED], redirect_uri=LOOPBACK, response_mode="form_post"
    )
    reply = browser.sign_in(flow["auth_uri"])
    flow["code_verifier"] = "a-verifier-of-the-right-shape-but-not-the-one-msal-made-0123456789"

    result = app.acquire_token_by_auth_code_flow(flow, reply.params)

    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [501481]


def test_declined_sign_in_reaches_the_app_as_access_denied(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    app = public(info, http)
    flow = app.initiate_auth_code_flow(
        [MAIL_SHARED], redirect_uri=LOOPBACK, response_mode="form_post"
    )

    reply = browser.sign_in(flow["auth_uri"], decline=True)
    result = app.acquire_token_by_auth_code_flow(flow, reply.params)

    assert reply.params["state"] == flow["state"]
    assert result["error"] == "access_denied"
    assert result["error_description"].startswith("AADSTS65004:")


def test_refresh_rotates_and_the_old_refresh_token_stops_working(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    app = public(info, http)
    _, first = sign_in_with_code(app, browser, [MAIL_SHARED])
    old_refresh_token = refresh_token_in(app)
    (account,) = app.get_accounts()

    cached = app.acquire_token_silent([MAIL_SHARED], account=account)
    refreshed = app.acquire_token_silent([MAIL_SHARED], account=account, force_refresh=True)

    assert cached is not None and cached["token_source"] == "cache"
    assert refreshed is not None and refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != first["access_token"]
    assert refresh_token_in(app) != old_refresh_token

    replay = public(info, http).acquire_token_by_refresh_token(old_refresh_token, [MAIL_SHARED])
    assert replay["error"] == "invalid_grant"
    assert replay["error_codes"] == [70000]
    assert old_refresh_token not in str(replay)

    # msal kept the newest refresh token, so the next refresh still works.
    again = app.acquire_token_silent([MAIL_SHARED], account=account, force_refresh=True)
    assert again is not None and "access_token" in again


def test_expired_refresh_token_asks_to_sign_in_again(
    make_emulator: Callable[..., ThreadedEmulator],
) -> None:
    emu = make_emulator(mail={"messages": 0}, faults={"refresh_token_lifetime_s": 1})
    info = emu.info
    with https_session(info) as http, EmulatorBrowser(info["ca_path"]) as browser:
        app = public(info, http)
        sign_in_with_code(app, browser, [MAIL_SHARED])
        refresh_token = refresh_token_in(app)

        time.sleep(1.2)
        result = public(info, http).acquire_token_by_refresh_token(refresh_token, [MAIL_SHARED])

    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [700082]


def test_without_offline_access_there_is_no_refresh_token(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    app = public(info, http, exclude_scopes=["offline_access"])

    _, result = sign_in_with_code(app, browser, [MAIL_SHARED])

    assert "access_token" in result, result.get("error_description")
    assert "refresh_token" not in result


def test_scope_without_consent_is_refused_and_keeps_the_refresh_token(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    app = public(info, http)
    sign_in_with_code(app, browser, [MAIL_SHARED])
    (account,) = app.get_accounts()

    refused = app.acquire_token_silent_with_error(
        ["https://graph.microsoft.com/Mail.Send"], account=account
    )
    allowed = app.acquire_token_silent([MAIL_SHARED], account=account, force_refresh=True)

    assert refused is not None
    assert refused["error"] == "invalid_grant"
    assert refused["error_codes"] == [65001]
    assert refused["suberror"] == "consent_required"
    assert allowed is not None and "access_token" in allowed


def test_silent_sign_in_uses_the_browser_session(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    without_session = public(info, http).initiate_auth_code_flow(
        [MAIL_SHARED], redirect_uri=LOOPBACK, response_mode="form_post", prompt="none"
    )
    refused = browser.sign_in(without_session["auth_uri"])
    sign_in_with_code(public(info, http), browser, [MAIL_SHARED])
    app = public(info, http)
    flow = app.initiate_auth_code_flow(
        [MAIL_SHARED], redirect_uri=LOOPBACK, response_mode="form_post", prompt="none"
    )

    silent = browser.sign_in(flow["auth_uri"])
    result = app.acquire_token_by_auth_code_flow(flow, silent.params)

    assert refused.params["error"] == "login_required"
    assert "access_token" in result, result.get("error_description")


# -- device code -------------------------------------------------------------------------------


def test_device_code_flow_completed_from_another_thread(
    emulator: ThreadedEmulator, info: dict[str, Any], http: requests.Session
) -> None:
    app = public(info, http)
    flow = app.initiate_device_flow([MAIL_SHARED])
    assert flow["verification_uri"] == f"{info['base_url']}/devicelogin", flow
    assert flow["user_code"] in flow["message"]
    # msal sleeps `interval` seconds between polls; one second keeps the test short.
    flow["interval"] = 1

    pending = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    failures: list[BaseException] = []

    def approve() -> None:
        try:
            with EmulatorBrowser(info["ca_path"]) as other_browser:
                other_browser.approve_device_code(flow["verification_uri"], flow["user_code"])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    helper = threading.Thread(target=approve)
    helper.start()
    deadline = time.monotonic() + 60
    result = app.acquire_token_by_device_flow(
        flow, exit_condition=lambda _: time.monotonic() > deadline
    )
    helper.join()

    assert pending["error"] == "authorization_pending"
    assert pending["error_codes"] == [70016]
    assert not failures
    assert "access_token" in result, result.get("error_description")
    assert "refresh_token" in result
    assert emulator.state.issuer.verify(result["access_token"])["upn"] == info["user"]
    (account,) = app.get_accounts()
    assert account["username"] == info["user"]


def test_device_code_declined(info: dict[str, Any], http: requests.Session) -> None:
    app = public(info, http)
    flow = app.initiate_device_flow([MAIL_SHARED])
    with EmulatorBrowser(info["ca_path"]) as browser:
        browser.approve_device_code(flow["verification_uri"], flow["user_code"], decline=True)

    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)

    assert result["error"] == "authorization_declined"


def test_device_code_expired(
    info: dict[str, Any], http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entra_grants, "DEVICE_CODE_LIFETIME_S", 0)
    app = public(info, http)
    flow = app.initiate_device_flow([MAIL_SHARED])

    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)

    assert flow["expires_in"] == 0
    assert result["error"] == "expired_token"


# -- discovery and tenants ---------------------------------------------------------------------


def test_instance_discovery_through_the_emulator(
    info: dict[str, Any], http: requests.Session
) -> None:
    app = confidential(
        info,
        http,
        info["client_secret"],
        authority=f"{info['base_url']}/{info['tenant_domain']}",
        instance_discovery=f"{info['base_url']}/common/discovery/instance",
    )

    result = app.acquire_token_for_client([GRAPH_DEFAULT])

    assert "access_token" in result, result.get("error_description")
    # The domain resolves to the tenant id, as Entra's discovery document does.
    assert app.authority.token_endpoint.startswith(f"{info['base_url']}/{info['tenant_id']}/")


def test_instance_discovery_refuses_a_foreign_host(
    info: dict[str, Any], http: requests.Session
) -> None:
    with pytest.raises(ValueError, match="invalid_instance"):
        confidential(
            info,
            http,
            info["client_secret"],
            authority=f"https://login.contoso.invalid/{info['tenant_id']}",
            instance_discovery=f"{info['base_url']}/common/discovery/instance",
        )


def test_unknown_tenant_fails_at_discovery(info: dict[str, Any], http: requests.Session) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration") as raised:
        confidential(
            info, http, info["client_secret"], authority=f"{info['base_url']}/fabrikam.example"
        )

    # msal wraps the discovery error; the emulator's reply is the one it wraps.
    assert "AADSTS90002" in str(raised.value.__context__)


# -- azure-identity, which wraps msal with its own transport ------------------------------------


def test_azure_identity_client_secret_credential(
    emulator: ThreadedEmulator, info: dict[str, Any]
) -> None:
    from azure.identity import ClientSecretCredential

    with ClientSecretCredential(
        info["tenant_id"],
        info["client_id"],
        info["client_secret"],
        authority=info["base_url"],
        disable_instance_discovery=True,
        connection_verify=info["ca_path"],
    ) as credential:
        token = credential.get_token(GRAPH_DEFAULT)

    assert emulator.state.issuer.verify(token.token)["roles"] == ["Mail.Read"]
    assert token.expires_on > time.time()
