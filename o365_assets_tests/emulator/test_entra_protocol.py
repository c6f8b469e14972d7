"""The emulator's Entra at the protocol level: documents, error shapes and the edge cases that
msal's happy paths do not reach, over real HTTPS."""

import base64
import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from o365_assets.emulator import ThreadedEmulator, entra_grants
from o365_assets.emulator.entra import redirect_allowed
from o365_assets.emulator.entra_browser import EmulatorBrowser, SignInError

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
MAIL_SHARED = "https://graph.microsoft.com/Mail.Read.Shared"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
VERIFIER = "a-pkce-verifier-that-is-long-enough-to-be-valid-0123456789"


@pytest.fixture
def info(emulator: ThreadedEmulator) -> dict[str, Any]:
    return emulator.info


@pytest.fixture
def http(info: dict[str, Any]) -> Iterator[requests.Session]:
    with requests.Session() as session:
        # REQUESTS_CA_BUNDLE would override a session's `verify` if it trusted the environment.
        session.trust_env = False
        session.verify = info["ca_path"]
        yield session


@pytest.fixture
def browser(info: dict[str, Any]) -> Iterator[EmulatorBrowser]:
    with EmulatorBrowser(info["ca_path"]) as scripted:
        yield scripted


def token_url(info: dict[str, Any], tenant: str | None = None) -> str:
    return f"{info['base_url']}/{tenant or info['tenant_id']}/oauth2/v2.0/token"


def authorize_url(info: dict[str, Any], **params: str) -> str:
    query = {
        "client_id": info["client_id"],
        "response_type": "code",
        "redirect_uri": "http://localhost:8400",
        "scope": f"{MAIL_SHARED} openid offline_access",
        "state": "opaque-state",
        **params,
    }
    return f"{info['base_url']}/{info['tenant_id']}/oauth2/v2.0/authorize?{urlencode(query)}"


def assert_entra_error(reply: requests.Response, status: int, error: str, code: int) -> None:
    body = reply.json()
    assert reply.status_code == status, body
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert body[key]


def client_assertion(info: dict[str, Any], **overrides: Any) -> str:
    """A certificate assertion signed with the demo app's key, as msal would make it."""
    pem = Path(info["cert_path"]).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    now = int(time.time())
    claims = {
        "aud": token_url(info),
        "iss": info["client_id"],
        "sub": info["client_id"],
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "exp": now + 600,
        **overrides.pop("claims", {}),
    }
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode()
    headers = {"x5t#S256": thumbprint, **overrides.pop("headers", {})}
    algorithm = overrides.pop("algorithm", "PS256")
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)  # type: ignore[arg-type]


def app_token(http: requests.Session, info: dict[str, Any], **fields: str) -> requests.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": info["client_id"],
        "scope": GRAPH_DEFAULT,
        **fields,
    }
    return http.post(token_url(info), data=data)


# -- discovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["id", "domain", "common", "organizations"])
def test_openid_configuration_points_at_the_emulator(
    info: dict[str, Any], http: requests.Session, name: str
) -> None:
    tenant = {"id": info["tenant_id"], "domain": info["tenant_domain"]}.get(name, name)

    reply = http.get(f"{info['base_url']}/{tenant}/v2.0/.well-known/openid-configuration")

    assert reply.status_code == 200
    document = reply.json()
    expected_segment = info["tenant_id"] if name in ("id", "domain") else name
    authority = f"{info['base_url']}/{expected_segment}"
    assert document["authorization_endpoint"] == f"{authority}/oauth2/v2.0/authorize"
    assert document["token_endpoint"] == f"{authority}/oauth2/v2.0/token"
    assert document["device_authorization_endpoint"] == f"{authority}/oauth2/v2.0/devicecode"
    assert document["end_session_endpoint"] == f"{authority}/oauth2/v2.0/logout"
    assert document["jwks_uri"] == f"{authority}/discovery/v2.0/keys"
    if name in ("id", "domain"):
        assert document["issuer"] == f"{info['base_url']}/{info['tenant_id']}/v2.0"
    else:
        assert document["issuer"] == f"{info['base_url']}/{{tenantid}}/v2.0"


def test_published_keys_verify_the_issued_tokens(
    info: dict[str, Any], http: requests.Session
) -> None:
    document = http.get(
        f"{info['base_url']}/{info['tenant_id']}/v2.0/.well-known/openid-configuration"
    ).json()
    token = app_token(http, info, client_secret=info["client_secret"]).json()["access_token"]

    (key,) = http.get(document["jwks_uri"]).json()["keys"]
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience="https://graph.microsoft.com",
        issuer=document["issuer"],
    )

    assert key["kid"] == jwt.get_unverified_header(token)["kid"]
    assert claims["appid"] == info["client_id"]


def test_unknown_tenant_has_entra_error_shape(info: dict[str, Any], http: requests.Session) -> None:
    discovery = http.get(
        f"{info['base_url']}/fabrikam.example/v2.0/.well-known/openid-configuration"
    )
    token = app_token(http, info, client_secret=info["client_secret"])
    unknown_token = http.post(
        token_url(info, "fabrikam.example"),
        data={"grant_type": "client_credentials", "client_id": info["client_id"]},
    )
    malformed = http.get(f"{info['base_url']}/not_a_tenant!/v2.0/.well-known/openid-configuration")

    assert_entra_error(discovery, 400, "invalid_tenant", 90002)
    assert token.status_code == 200
    assert_entra_error(unknown_token, 400, "invalid_request", 90002)
    assert_entra_error(malformed, 400, "invalid_tenant", 900023)


def test_instance_discovery_answers_as_msal_expects(
    info: dict[str, Any], http: requests.Session
) -> None:
    url = f"{info['base_url']}/common/discovery/instance"
    # msal sends the authority's host without its port.
    ours = http.get(
        url,
        params={
            "api-version": "1.1",
            "authorization_endpoint": f"https://127.0.0.1/{info['tenant_id']}/oauth2/v2.0/authorize",
        },
    )
    foreign = http.get(
        url,
        params={
            "api-version": "1.1",
            "authorization_endpoint": "https://login.fabrikam.example/common/oauth2/v2.0/authorize",
        },
    )

    assert ours.status_code == 200
    body = ours.json()
    assert body["tenant_discovery_endpoint"] == (
        f"{info['base_url']}/{info['tenant_id']}/v2.0/.well-known/openid-configuration"
    )
    assert body["api-version"] == "1.1"
    assert body["metadata"][0]["aliases"] == ["127.0.0.1"]
    assert http.get(body["tenant_discovery_endpoint"]).status_code == 200
    assert_entra_error(foreign, 400, "invalid_instance", 50049)


# -- client authentication ---------------------------------------------------------------------


def test_client_secret_by_http_basic(
    emulator: ThreadedEmulator, info: dict[str, Any], http: requests.Session
) -> None:
    reply = http.post(
        token_url(info),
        data={"grant_type": "client_credentials", "scope": GRAPH_DEFAULT},
        auth=(info["client_id"], info["client_secret"]),
    )

    assert reply.status_code == 200, reply.json()
    assert reply.headers["Cache-Control"] == "no-store"
    assert emulator.state.issuer.verify(reply.json()["access_token"])["azpacr"] == "1"


def test_errors_never_carry_the_secret(info: dict[str, Any], http: requests.Session) -> None:
    wrong_secret = "Zq8~" + "s" * 36
    as_client_id = http.post(
        token_url(info),
        data={
            "grant_type": "client_credentials",
            "client_id": wrong_secret,
            "scope": GRAPH_DEFAULT,
        },
    )
    as_secret = app_token(http, info, client_secret=wrong_secret)

    assert_entra_error(as_client_id, 400, "unauthorized_client", 700016)
    assert_entra_error(as_secret, 401, "invalid_client", 7000215)
    assert wrong_secret not in as_client_id.text
    assert wrong_secret not in as_secret.text


def test_client_credentials_without_credential(
    info: dict[str, Any], http: requests.Session
) -> None:
    assert_entra_error(app_token(http, info), 401, "invalid_client", 7000218)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"claims": {"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 4000}}, 700024),
        ({"claims": {"aud": "https://login.fabrikam.example/token"}}, 700027),
        ({"claims": {"iss": "someone-else"}}, 700021),
        ({"headers": {"x5t#S256": "bm90LXRoZS1yaWdodC10aHVtYnByaW50"}}, 700027),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "wrong-thumbprint"],
)
def test_bad_certificate_assertions_are_refused(
    info: dict[str, Any], http: requests.Session, overrides: dict[str, Any], code: int
) -> None:
    reply = app_token(
        http,
        info,
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=client_assertion(info, **overrides),
    )

    assert_entra_error(reply, 401, "invalid_client", code)


def test_assertion_with_a_symmetric_algorithm_is_refused(
    info: dict[str, Any], http: requests.Session
) -> None:
    forged = jwt.encode(
        {"aud": token_url(info), "iss": info["client_id"], "sub": info["client_id"]},
        "guessable-shared-key-of-enough-length-0123",
        algorithm="HS256",
        headers={"x5t#S256": "x"},
    )

    reply = app_token(http, info, client_assertion_type=ASSERTION_TYPE, client_assertion=forged)

    assert_entra_error(reply, 401, "invalid_client", 700027)


def test_assertion_may_reach_the_token_endpoint_by_domain(
    info: dict[str, Any], http: requests.Session
) -> None:
    domain_endpoint = token_url(info, info["tenant_domain"])
    assertion = client_assertion(info, claims={"aud": domain_endpoint}, algorithm="RS256")

    reply = http.post(
        domain_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "scope": GRAPH_DEFAULT,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )

    assert reply.status_code == 200, reply.json()


# -- token endpoint request errors -------------------------------------------------------------


def test_client_credentials_scope_rules(info: dict[str, Any], http: requests.Session) -> None:
    secret = info["client_secret"]

    short = app_token(http, info, client_secret=secret, scope="Mail.Read")
    foreign = app_token(http, info, client_secret=secret, scope="api://fabrikam/.default")
    multi_tenant = http.post(
        token_url(info, "common"),
        data={
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": secret,
            "scope": GRAPH_DEFAULT,
        },
    )
    by_app_id = app_token(
        http, info, client_secret=secret, scope="00000003-0000-0000-c000-000000000000/.default"
    )

    assert_entra_error(short, 400, "invalid_scope", 1002012)
    assert_entra_error(foreign, 400, "invalid_resource", 500011)
    assert_entra_error(multi_tenant, 400, "invalid_request", 50059)
    assert by_app_id.status_code == 200


def test_password_grant_is_not_supported(info: dict[str, Any], http: requests.Session) -> None:
    reply = http.post(
        token_url(info),
        data={
            "grant_type": "password",
            "client_id": info["client_id"],
            "username": info["user"],
            "password": "never-accepted",
            "scope": MAIL_SHARED,
        },
    )

    assert_entra_error(reply, 400, "unsupported_grant_type", 70003)
    assert "never-accepted" not in reply.text


def test_token_endpoint_wants_post(info: dict[str, Any], http: requests.Session) -> None:
    assert_entra_error(http.get(token_url(info)), 400, "invalid_request", 900561)


def test_app_without_roles_gets_a_token_without_roles(
    emulator: ThreadedEmulator, info: dict[str, Any], http: requests.Session
) -> None:
    emulator.state.apps[info["unscoped_client_id"]].application_roles.clear()
    try:
        reply = app_token(
            http,
            info,
            client_id=info["unscoped_client_id"],
            client_secret=info["unscoped_client_secret"],
        )
    finally:
        emulator.state.apps[info["unscoped_client_id"]].application_roles.append("Mail.Read")

    assert reply.status_code == 200
    assert "roles" not in emulator.state.issuer.verify(reply.json()["access_token"])


# -- /authorize --------------------------------------------------------------------------------


def test_unknown_client_and_unregistered_redirect_are_not_redirected(
    info: dict[str, Any], http: requests.Session
) -> None:
    unknown = http.get(
        authorize_url(info, client_id="11111111-2222-3333-4444-555555555555"),
        allow_redirects=False,
    )
    elsewhere = http.get(
        authorize_url(info, redirect_uri="https://attacker.example/callback"),
        allow_redirects=False,
    )
    other_path = http.get(
        authorize_url(info, redirect_uri="http://localhost:8400/other"), allow_redirects=False
    )

    for reply, code in ((unknown, 700016), (elsewhere, 50011), (other_path, 50011)):
        assert reply.status_code == 400
        assert "Location" not in reply.headers
        assert f"AADSTS{code}" in reply.text
    assert "attacker.example" not in elsewhere.headers.get("Location", "")


@pytest.mark.parametrize(
    "redirect_uri", ["http://localhost:1234", "http://127.0.0.1:65000", "http://localhost/"]
)
def test_public_client_may_use_any_loopback_port(
    info: dict[str, Any], browser: EmulatorBrowser, redirect_uri: str
) -> None:
    reply = browser.sign_in(authorize_url(info, redirect_uri=redirect_uri))

    assert reply.redirect_uri.rstrip("/") == redirect_uri.rstrip("/")
    assert reply.params["code"]


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://localhost:1234",
        "http://localhost:99999",
        "http://localhost:port",
        "http://localhost.fabrikam.example:1234",
        "http://someone@localhost:1234",
        "http://localhost:1234/#fragment",
        "http://10.0.0.1:1234",
    ],
)
def test_loopback_rule_admits_only_loopback(
    emulator: ThreadedEmulator, info: dict[str, Any], redirect_uri: str
) -> None:
    demo = emulator.state.apps[info["client_id"]]
    confidential_only = emulator.state.apps[info["unscoped_client_id"]]

    assert not redirect_allowed(demo, redirect_uri)
    assert redirect_allowed(demo, "http://127.0.0.1:1234")
    assert not redirect_allowed(confidential_only, "http://127.0.0.1:1234")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "api://fabrikam/read"}, "invalid_resource"),
        ({"scope": "https://graph.microsoft.com/Mail.Send"}, "consent_required"),
        ({"code_challenge": VERIFIER, "code_challenge_method": "S512"}, "invalid_request"),
        ({"prompt": "sometimes"}, "invalid_request"),
    ],
)
def test_authorize_errors_go_back_to_the_app_with_state(
    info: dict[str, Any], http: requests.Session, params: dict[str, str], error: str
) -> None:
    reply = http.get(authorize_url(info, **params), allow_redirects=False)

    assert reply.status_code == 302
    location = urlsplit(reply.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == "http://localhost:8400"
    answer = parse_qs(location.query)
    assert answer["error"] == [error]
    assert answer["error_description"][0].startswith("AADSTS")
    assert answer["state"] == ["opaque-state"]


def test_fragment_response_mode(info: dict[str, Any], browser: EmulatorBrowser) -> None:
    reply = browser.sign_in(authorize_url(info, response_mode="fragment"))

    assert reply.response_mode == "fragment"
    assert reply.params["code"] and reply.params["state"] == "opaque-state"


def test_plain_pkce_and_redirect_uri_must_match(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    def redeem(code: str, verifier: str, redirect_uri: str = "http://localhost:8400") -> Any:
        return http.post(
            token_url(info),
            data={
                "grant_type": "authorization_code",
                "client_id": info["client_id"],
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "scope": MAIL_SHARED,
            },
        )

    plain = browser.sign_in(authorize_url(info, code_challenge=VERIFIER))
    moved = browser.sign_in(authorize_url(info, code_challenge=VERIFIER))
    unverified = browser.sign_in(authorize_url(info, code_challenge=VERIFIER))

    good = redeem(plain.params["code"], VERIFIER)
    wrong_redirect = redeem(moved.params["code"], VERIFIER, "http://localhost:9999")
    wrong_verifier = redeem(unverified.params["code"], VERIFIER[::-1])

    assert good.status_code == 200, good.json()
    assert "refresh_token" in good.json() and "id_token" in good.json()
    assert "client_info" not in good.json()  # not asked for
    assert_entra_error(wrong_redirect, 400, "invalid_grant", 70000)
    assert_entra_error(wrong_verifier, 400, "invalid_grant", 501481)


def test_expired_authorization_code(
    info: dict[str, Any],
    http: requests.Session,
    browser: EmulatorBrowser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(entra_grants, "AUTHORIZATION_CODE_LIFETIME_S", 0)
    reply = browser.sign_in(authorize_url(info))

    redeemed = http.post(
        token_url(info),
        data={
            "grant_type": "authorization_code",
            "client_id": info["client_id"],
            "code": reply.params["code"],
            "redirect_uri": "http://localhost:8400",
        },
    )

    assert_entra_error(redeemed, 400, "invalid_grant", 70008)


def test_login_hint_narrows_the_accounts_offered(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    known = http.get(authorize_url(info, login_hint=info["user"].upper()))
    unknown = http.get(authorize_url(info, login_hint="nobody@contoso.example"))

    assert "Sign in as Megan Demo" in known.text
    assert "couldn&#x27;t find an account named nobody@contoso.example" in unknown.text
    assert "Sign in as Megan Demo" in unknown.text
    with pytest.raises(SignInError, match="no account"):
        browser.sign_in(authorize_url(info), user="nobody@contoso.example")


def test_sign_in_page_escapes_what_the_request_brings(
    info: dict[str, Any], http: requests.Session
) -> None:
    page = http.get(authorize_url(info, login_hint="<script>alert(1)</script>"))

    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "password" not in page.text.replace("without a password", "")
    assert page.headers["X-Frame-Options"] == "DENY"


def test_sign_in_form_is_single_use(info: dict[str, Any], http: requests.Session) -> None:
    page = http.get(authorize_url(info))
    handle = page.text.split("name='flow' value='")[1].split("'")[0]
    action = f"{info['base_url']}/{info['tenant_id']}/login"

    first = http.post(action, data={"flow": handle, "login": info["user"]}, allow_redirects=False)
    second = http.post(action, data={"flow": handle, "login": info["user"]}, allow_redirects=False)

    assert first.status_code == 302
    assert second.status_code == 400
    assert "expired or was already completed" in second.text


def test_logout_ends_the_browser_session(info: dict[str, Any], browser: EmulatorBrowser) -> None:
    browser.sign_in(authorize_url(info))
    logout = browser.session.get(
        f"{info['base_url']}/{info['tenant_id']}/oauth2/v2.0/logout",
        params={"post_logout_redirect_uri": "http://localhost:8400"},
        allow_redirects=False,
    )

    silent = browser.sign_in(authorize_url(info, prompt="none"))

    assert logout.status_code == 302
    assert logout.headers["Location"] == "http://localhost:8400"
    assert silent.params["error"] == "login_required"


# -- device code and userinfo ------------------------------------------------------------------


def test_device_code_page_refuses_a_wrong_code(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    started = http.post(
        f"{info['base_url']}/{info['tenant_id']}/oauth2/v2.0/devicecode",
        data={"client_id": info["client_id"], "scope": f"{MAIL_SHARED} offline_access"},
    ).json()

    with pytest.raises(SignInError, match="didn't work"):
        browser.approve_device_code(started["verification_uri"], "WRONGCODE")
    browser.approve_device_code(started["verification_uri"], started["user_code"].lower())
    with pytest.raises(SignInError, match="already used"):
        browser.approve_device_code(started["verification_uri"], started["user_code"])

    poll = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "client_id": info["client_id"],
        "device_code": started["device_code"],
    }
    first = http.post(token_url(info), data=poll)
    second = http.post(token_url(info), data=poll)

    assert started["interval"] == 5 and started["expires_in"] == 900
    assert first.status_code == 200 and "refresh_token" in first.json()
    assert_entra_error(second, 400, "invalid_grant", 70000)


def test_device_code_needs_consented_scopes(info: dict[str, Any], http: requests.Session) -> None:
    reply = http.post(
        f"{info['base_url']}/{info['tenant_id']}/oauth2/v2.0/devicecode",
        data={"client_id": info["client_id"], "scope": "https://graph.microsoft.com/Mail.Send"},
    )

    assert_entra_error(reply, 400, "invalid_grant", 65001)
    assert reply.json()["suberror"] == "consent_required"


def test_userinfo_for_a_user_token(
    info: dict[str, Any], http: requests.Session, browser: EmulatorBrowser
) -> None:
    code = browser.sign_in(authorize_url(info)).params["code"]
    tokens = http.post(
        token_url(info),
        data={
            "grant_type": "authorization_code",
            "client_id": info["client_id"],
            "code": code,
            "redirect_uri": "http://localhost:8400",
        },
    ).json()
    app_only = app_token(http, info, client_secret=info["client_secret"]).json()["access_token"]

    user = http.get(
        f"{info['base_url']}/oidc/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    app = http.get(
        f"{info['base_url']}/oidc/userinfo", headers={"Authorization": f"Bearer {app_only}"}
    )
    anonymous = http.get(f"{info['base_url']}/oidc/userinfo")

    assert user.status_code == 200
    assert user.json()["email"] == info["user"] and user.json()["name"] == "Megan Demo"
    assert app.status_code == 403
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
