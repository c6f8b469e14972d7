"""Credentials through real msal against the emulator's Entra over HTTPS: client secret,
certificate, delegated sign-in (device code, loopback with PKCE, msal's interactive flow),
silent refresh from the persisted cache, two processes refreshing at once, and failures that
say what to do without ever showing a secret."""

import json
import logging
import multiprocessing
import os
import stat
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import msal
import pytest

from o365_assets.graph import (
    AuthError,
    ConfigurationError,
    DelegatedCredential,
    GraphSettings,
    LoginRequired,
    PermissionProblem,
    build_credential,
    login,
    open_token_cache,
)
from o365_assets.graph.auth import auth_failure, build_public_application
from o365_assets.graph.tokens import unverified_claims
from o365_assets.graph.transport import Transport
from o365_assets_tests.graph.support import SettingsFor, approve_device_code, sign_in

REPO = Path(__file__).resolve().parents[2]


def signed_in(settings: GraphSettings, info: dict[str, Any]) -> None:
    """Sign in once with the device code flow, the user's part done from another thread."""

    def show(message: str) -> None:
        helper = threading.Thread(target=approve_device_code, args=(info, message))
        helper.start()
        helper.join(timeout=30)

    login(settings, device_code=True, show=show, timeout_s=60)


def test_client_secret_token_and_its_facts(emulator: Any, settings_for: SettingsFor) -> None:
    settings = settings_for(emulator.info)

    with build_credential(settings) as credential:
        token = credential.acquire_token()
        facts = credential.facts()

    assert facts.auth_mode == "client_secret"
    assert facts.tenant_id == emulator.info["tenant_id"]
    assert facts.client_id == emulator.info["client_id"]
    assert facts.granted == ["Mail.Read"]
    assert facts.audience == "https://graph.microsoft.com"
    assert facts.expires_at.timestamp() > time.time() + 600
    assert facts.token_cache == "memory"
    assert token.value not in facts.model_dump_json()
    assert token.value not in repr(token) and token.value not in str(token)


def test_certificate_credential_signs_an_assertion(
    emulator: Any, settings_for: SettingsFor
) -> None:
    settings = settings_for(emulator.info, "certificate")

    with build_credential(settings) as credential:
        claims = unverified_claims(credential.acquire_token().value)
        facts = credential.facts()

    # azpacr 2: Entra accepted a certificate assertion, not a secret.
    assert claims["azpacr"] == "2"
    assert facts.auth_mode == "certificate"
    assert facts.granted == ["Mail.Read"]


def test_a_token_is_reused_until_graph_refuses_it(emulator: Any, settings_for: SettingsFor) -> None:
    with build_credential(settings_for(emulator.info)) as credential:
        first = credential.acquire_token()
        again = credential.acquire_token()
        renewed = credential.acquire_token(refused=first)
        # A second thread that also saw the old token refused gets the renewed one.
        after = credential.acquire_token(refused=first)

    assert again is first
    assert renewed.value != first.value
    assert after is renewed


def test_wrong_secret_says_what_to_fix_and_shows_no_secret(
    emulator: Any, settings_for: SettingsFor, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng~secret~value~that~must~never~be~printed"
    settings = settings_for(emulator.info, client_secret=wrong)
    caplog.set_level(logging.DEBUG)

    with build_credential(settings) as credential, pytest.raises(AuthError) as caught:
        credential.acquire_token()

    error = caught.value
    assert error.code == "AADSTS7000215"
    assert "O365_CLIENT_SECRET" in str(error)
    shown = [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        caplog.text,
    ]
    for text in shown:
        assert wrong not in text
        assert emulator.info["client_secret"] not in text


def test_unknown_tenant_and_app_are_named(emulator: Any, settings_for: SettingsFor) -> None:
    unknown_tenant = settings_for(emulator.info, tenant_id="nosuchtenant.example")
    unknown_app = settings_for(emulator.info, client_id="00000000-0000-0000-0000-0000000000aa")

    with build_credential(unknown_tenant) as credential, pytest.raises(ConfigurationError) as t:
        credential.acquire_token()
    with build_credential(unknown_app) as credential, pytest.raises(ConfigurationError) as a:
        credential.acquire_token()

    assert "O365_TENANT_ID" in str(t.value)
    assert a.value.code == "AADSTS700016"
    assert "O365_CLIENT_ID" in str(a.value)


def test_missing_consent_names_the_permission(emulator: Any, settings_for: SettingsFor) -> None:
    settings = settings_for(emulator.info, "delegated")
    transport = Transport(settings)
    app = build_public_application(settings, transport, msal.TokenCache())

    # The demo app has no consent for Mail.ReadWrite: Entra answers AADSTS65001.
    reply = app.initiate_device_flow(scopes=["https://graph.microsoft.com/Mail.ReadWrite"])
    problem = auth_failure(reply, settings, delegated=True)
    transport.close()

    assert isinstance(problem, PermissionProblem)
    assert problem.code == "AADSTS65001"
    assert "Mail.Read.Shared" in problem.permission


def test_device_code_sign_in_then_silent_refresh(
    emulator: Any, settings_for: SettingsFor, tmp_path: Path
) -> None:
    settings = settings_for(emulator.info, "delegated")

    signed_in(settings, emulator.info)
    # A later run, in a fresh credential, refreshes silently from the persisted cache.
    with DelegatedCredential(settings) as credential:
        first = credential.acquire_token()
        refreshed = credential.acquire_token(refused=first)
        facts = credential.facts()

    assert refreshed.value != first.value
    assert facts.auth_mode == "delegated"
    assert facts.user == emulator.info["user"]
    assert "Mail.Read.Shared" in facts.granted
    mode = stat.S_IMODE(settings.token_cache_path.stat().st_mode)
    assert mode == 0o600
    cache_text = settings.token_cache_path.read_text()
    assert "RefreshToken" in cache_text


def test_loopback_sign_in_with_pkce(emulator: Any, settings_for: SettingsFor) -> None:
    settings = settings_for(emulator.info, "delegated")
    answers: list[int] = []

    def show(message: str) -> None:
        address = message.rsplit(" ", 1)[-1]
        assert "code_challenge_method=S256" in address
        helper = threading.Thread(target=lambda: answers.append(sign_in(emulator.info, address)))
        helper.start()

    facts = login(settings, open_browser=False, show=show, timeout_s=30)

    assert answers == [200]
    assert facts.user == emulator.info["user"]


def test_interactive_login_opens_the_browser(emulator: Any, tmp_path: Path) -> None:
    """`login()` as `o365-assets login` runs it: msal's acquire_token_interactive opens the
    browser named by `BROWSER`, here a script that signs in the way a person would."""
    info_path = tmp_path / "emulator.json"
    info_path.write_text(json.dumps(emulator.info))
    browser = tmp_path / "browser.sh"
    browser.write_text(
        "#!/bin/sh\n"
        f'"{sys.executable}" -m o365_assets_tests.graph.support "{info_path}" "$1" '
        f'>> "{tmp_path / "browser.log"}" 2>&1 &\n'
    )
    browser.chmod(0o700)

    from o365_assets.emulator import pipeline_env

    env = {
        **os.environ,
        **pipeline_env(emulator.info, "delegated"),
        "O365_DATA_DIR": str(tmp_path / "data"),
        "BROWSER": str(browser),
        "DISPLAY": "",
        "PYTHONPATH": str(REPO),
    }
    script = (
        "from o365_assets.graph import GraphSettings, login\n"
        "facts = login(GraphSettings.from_env(), timeout_s=60)\n"
        "print(facts.model_dump_json())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["user"] == emulator.info["user"]
    assert facts["auth_mode"] == "delegated"


def test_without_a_sign_in_the_run_says_to_log_in(emulator: Any, settings_for: SettingsFor) -> None:
    settings = settings_for(emulator.info, "delegated")

    with DelegatedCredential(settings) as credential, pytest.raises(LoginRequired) as caught:
        credential.acquire_token()

    assert "o365-assets login" in str(caught.value)


def test_an_expired_refresh_token_says_to_log_in(
    make_emulator: Any, settings_for: SettingsFor
) -> None:
    emu = make_emulator(faults={"refresh_token_lifetime_s": 1})
    settings = settings_for(emu.info, "delegated")
    signed_in(settings, emu.info)
    time.sleep(1.2)

    with DelegatedCredential(settings) as credential:
        token = credential.acquire_token()
        with pytest.raises(LoginRequired) as caught:
            credential.acquire_token(refused=token)

    assert caught.value.code == "AADSTS700082"
    assert "o365-assets login" in str(caught.value)


def test_login_is_only_for_delegated_mode(emulator: Any, settings_for: SettingsFor) -> None:
    with pytest.raises(ConfigurationError, match="delegated"):
        login(settings_for(emulator.info), device_code=True)


def _refresh_repeatedly(settings_json: str, rounds: int) -> int:
    """In a child process: force `rounds` refreshes through the shared cache."""
    settings = GraphSettings.model_validate_json(settings_json)
    refreshed = 0
    with DelegatedCredential(settings) as credential:
        token = credential.acquire_token()
        for _ in range(rounds):
            token = credential.acquire_token(refused=token)
            refreshed += 1
    return refreshed


def test_two_processes_refresh_one_cache_at_once(emulator: Any, settings_for: SettingsFor) -> None:
    settings = settings_for(emulator.info, "delegated")
    signed_in(settings, emulator.info)
    settings_json = settings.model_dump_json()

    # Each refresh spends the refresh token it redeems: without the shared lock one process
    # would redeem a token the other already spent and be told to sign in again.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        counts = pool.starmap(_refresh_repeatedly, [(settings_json, 6), (settings_json, 6)])

    assert counts == [6, 6]
    cache = json.loads(settings.token_cache_path.read_text())
    assert len(cache["RefreshToken"]) == 1
    assert len(cache["Account"]) == 1
    with DelegatedCredential(settings) as credential:
        assert credential.acquire_token(refused=credential.acquire_token()).value


def test_unencrypted_cache_is_private_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache" / "msal_token_cache.bin"
    caplog.set_level(logging.WARNING, logger="o365_assets.graph.auth")

    first = open_token_cache(path)
    second = open_token_cache(path)
    first.cache.deserialize("{}")
    first.persistence.save(first.cache.serialize())

    warnings = [r for r in caplog.records if "no encrypted store" in r.getMessage()]
    if first.storage == "encrypted":
        assert warnings == []
    else:
        # A Linux server without libsecret, as here and in CI.
        assert first.storage == second.storage == "file (owner only)"
        assert len(warnings) == 1
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
