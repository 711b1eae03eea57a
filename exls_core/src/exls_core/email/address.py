"""Checking an email address: what people type, trimmed, with the domain normalised."""

from __future__ import annotations

from exls_core.text import has_control

MAX_ADDRESS = 254  # RFC 5321 path limit minus the angle brackets
MAX_LOCAL = 64
MAX_LABEL = 63
# Characters that only appear in quoted local parts or in pasted "Name <address>" forms.
FORBIDDEN = set('<>()[]\\,;:"')
EXAMPLE = "alice@example.com"


class InvalidEmail(ValueError):
    """The reason an address was refused, in words for people (``has no @``)."""


def normalize_domain(domain: str) -> str:
    """Lower-case ASCII form of a domain; IDN labels become punycode (bücher.de -> xn--...)."""
    domain = domain.lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidEmail(f"the domain {domain!r} is not a valid international name") from None
    if "." not in domain:
        raise InvalidEmail("the domain needs a dot, e.g. example.com")
    if len(domain) > MAX_ADDRESS - 2:
        raise InvalidEmail("the domain is too long")
    for label in domain.split("."):
        if not label:
            raise InvalidEmail("the domain has an empty part (two dots, or a dot at an end)")
        if len(label) > MAX_LABEL:
            raise InvalidEmail(f"the domain part {label[:20]}... is longer than 63 characters")
        if label.startswith("-") or label.endswith("-"):
            raise InvalidEmail(f"the domain part {label!r} starts or ends with a hyphen")
        if not label.replace("-", "").isalnum():
            raise InvalidEmail(f"the domain part {label!r} may only have letters, digits and -")
    return domain


def validate_email(text: str) -> str:
    """The address, trimmed and with its domain normalised; raises InvalidEmail(reason)."""
    address = text.strip()
    if not address:
        raise InvalidEmail("it is empty")
    if has_control(address):
        raise InvalidEmail("it contains a control or invisible character")
    if bad := sorted(FORBIDDEN.intersection(address)):
        raise InvalidEmail(f"it contains {bad[0]!r}; enter just the address, e.g. {EXAMPLE}")
    if any(ch.isspace() for ch in address):
        raise InvalidEmail("it contains a space")
    if len(address) > MAX_ADDRESS:
        raise InvalidEmail(f"it is longer than {MAX_ADDRESS} characters")
    if address.count("@") != 1:
        raise InvalidEmail("it has no @" if "@" not in address else "it has more than one @")
    local, _, domain = address.partition("@")
    if not local:
        raise InvalidEmail("nothing comes before the @")
    if len(local) > MAX_LOCAL:
        raise InvalidEmail(f"the part before the @ is longer than {MAX_LOCAL} characters")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEmail("the part before the @ has a misplaced dot")
    if not domain:
        raise InvalidEmail("nothing comes after the @")
    return f"{local}@{normalize_domain(domain)}"


def refusal(address: str, reason: InvalidEmail) -> str:
    return f"{address.strip()[:80]!r} is not a valid email address: {reason}."
