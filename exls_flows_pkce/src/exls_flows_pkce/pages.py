"""The pages the browser shows after the redirect: self-contained HTML, nothing external."""

from __future__ import annotations

from html import escape

# Sent with every page: no scripts, no external resources, no referrer, not cached.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)

_STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f5f6f8;"
    "color:#1d2330;display:flex;min-height:90vh;align-items:center;justify-content:center;"
    "margin:0}main{background:#fff;border-radius:12px;padding:2rem 2.5rem;max-width:32rem;"
    "box-shadow:0 2px 12px rgba(0,0,0,.08)}h1{font-size:1.4rem;margin:0 0 .75rem}"
    "h1.ok{color:#17803d}h1.bad{color:#b42318}p{line-height:1.5;margin:.5rem 0}"
)


def _page(title: str, lines: list[str], kind: str) -> str:
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>exls: {escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><main><h1 class="{kind}">{escape(title)}</h1>{body}</main></body></html>'
    )


def success() -> str:
    return _page(
        "You are signed in",
        ["You can close this tab and return to the terminal."],
        "ok",
    )


def failure(message: str) -> str:
    return _page("Sign-in failed", [message, "Return to the terminal for details."], "bad")


def already_handled() -> str:
    return _page(
        "Sign-in already received",
        ["This login has already been handled. Return to the terminal."],
        "bad",
    )


def see_terminal() -> str:
    """When exls stopped waiting (Ctrl+C, or an exchange that outlasted the page's wait)."""
    return _page(
        "Return to the terminal",
        ["exls stopped waiting for this page; the terminal shows how the login went."],
        "bad",
    )


def redirecting() -> str:
    return _page("Signing in", ["Taking you to the sign-in page..."], "ok")


def not_found() -> str:
    return _page("Not found", ["exls is waiting for a sign-in response at /callback only."], "bad")


def bad_request(reason: str) -> str:
    return _page(
        "Not a valid sign-in response",
        [reason, "If you are signing in, return to the terminal; the login is still waiting."],
        "bad",
    )


def rejected(title: str) -> str:
    return _page(title, ["exls refused this request."], "bad")
