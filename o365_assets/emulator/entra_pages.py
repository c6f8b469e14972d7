"""The few HTML pages a user sees on the emulator's Entra: sign-in, device code, results.

No page ever asks for a password: the emulator's users sign in by choosing their account, so
that no password passes through this project even in a demo. Every value that came with a
request is escaped before it reaches a page.
"""

import base64
import hashlib
from collections.abc import Iterable, Mapping
from html import escape

from starlette.responses import HTMLResponse

from o365_assets.emulator.state import User

# The one script the emulator serves: it submits a form_post reply, as Entra's page does.
_AUTO_SUBMIT = "document.forms[0].submit();"
_AUTO_SUBMIT_HASH = base64.b64encode(hashlib.sha256(_AUTO_SUBMIT.encode()).digest()).decode()

_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{_AUTO_SUBMIT_HASH}'; frame-ancestors 'none'"
    ),
}

_STYLE = """
body { font-family: system-ui, sans-serif; background: #f2f2f2; margin: 0; }
main { max-width: 26rem; margin: 4rem auto; background: #fff; padding: 2rem;
       box-shadow: 0 2px 6px rgba(0,0,0,.2); }
h1 { font-size: 1.4rem; font-weight: 600; }
button { display: block; width: 100%; margin: .5rem 0; padding: .6rem; font-size: 1rem;
         cursor: pointer; }
button.primary { background: #0067b8; color: #fff; border: none; }
.notice { color: #a80000; }
.small { color: #555; font-size: .85rem; }
input[type=text] { width: 100%; padding: .5rem; font-size: 1.1rem; box-sizing: border-box; }
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _account_buttons(users: Iterable[User]) -> str:
    return "".join(
        f"<button class='primary' type='submit' name='login' value='{escape(user.upn)}'>"
        f"Sign in as {escape(user.display_name)}</button>"
        f"<p class='small'>{escape(user.upn)}</p>"
        for user in users
    )


def _notice(notice: str | None) -> str:
    return f"<p class='notice'>{escape(notice)}</p>" if notice else ""


def sign_in_page(
    *,
    action: str,
    handle: str,
    app_name: str,
    permissions: list[str],
    users: list[User],
    notice: str | None = None,
) -> HTMLResponse:
    """Choose an account to sign in to `app_name` with, or cancel."""
    asked = "".join(f"<li>{escape(name)}</li>" for name in permissions)
    body = (
        f"{_notice(notice)}"
        f"<p><b>{escape(app_name)}</b> asks to sign you in"
        + (f" and to use these permissions:</p><ul>{asked}</ul>" if asked else ".</p>")
        + f"<form method='post' action='{escape(action)}'>"
        f"<input type='hidden' name='flow' value='{escape(handle)}'>"
        f"{_account_buttons(users)}"
        "<button type='submit' name='decline' value='1'>Cancel</button>"
        "</form>"
        "<p class='small'>This is the o365-assets emulator: accounts sign in without a "
        "password.</p>"
    )
    return _page("Sign in", body)


def device_code_page(
    *, action: str, users: list[User], user_code: str = "", notice: str | None = None
) -> HTMLResponse:
    """Enter the code a device shows, and choose the account to sign it in with."""
    body = (
        f"{_notice(notice)}"
        "<p>Enter the code displayed on your app or device.</p>"
        f"<form method='post' action='{escape(action)}'>"
        f"<p><input type='text' name='otc' value='{escape(user_code)}' "
        "autocomplete='off' placeholder='Code'></p>"
        f"{_account_buttons(users)}"
        "<button type='submit' name='decline' value='1'>Cancel</button>"
        "</form>"
    )
    return _page("Enter code", body, status=400 if notice else 200)


def message_page(title: str, message: str, status: int = 200) -> HTMLResponse:
    return _page(title, f"<p>{escape(message)}</p>", status=status)


def error_page(code: int | None, message: str, status: int = 400) -> HTMLResponse:
    """What Entra shows when it cannot send the user back to the app."""
    prefix = f"AADSTS{code}: " if code is not None else ""
    body = (
        "<p>Sorry, but we're having trouble signing you in.</p>"
        f"<p class='notice'>{prefix}{escape(message)}</p>"
    )
    return _page("Sign in failed", body, status=status)


def form_post_page(redirect_uri: str, params: Mapping[str, str]) -> HTMLResponse:
    """The `response_mode=form_post` reply: a form the browser posts to the app."""
    fields = "".join(
        f"<input type='hidden' name='{escape(name)}' value='{escape(value)}'>"
        for name, value in params.items()
    )
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Working...</title></head><body>"
        f"<form method='post' action='{escape(redirect_uri)}'>{fields}"
        "<noscript><button type='submit'>Continue</button></noscript></form>"
        f"<script>{_AUTO_SUBMIT}</script></body></html>"
    )
    return HTMLResponse(html, headers=_HEADERS)
