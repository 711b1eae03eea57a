"""An example exls routing plugin: send Example Corp's people to their Okta connection.

A real plugin would ask the company directory; this one knows a single domain.
"""

from __future__ import annotations

from exls_core.plugin import SSORoute, hookimpl

DIRECTORY = {
    "corp.example": SSORoute(name="Example Corp Okta", params={"connection": "example-okta"})
}


@hookimpl
def exls_sso_route(email: str, domain: str) -> SSORoute | None:
    """The route for the domain, or None so that the config table and endpoint are asked."""
    return DIRECTORY.get(domain)
