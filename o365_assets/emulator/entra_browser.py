"""A scripted browser for the emulator's sign-in pages: a user's clicks, without a person.

Tests, benchmarks and the demo sign in to the emulator the way a person does in a browser:
open the authorization URL, choose an account on the page, and carry the reply back to the
application's redirect URI. This module does exactly that over HTTPS with the emulator's CA,
reading the real pages' forms, so the pages themselves are what gets exercised.

    with EmulatorBrowser(info["ca_path"]) as browser:
        reply = browser.sign_in(flow["auth_uri"])            # the code, state, client_info
        app.acquire_token_by_auth_code_flow(flow, reply.params)
        browser.approve_device_code(flow["verification_uri"], flow["user_code"])

It works against the emulator only: real Entra asks for a password, which no code in this
project ever handles.
"""

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import requests


class SignInError(Exception):
    """The emulator showed an error page instead of letting the sign-in go on."""


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _PageReader(HTMLParser):
    """The forms of a page, and the text of its notices."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.notices: list[str] = []
        self._in_notice = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                _Form(attributes.get("action", ""), attributes.get("method", "get").upper())
            )
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "button" and self.forms and attributes.get("name"):
            self.forms[-1].buttons.append((attributes["name"], attributes.get("value", "")))
        elif tag == "p" and "notice" in attributes.get("class", "").split():
            self._in_notice = True
            self.notices.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._in_notice = False

    def handle_data(self, data: str) -> None:
        if self._in_notice:
            self.notices[-1] += data


def _read(html: str) -> _PageReader:
    reader = _PageReader()
    reader.feed(html)
    reader.close()
    return reader


@dataclass(frozen=True)
class AuthorizationReply:
    """What the emulator sends back to the application after a sign-in.

    `params` holds `code`, `state`, `client_info` and `session_state`, or `error` and
    `error_description`; it is what msal's `acquire_token_by_auth_code_flow` takes.
    """

    redirect_uri: str
    params: dict[str, str]
    response_mode: str  # "query", "fragment" or "form_post"


class EmulatorBrowser:
    """A browser with its own cookie jar, trusting the emulator's CA (and nothing from the
    environment: proxies and CA bundles from variables do not apply to loopback)."""

    def __init__(self, ca_path: str | Path, timeout: float = 10.0) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(ca_path)
        self.timeout = timeout

    def __enter__(self) -> "EmulatorBrowser":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def sign_in(
        self, authorize_url: str, *, user: str | None = None, decline: bool = False
    ) -> AuthorizationReply:
        """Open `authorize_url` and sign in as `user` (the first account offered when None),
        or cancel when `decline`. Returns the reply the application's redirect URI gets."""
        page = self.session.get(authorize_url, allow_redirects=False, timeout=self.timeout)
        reply = self._reply(page)
        if reply is not None:  # a silent sign-in (prompt=none) answers at once
            return reply

        reader = _read(page.text)
        form = next((form for form in reader.forms if form.method == "POST"), None)
        if page.status_code != 200 or form is None:
            raise SignInError(" ".join(reader.notices) or f"HTTP {page.status_code}")
        data = dict(form.fields)
        name, value = self._choose(form, user, decline)
        data[name] = value

        answer = self.session.post(
            urljoin(page.url, form.action), data=data, allow_redirects=False, timeout=self.timeout
        )
        reply = self._reply(answer)
        if reply is None:
            raise SignInError(" ".join(_read(answer.text).notices) or f"HTTP {answer.status_code}")
        return reply

    @staticmethod
    def _choose(form: _Form, user: str | None, decline: bool) -> tuple[str, str]:
        if decline:
            return "decline", "1"
        accounts = [(name, value) for name, value in form.buttons if name == "login"]
        for name, value in accounts:
            if user is None or value.lower() == user.lower():
                return name, value
        raise SignInError(f"the sign-in page offers no account {user!r}")

    def _reply(self, response: requests.Response) -> AuthorizationReply | None:
        """The authorization reply in `response`, if it is one (a redirect or a form_post)."""
        if response.status_code in (302, 303):
            location = urljoin(response.url, response.headers["Location"])
            parts = urlsplit(location)
            mode = "fragment" if parts.fragment else "query"
            params = dict(parse_qsl(parts.fragment if parts.fragment else parts.query))
            base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
            return AuthorizationReply(redirect_uri=base, params=params, response_mode=mode)

        if response.status_code == 200:
            own = urlsplit(response.url)[:2]
            for form in _read(response.text).forms:
                target = urljoin(response.url, form.action)
                if form.method == "POST" and urlsplit(target)[:2] != own:
                    return AuthorizationReply(
                        redirect_uri=target, params=dict(form.fields), response_mode="form_post"
                    )
        return None

    def deliver(self, reply: AuthorizationReply) -> requests.Response:
        """Carry the reply to the application's redirect URI (a loopback listener, say)."""
        if reply.response_mode == "form_post":
            return self.session.post(reply.redirect_uri, data=reply.params, timeout=self.timeout)
        # A browser never sends a fragment to a server; query parameters it does.
        params = reply.params if reply.response_mode == "query" else {}
        return self.session.get(reply.redirect_uri, params=params, timeout=self.timeout)

    def approve_device_code(
        self,
        verification_uri: str,
        user_code: str,
        *,
        user: str | None = None,
        decline: bool = False,
    ) -> None:
        """Enter `user_code` on the device code page and sign in as `user`, or decline."""
        page = self.session.get(verification_uri, timeout=self.timeout)
        page.raise_for_status()
        form = next(form for form in _read(page.text).forms if form.method == "POST")
        data = dict(form.fields, otc=user_code)
        name, value = self._choose(form, user, decline)
        data[name] = value

        answer = self.session.post(
            urljoin(page.url, form.action), data=data, allow_redirects=False, timeout=self.timeout
        )
        if answer.status_code != 200:
            raise SignInError(" ".join(_read(answer.text).notices) or f"HTTP {answer.status_code}")
