"""Property-based tests of the redirect query parser: whatever arrives, it answers or refuses."""

from __future__ import annotations

from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from exls_flows_pkce.listener import RESPONSE_FIELDS, CallbackParams, parse_callback_query

values = st.text(min_size=1, max_size=60)
responses = st.dictionaries(st.sampled_from(RESPONSE_FIELDS), values)
others = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda name: name not in RESPONSE_FIELDS),
    st.text(max_size=20),
    max_size=5,
)


@given(responses, others, st.booleans())
def test_every_encoded_response_parses_back(
    params: dict[str, str], extra: dict[str, str], spaces_as_plus: bool
) -> None:
    query = urlencode(
        list(params.items()) + list(extra.items()),
        quote_via=quote_plus if spaces_as_plus else quote,
    )
    assert parse_callback_query(query) == CallbackParams(**params)


@given(st.text(max_size=300))
@example("state=%ff")  # not UTF-8
@example("state=a&state=b")
@example("&" * 500)
def test_any_query_parses_or_raises_value_error(query: str) -> None:
    try:
        result = parse_callback_query(query)
    except ValueError:
        return
    assert isinstance(result, CallbackParams)
    for name in RESPONSE_FIELDS:
        value = getattr(result, name)
        assert value is None or (isinstance(value, str) and value)


@given(st.sampled_from(RESPONSE_FIELDS), values, values, others)
def test_a_repeated_response_parameter_is_refused(
    name: str, first: str, second: str, extra: dict[str, str]
) -> None:
    query = urlencode([(name, first), *extra.items(), (name, second)])
    with pytest.raises(ValueError, match=f"{name} appears more than once"):
        parse_callback_query(query)


@given(st.sampled_from(RESPONSE_FIELDS))
def test_empty_means_absent(name: str) -> None:
    assert parse_callback_query(f"{name}=") == CallbackParams()


def test_refusals_never_echo_values() -> None:
    with pytest.raises(ValueError) as info:
        parse_callback_query("code=secret-1&code=secret-2")
    assert "secret" not in str(info.value)


def test_the_repr_hides_the_code() -> None:
    assert "secret" not in repr(parse_callback_query("code=secret&state=s"))
