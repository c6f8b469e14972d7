"""What the emulator knows: its settings, the tenant's app registrations and users, its keys.

The mail itself lives in `mailbox.py`; the Entra and Graph route modules read and change this
state under `EmulatorState.lock`.
"""

import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from o365_assets.emulator.tls import TlsFiles, make_tls_files
from o365_assets.emulator.tokens import TokenIssuer

# Fixed identities, so that a demo configuration and the tests read the same from run to run.
DEMO_TENANT_ID = "6f1c2b8e-0d4a-4f53-9a3e-5b0c7e2d9a10"
DEMO_TENANT_DOMAIN = "contoso.example"
DEMO_MAILBOX = "shared-inbox@contoso.example"
DEMO_CLIENT_ID = "3b2d6a0e-8f41-4c1e-9d57-0a6e4b1c2f31"
UNSCOPED_CLIENT_ID = "9c7e1f24-5a3b-4d68-8e02-7b4f6d1a3c55"
DEMO_USER = "megan@contoso.example"
DEMO_USER_OBJECT_ID = "d5f0a9c2-3e71-4b8d-a6f4-1c9e2b7d0e88"


class FaultSettings(BaseModel):
    """Knobs that make the emulator behave like a loaded or flaky Microsoft service.

    Every random choice draws from a generator seeded with `seed`, so a failing test repeats.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    latency_ms: float = Field(default=0.0, ge=0)
    bandwidth_bytes_per_s: int | None = Field(default=None, gt=0)
    concurrency_limit: int | None = Field(default=4, ge=1)
    request_budget: int | None = Field(default=10_000, ge=1)
    budget_window_s: float = Field(default=600.0, gt=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_statuses: list[int] = Field(default_factory=lambda: [429, 503, 504])
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0)
    token_lifetime_s: int = Field(default=3600, ge=1)
    # Entra's default: a refresh token unused for 90 days stops working.
    refresh_token_lifetime_s: int = Field(default=90 * 24 * 3600, ge=1)


class MailboxSettings(BaseModel):
    """How the demo mailbox is generated."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 7
    messages: int = Field(default=60, ge=0)
    days: int = Field(default=10, ge=1)
    large_attachment_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    eml_dir: Path | None = None


class EmulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    state_dir: Path
    tenant_id: str = DEMO_TENANT_ID
    tenant_domain: str = DEMO_TENANT_DOMAIN
    mailbox: str = DEMO_MAILBOX
    mail: MailboxSettings = Field(default_factory=MailboxSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)


@dataclass
class AppRegistration:
    """An Entra app registration and what the tenant granted it."""

    client_id: str
    display_name: str
    secret: str | None = None
    certificate_pem: bytes | None = None
    application_roles: list[str] = field(default_factory=list)
    # RBAC for Applications: the mailboxes an app-only token may open.
    mailboxes: list[str] = field(default_factory=list)
    delegated_scopes: list[str] = field(default_factory=list)
    public_client: bool = False
    # Where /authorize may send the user back. A registered loopback address
    # (http://localhost) admits any port, as Entra does for desktop apps.
    redirect_uris: list[str] = field(default_factory=list)


@dataclass
class User:
    object_id: str
    upn: str
    display_name: str
    # Mailboxes shared with the user, readable with the delegated Mail.Read.Shared scope.
    shared_mailboxes: list[str] = field(default_factory=list)


@dataclass
class EmulatorState:
    config: EmulatorConfig
    tls: TlsFiles
    issuer: TokenIssuer
    apps: dict[str, AppRegistration]
    users: dict[str, User]
    admin_key: str
    app_cert_path: Path
    base_url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Filled by the Graph side (`mailbox.MailStore`); typed loosely to keep this module first.
    mail: Any = None
    # Free room for the route modules' own bookkeeping (codes, refresh tokens, fault counters).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def faults(self) -> FaultSettings:
        return self.config.faults

    def info(self) -> dict[str, Any]:
        """What a client needs to reach this emulator; written to `emulator.json`."""
        demo = self.apps[DEMO_CLIENT_ID]
        unscoped = self.apps[UNSCOPED_CLIENT_ID]
        return {
            "base_url": self.base_url,
            "ca_path": str(self.tls.ca_path),
            "tenant_id": self.config.tenant_id,
            "tenant_domain": self.config.tenant_domain,
            "mailbox": self.config.mailbox,
            "client_id": demo.client_id,
            "client_secret": demo.secret,
            "cert_path": str(self.app_cert_path),
            "unscoped_client_id": unscoped.client_id,
            "unscoped_client_secret": unscoped.secret,
            "user": DEMO_USER,
            "admin_key": self.admin_key,
            "pid": os.getpid(),
        }


def build_state(config: EmulatorConfig) -> EmulatorState:
    """Make keys, certificates and the demo tenant's registrations for a new emulator."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    tls = make_tls_files(config.state_dir / "tls")
    app_cert_path, app_cert_pem = _make_app_certificate(config.state_dir / "tls")

    apps = {
        DEMO_CLIENT_ID: AppRegistration(
            client_id=DEMO_CLIENT_ID,
            display_name="o365-assets demo",
            secret=secrets.token_urlsafe(30),
            certificate_pem=app_cert_pem,
            application_roles=["Mail.Read"],
            mailboxes=[config.mailbox],
            delegated_scopes=["Mail.Read", "Mail.Read.Shared", "User.Read"],
            public_client=True,
            redirect_uris=[
                "http://localhost",
                "https://login.microsoftonline.com/common/oauth2/nativeclient",
            ],
        ),
        UNSCOPED_CLIENT_ID: AppRegistration(
            client_id=UNSCOPED_CLIENT_ID,
            display_name="app without a mailbox assignment",
            secret=secrets.token_urlsafe(30),
            application_roles=["Mail.Read"],
            mailboxes=[],
        ),
    }
    users = {
        DEMO_USER: User(
            object_id=DEMO_USER_OBJECT_ID,
            upn=DEMO_USER,
            display_name="Megan Demo",
            shared_mailboxes=[config.mailbox],
        )
    }
    return EmulatorState(
        config=config,
        tls=tls,
        # The issuer host is fixed once the port is known; see `server.py`.
        issuer=TokenIssuer(config.tenant_id, "https://127.0.0.1"),
        apps=apps,
        users=users,
        admin_key=secrets.token_urlsafe(24),
        app_cert_path=app_cert_path,
    )


def self_signed_certificate(common_name: str, days: int = 365) -> tuple[bytes, bytes]:
    """A fresh RSA key and a self-signed certificate for it, both as PEM: `(key, cert)`."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _make_app_certificate(directory: Path) -> tuple[Path, bytes]:
    """A self-signed certificate and key for the demo app's certificate credential.

    Returns the path of a PEM holding key and certificate (what `O365_CLIENT_CERT_PATH` names)
    and the certificate alone, which the tenant registers.
    """
    key_pem, cert_pem = self_signed_certificate("o365-assets demo app")
    path = directory / "demo-app.pem"
    path.write_bytes(key_pem + cert_pem)
    path.chmod(0o600)
    return path, cert_pem


def write_info(state: EmulatorState) -> Path:
    """Write `emulator.json` atomically, readable only by its owner (it holds demo secrets)."""
    path = state.config.state_dir / "emulator.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.info(), indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
