"""Which email addresses exls accepts, how it normalises them, and what it says about the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exls_core.email import InvalidEmail, normalize_domain, validate_email


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("alice@acme.com", "alice@acme.com"),
        ("  alice@acme.com\n", "alice@acme.com"),  # a pasted or piped line
        ("Alice@ACME.Com", "Alice@acme.com"),  # the local part keeps its case, the domain not
        ("a.b+tag@mail.acme.co.uk", "a.b+tag@mail.acme.co.uk"),
        ("o'neil@acme.com", "o'neil@acme.com"),
        ("alice@bücher.de", "alice@xn--bcher-kva.de"),  # IDN domains become punycode
        ("alice@BÜCHER.de", "alice@xn--bcher-kva.de"),
        ("alice@xn--bcher-kva.de", "alice@xn--bcher-kva.de"),
        ("jörg@acme.com", "jörg@acme.com"),  # internationalised local parts are allowed
        ("x@a-b.io", "x@a-b.io"),
        ("a" * 64 + "@acme.com", "a" * 64 + "@acme.com"),
    ],
)
def test_valid_addresses_are_normalised(typed: str, expected: str) -> None:
    assert validate_email(typed) == expected


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("alice", "it has no @"),
        ("alice@acme@com", "more than one @"),
        ("@acme.com", "nothing comes before the @"),
        ("alice@", "nothing comes after the @"),
        ("alice@localhost", "the domain needs a dot"),
        ("alice smith@acme.com", "it contains a space"),
        ("alice@acme .com", "it contains a space"),
        ("alice\x00@acme.com", "control or invisible character"),
        ("alice@acme.com\x1b[31m", "control or invisible character"),
        ("alice\u202e@acme.com", "control or invisible character"),  # right-to-left override
        ("Alice <alice@acme.com>", "enter just the address"),
        ('"alice"@acme.com', "enter just the address"),
        ("alice@[10.0.0.1]", "enter just the address"),
        ("alice@acme..com", "empty part"),
        ("alice@acme.com.", "empty part"),
        ("alice@.acme.com", "empty part"),
        ("alice@-acme.com", "hyphen"),
        ("alice@acme-.com", "hyphen"),
        ("alice@ac_me.com", "letters, digits and -"),
        ("alice@acme.com/x", "letters, digits and -"),
        (".alice@acme.com", "misplaced dot"),
        ("alice.@acme.com", "misplaced dot"),
        ("al..ice@acme.com", "misplaced dot"),
        ("a" * 65 + "@acme.com", "longer than 64"),
        ("alice@" + "a" * 64 + ".com", "longer than 63"),
        ("alice@" + ".".join(["a" * 60] * 5) + ".com", "longer than 254"),
        ("alice@bü\u00adcher..de", "control or invisible character"),
    ],
)
def test_invalid_addresses_say_why(typed: str, reason: str) -> None:
    with pytest.raises(InvalidEmail) as refused:
        validate_email(typed)
    assert reason in str(refused.value)


def test_an_invalid_international_domain_is_refused() -> None:
    with pytest.raises(InvalidEmail, match="not a valid international name"):
        normalize_domain("bü" + "x" * 70 + ".de")


@given(st.text(max_size=80))
def test_anything_accepted_is_a_clean_single_line_address(text: str) -> None:
    try:
        address = validate_email(text)
    except InvalidEmail:
        return
    local, _, domain = address.partition("@")
    assert local and "@" not in domain
    assert domain == domain.lower() and domain.isascii() and "." in domain
    assert not any(ch.isspace() or ord(ch) < 32 for ch in address)
    assert validate_email(address) == address  # normalising twice changes nothing
