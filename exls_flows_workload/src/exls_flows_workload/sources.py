"""Where a CI job's own identity token comes from: GitHub Actions, a variable, a file.

The token (a JWT the CI platform signed) and GitHub's request token are secrets: they never
appear in a message, a log or a file written here; errors name the variable or path instead.

* GitHub Actions: a job with ``permissions: id-token: write`` has
  ``ACTIONS_ID_TOKEN_REQUEST_URL`` (which already carries a query string) and
  ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``; ``GET $URL&audience=AUD`` with
  ``Authorization: bearer $TOKEN`` answers ``{"value": "<JWT>"}``.
* A variable the user names (``token_env``): GitLab CI's ``id_tokens:``, Buildkite, CircleCI.
* A file (``token_file``): a Kubernetes projected service account token, any platform;
  read again on each use, since the kubelet rotates it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from exls_core.plugin import FlowFailed

if TYPE_CHECKING:
    import requests

REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 (a variable's name)
PERMISSION_FIX = "add `permissions: id-token: write` to the workflow or job"
MAX_TOKEN = 64 * 1024  # a JWT larger than this is not a CI token


class NoSource(Exception):
    """No token source here; the message says why (for ``exls auth flows``). ``ci``: this
    looks like a CI job that should have one (worth saying at login too)."""

    def __init__(self, reason: str, *, ci: bool = True) -> None:
        super().__init__(reason)
        self.ci = ci


@dataclass(frozen=True)
class Source:
    """One way to get the CI token; ``where`` names it for people, never its value."""

    kind: str  # "github", "env" or "file"
    where: str

    def describe(self) -> str:
        return {
            "github": "a GitHub Actions ID token",
            "env": f"a CI token in {self.where}",
            "file": f"a token file ({self.where})",
        }[self.kind]


def find_source(
    environ: Mapping[str, str], *, token_env: str | None, token_file: str | None
) -> Source:
    """The source to use: a named variable or file first (the user said so), else GitHub
    Actions; NoSource with the reason (and the fix) otherwise. No I/O: cheap enough for the
    availability check."""
    if token_env:
        if not environ.get(token_env, "").strip():
            raise NoSource(f"the variable {token_env} (EXLS_AUTH_WORKLOAD_TOKEN_ENV) is not set")
        return Source("env", token_env)
    if token_file:
        return Source("file", token_file)
    url, token = environ.get(REQUEST_URL, ""), environ.get(REQUEST_TOKEN, "")
    if url and token:
        return Source("github", REQUEST_URL)
    if environ.get("GITHUB_ACTIONS") == "true":
        missing = " and ".join(n for n, v in ((REQUEST_URL, url), (REQUEST_TOKEN, token)) if not v)
        raise NoSource(
            f"GitHub Actions gave this job no ID token ({missing} unset): {PERMISSION_FIX}"
        )
    raise NoSource(
        "no workload identity token here (GitHub Actions with id-token: write, "
        "EXLS_AUTH_WORKLOAD_TOKEN_ENV or EXLS_AUTH_WORKLOAD_TOKEN_FILE)",
        ci=False,
    )


def github_request_url(url: str, audience: str) -> str:
    """``url`` with ``audience`` added to its query string (GitHub's URL already has one)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise FlowFailed(f"{REQUEST_URL} is not an https URL; is this really a GitHub Actions job?")
    separator = "&" if parts.query else "?"
    if parts.fragment:
        url = url.split("#", 1)[0]
    return f"{url}{separator}{urlencode({'audience': audience})}"


def fetch_token(
    source: Source, *, audience: str, http: requests.Session, environ: Mapping[str, str]
) -> str:
    """The CI token; FlowFailed (one line, with the fix) when it cannot be had."""
    if source.kind == "env":
        return _checked(environ.get(source.where, "").strip(), f"the variable {source.where}")
    if source.kind == "file":
        return _checked(_read_file(source.where), f"the token file {source.where}")
    return _from_github(audience=audience, http=http, environ=environ)


def _read_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TOKEN + 1)
    except FileNotFoundError:
        raise FlowFailed(
            f"The token file {path} does not exist; mount the projected service account "
            "token there or fix EXLS_AUTH_WORKLOAD_TOKEN_FILE."
        ) from None
    except OSError as exc:
        raise FlowFailed(f"Cannot read the token file {path}: {exc.strerror or exc}.") from None
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FlowFailed(f"The token file {path} does not hold a JWT.") from None


def _from_github(*, audience: str, http: requests.Session, environ: Mapping[str, str]) -> str:
    import requests

    from exls_core.plugin import ExlsError, describe_network_error, read_json

    url, token = environ.get(REQUEST_URL, ""), environ.get(REQUEST_TOKEN, "")
    if not url or not token:
        raise FlowFailed(f"GitHub Actions gave this job no ID token: {PERMISSION_FIX}.")
    full = github_request_url(url, audience)
    shown = full.split("?", 1)[0]  # the query names nothing secret, but keep lines short
    headers = {"Authorization": f"bearer {token}", "Accept": "application/json"}
    try:
        with http.get(full, headers=headers, stream=True) as response:
            if response.status_code in (401, 403):
                raise FlowFailed(
                    f"GitHub refused the ID token request (HTTP {response.status_code}); "
                    f"check that the job has `permissions: id-token: write` and is not from a fork."
                )
            if response.status_code != 200:
                raise FlowFailed(
                    f"The GitHub ID token request failed: {shown} answered HTTP "
                    f"{response.status_code}; re-run the job."
                )
            body = read_json(response, "GitHub ID token request")
    except requests.RequestException as exc:
        raise FlowFailed(
            f"The GitHub ID token request failed: {describe_network_error(exc, shown)}."
        ) from None
    except FlowFailed:
        raise
    except ExlsError as exc:
        raise FlowFailed(f"The GitHub ID token request failed: {exc.message}") from None
    value = body.get("value") if isinstance(body, dict) else None
    return _checked(value if isinstance(value, str) else "", "the GitHub ID token answer")


def _checked(token: str, where: str) -> str:
    if not token:
        raise FlowFailed(
            f"{where[0].upper()}{where[1:]} is empty; it should hold the CI job's JWT."
        )
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise FlowFailed(f"{where[0].upper()}{where[1:]} does not hold a JWT.")
    claims(token, where)  # fails early, before the provider sees it
    return token


def claims(token: str, where: str = "the CI token") -> dict[str, Any]:
    """The JWT's payload, not verified: the identity provider verifies it when it trades it;
    exls only reads who it names (``sub``, ``iss``) to say who is signed in."""
    payload = token.split(".")[1] if token.count(".") == 2 else ""
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        data = None
    if not isinstance(data, dict):
        raise FlowFailed(f"{where[0].upper()}{where[1:]} does not hold a JWT.")
    for name in ("sub", "iss"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise FlowFailed(f"{where[0].upper()}{where[1:]} has no {name} claim.")
    return data
