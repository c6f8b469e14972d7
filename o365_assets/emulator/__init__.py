"""A local Microsoft Graph + Entra emulator that speaks the real protocol over HTTPS.

It imports nothing of the pipeline: it serves the protocol, it does not share our models.

    from o365_assets.emulator import EmulatorConfig, ThreadedEmulator
    with ThreadedEmulator(EmulatorConfig(state_dir=tmp_path)) as emu:
        emu.info["base_url"], emu.info["ca_path"], pipeline_env(emu.info)
"""

from typing import Any

from o365_assets.emulator.server import EmulatorProcess, ThreadedEmulator, read_info, serve_forever
from o365_assets.emulator.state import (
    EmulatorConfig,
    FaultSettings,
    MailboxSettings,
)

__all__ = [
    "EmulatorConfig",
    "EmulatorProcess",
    "FaultSettings",
    "MailboxSettings",
    "ThreadedEmulator",
    "pipeline_env",
    "read_info",
    "serve_forever",
]


def pipeline_env(info: dict[str, Any], auth_mode: str = "client_secret") -> dict[str, str]:
    """The `O365_*` variables that point the pipeline at a running emulator."""
    env = {
        "O365_TENANT_ID": info["tenant_id"],
        "O365_CLIENT_ID": info["client_id"],
        "O365_AUTH_MODE": auth_mode,
        "O365_MAILBOX": info["mailbox"],
        "O365_AUTHORITY_HOST": info["base_url"],
        "O365_GRAPH_ENDPOINT": info["base_url"],
        "O365_CA_BUNDLE": info["ca_path"],
    }
    if auth_mode == "client_secret":
        env["O365_CLIENT_SECRET"] = info["client_secret"]
    elif auth_mode == "certificate":
        env["O365_CLIENT_CERT_PATH"] = info["cert_path"]
    return env
