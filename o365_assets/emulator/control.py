"""A small Python client for the emulator's admin API, over HTTPS with the emulator's CA.

control = EmulatorControl(emu.info)
added = control.add_message(
    subject="Q4", attachments=[EmulatorControl.file("q4.csv", b"a,b\\n1,2\\n", "text/csv")]
)
control.move_message(added["id"], "archive")
control.set_faults(error_rate=0.2, seed=3)
control.records(), control.stats()
"""

import base64
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import requests

ADMIN_HEADER = "X-Emulator-Admin"


class EmulatorControlError(Exception):
    """The admin API refused a call; the message says which and why."""


class EmulatorControl:
    """Drives a running emulator: add and change mail, turn fault knobs, read records and
    counters. `info` is what `emulator.json` holds (or `ThreadedEmulator.info`)."""

    def __init__(self, info: Mapping[str, Any], timeout: float = 60.0) -> None:
        self.base = f"{info['base_url']}/_emulator"
        self.timeout = timeout
        self.session = requests.Session()
        # The CA is passed explicitly: REQUESTS_CA_BUNDLE in the environment must not
        # override it, and the emulator is on loopback, so no proxy applies.
        self.session.trust_env = False
        self.session.verify = str(info["ca_path"])
        self.session.headers[ADMIN_HEADER] = str(info["admin_key"])

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "EmulatorControl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        response = self.session.request(
            method, f"{self.base}{path}", json=body, params=params, timeout=self.timeout
        )
        if response.status_code >= 400:
            try:
                detail = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                detail = response.text[:200]
            raise EmulatorControlError(f"{method} {path}: {response.status_code} {detail}")
        return response.json() if response.content else None

    # -- attachments to pass to `add_message` -------------------------------------------------

    @staticmethod
    def file(
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        is_inline: bool = False,
        content_id: str | None = None,
    ) -> dict[str, Any]:
        """A file attachment with the given bytes."""
        return {
            "name": name,
            "content_type": content_type,
            "content_base64": base64.b64encode(data).decode("ascii"),
            "is_inline": is_inline,
            "content_id": content_id,
        }

    @staticmethod
    def generated(kind: str, name: str | None = None, size: int | None = None) -> dict[str, Any]:
        """A file the emulator makes: csv, tsv, xlsx, docx, pdf, json, png, exe or large."""
        return {"generate": kind, "name": name, "size": size}

    @staticmethod
    def item(eml: bytes, name: str | None = None) -> dict[str, Any]:
        """An attached message, from its raw MIME."""
        return {"kind": "item", "name": name, "eml_base64": base64.b64encode(eml).decode()}

    @staticmethod
    def reference(name: str, source_url: str) -> dict[str, Any]:
        """A link to a shared document."""
        return {"kind": "reference", "name": name, "source_url": source_url}

    # -- mail -----------------------------------------------------------------------------

    def add_message(
        self,
        *,
        subject: str = "",
        folder: str = "inbox",
        sender: str = "Sender <sender@example.com>",
        received: datetime.datetime | None = None,
        body: str = "",
        attachments: Sequence[Mapping[str, Any]] = (),
        eml: bytes | None = None,
        mailbox: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Add a message; returns its ids (`id` immutable, `rest_id`) and attachment records."""
        spec: dict[str, Any] = {
            "folder": folder,
            "subject": subject,
            "sender": sender,
            "body": body,
            "attachments": list(attachments),
            **fields,
        }
        if received is not None:
            spec["received"] = received.isoformat()
        if eml is not None:
            spec["eml_base64"] = base64.b64encode(eml).decode("ascii")
        if mailbox is not None:
            spec["mailbox"] = mailbox
        result: dict[str, Any] = self._call("POST", "/messages", spec)
        return result

    def remove_message(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/messages/{message_id}")
        return result

    def move_message(self, message_id: str, folder: str) -> dict[str, Any]:
        """Move a message; its REST id changes, its immutable id does not."""
        result: dict[str, Any] = self._call(
            "POST", f"/messages/{message_id}/move", {"folder": folder}
        )
        return result

    def update_message(self, message_id: str, **changes: Any) -> dict[str, Any]:
        """Change subject, is_read, importance, categories or body."""
        result: dict[str, Any] = self._call("PATCH", f"/messages/{message_id}", changes)
        return result

    # -- faults, delta, records, counters -------------------------------------------------------

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/faults")
        return result

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """Change some fault knobs; budgets and random sequences start afresh."""
        result: dict[str, Any] = self._call("PUT", "/faults", knobs)
        return result

    def reset_delta(self, code: str = "SyncStateNotFound") -> dict[str, Any]:
        """Make every delta token issued so far stale: its next use answers 410 `code`."""
        result: dict[str, Any] = self._call("POST", "/reset-delta", {"code": code})
        return result

    def records(self, mailbox: str | None = None) -> list[dict[str, Any]]:
        """Every attachment the emulator holds, with size and sha256 (see `MailStore.records`)."""
        params = None if mailbox is None else {"mailbox": mailbox}
        rows: list[dict[str, Any]] = self._call("GET", "/records", params=params)["value"]
        return rows

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/stats/reset")
        return result

    def seed_problems(self) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = self._call("GET", "/seed-problems")["value"]
        return rows
