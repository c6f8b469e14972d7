"""`o365-assets doctor`: check configuration, credential, permissions and mailbox access, and
say in plain words what to fix."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from o365_assets.graph import (
    AuthError,
    ConfigurationError,
    GraphClient,
    GraphError,
    GraphSettings,
    MailboxNotFound,
    PermissionProblem,
)
from o365_assets.selection import RulesError, load_rules


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def settings_from_environment(data_dir: Path) -> tuple[GraphSettings, bool]:
    """The Graph settings the pipeline would use, and whether they are the demo's."""
    if os.environ.get("O365_TENANT_ID"):
        return GraphSettings.from_env(), False

    from o365_assets.demo import demo_env

    values = {**os.environ, **demo_env(data_dir)}
    if os.environ.get("O365_AUTH_MODE"):
        values["O365_AUTH_MODE"] = os.environ["O365_AUTH_MODE"]
    return GraphSettings.from_env(values), True


def run_checks(data_dir: Path) -> Iterator[Check]:
    try:
        settings, demo = settings_from_environment(data_dir)
    except ConfigurationError as exc:
        yield Check("configuration", False, f"{exc}. See .env.example for every variable.")
        return
    where = "the local emulator (demo mode: O365_TENANT_ID is unset)" if demo else "Entra"
    yield Check(
        "configuration",
        True,
        f"{settings.auth_mode.value} sign-in to {where}, tenant {settings.tenant_id}, "
        f"mailbox {settings.mailbox}, folders {', '.join(settings.folders)}",
    )

    yield _data_folder(data_dir)
    yield _rules()
    yield _database(data_dir / "o365.duckdb")

    try:
        with GraphClient(settings) as client:
            yield from _graph_checks(client, settings)
    except (AuthError, ConfigurationError) as exc:
        yield Check("credential", False, str(exc))


def _graph_checks(client: GraphClient, settings: GraphSettings) -> Iterator[Check]:
    try:
        facts = client.credential_facts()
    except (AuthError, GraphError) as exc:
        yield Check("credential", False, str(exc))
        return
    granted = ", ".join(facts.granted) or "none in the token (RBAC for Applications grants "
    granted += "" if facts.granted else "are not listed there)"
    yield Check(
        "credential",
        True,
        f"{facts.auth_mode} token for {facts.user or facts.client_id}, expires "
        f"{facts.expires_at:%Y-%m-%d %H:%M %Z}; permissions: {granted}",
    )

    try:
        access = client.check_access(settings.mailbox)
    except (PermissionProblem, MailboxNotFound, GraphError) as exc:
        yield Check("mailbox", False, str(exc))
        return
    yield Check(
        "mailbox",
        True,
        f"{access.mailbox} opens; {access.folder_name} holds {access.total_items} messages",
    )

    for name in settings.folders:
        try:
            folder = client.resolve_folder(settings.mailbox, name)
        except (MailboxNotFound, GraphError) as exc:
            yield Check(f"folder {name}", False, str(exc))
        else:
            yield Check(f"folder {name}", True, f"found ({folder.total_item_count} messages)")


def _data_folder(data_dir: Path) -> Check:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".doctor-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Check("data folder", False, f"{data_dir} is not writable ({exc}); set O365_DATA_DIR")
    return Check("data folder", True, f"{data_dir.resolve()} is writable")


def _rules() -> Check:
    try:
        rules = load_rules()
    except RulesError as exc:
        return Check("rules", False, str(exc))
    except OSError as exc:
        return Check("rules", False, f"cannot read the rules file named by O365_RULES: {exc}")
    source = os.environ.get("O365_RULES") or "built-in defaults"
    return Check(
        "rules",
        True,
        f"{source}: keeps {', '.join(rules.keep_types)}; {len(rules.rules)} rules, "
        f"{len(rules.routes)} staging routes",
    )


def _database(path: Path) -> Check:
    if not path.exists():
        return Check("database", True, f"{path} will be created by the first run")
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'mail'"
            ).fetchone()
    except duckdb.IOException as exc:
        return Check("database", False, f"{path} cannot be opened: {exc}")
    return Check("database", True, f"{path} opens ({row[0] if row else 0} mail tables)")
