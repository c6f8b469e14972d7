"""Helpers for the Graph tests.

Run as a module it is the `BROWSER` msal opens during an interactive sign-in: it signs in on
the emulator's page the way a person would and carries the reply to the loopback listener.
`python -m o365_assets_tests.graph.support <emulator.json> <url>`
"""

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from o365_assets.emulator.entra_browser import EmulatorBrowser
from o365_assets.graph import GraphSettings

# The `settings_for` fixture: `settings_for(emu.info, mode="client_secret", **overrides)`.
SettingsFor = Callable[..., GraphSettings]


def approve_device_code(info: dict[str, Any], message: str) -> None:
    """Do the user's part of a device code sign-in from the message msal shows."""
    found = re.search(r"open the page (\S+) and enter the code (\S+)", message)
    assert found is not None, message
    with EmulatorBrowser(info["ca_path"]) as browser:
        browser.approve_device_code(found.group(1), found.group(2))


def sign_in(info: dict[str, Any], address: str) -> int:
    """Sign in at an authorization address and deliver the reply; the listener's status."""
    with EmulatorBrowser(info["ca_path"]) as browser:
        reply = browser.sign_in(address)
        return browser.deliver(reply).status_code


def main(argv: list[str]) -> int:
    info = json.loads(Path(argv[0]).read_text())
    return 0 if sign_in(info, argv[1]) == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
