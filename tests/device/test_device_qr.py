"""The terminal QR code decodes back to the exact URL, read by a real decoder (zxing-cpp)."""

from __future__ import annotations

import pytest
from device_fakes import LIGHT, decode, parse_half_blocks

from exls_flows_device import qr

URLS = [
    "https://example.com",
    "https://auth.exalsius.ai/activate?user_code=WDJB-MJHT",
    "http://127.0.0.1:8080/device?user_code=ABCD-EFGH&ui_locales=en",
    "https://login.example.org/oauth2/v1/device/verify?user_code=XQKL-PRTV"
    "&connection=acme-okta&organization=org_a1B2c3D4e5F6g7H8&login_hint=jane.doe%40acme.example"
    "&audience=https%3A%2F%2Fapi.exalsius.ai%2F&state=unused-but-long-"
    "0123456789abcdefghijklmnopqrstuvwxyz",
    "https://x.example/" + "a1b2c3d4e5" * 40,  # 418 characters
]


def test_the_long_test_url_is_really_long() -> None:
    assert len(URLS[3]) >= 200


@pytest.mark.parametrize("url", URLS)
def test_rendering_decodes_back_to_the_exact_url(url: str) -> None:
    text = qr.render(url)
    modules = parse_half_blocks(text)
    assert modules == qr.matrix(url)
    assert decode(modules) == [url]


@pytest.mark.parametrize("url", URLS[:4])
def test_shape_two_module_rows_per_line_and_the_quiet_zone(url: str) -> None:
    text = qr.render(url)
    lines = text.split("\n")
    size = len(qr.matrix(url))
    assert size % 2 == 1  # QR codes have an odd size, so the last line holds half a row
    assert len(lines) == (size + 1) // 2
    assert all(len(line) == size for line in lines)
    assert set(text) <= set(LIGHT) | {"\n"}
    modules = parse_half_blocks(text)
    zone = qr.QUIET_ZONE
    assert zone == 4
    for row in (*modules[:zone], *modules[-zone:]):
        assert not any(row)
    for row in modules:
        assert not any(row[:zone]) and not any(row[-zone:])
    # The quiet zone is light, and light is drawn as ink: a full block frame.
    assert lines[0] == lines[1] == "█" * size
    assert lines[-1] == "▀" * size  # the last light row over the blank padding


def test_light_modules_are_ink_so_a_dark_terminal_shows_dark_on_light() -> None:
    lines = qr.render(URLS[1]).split("\n")
    # Lines 2 and 3 hold module rows 4 to 7: quiet zone (light, ink) then the finder
    # pattern's dark edge (blank) and its light ring below the top edge (ink below: ▄).
    assert lines[2][:6] == "████ ▄"
    assert lines[3][:6] == "████ █"


def test_the_decoder_really_checks() -> None:
    # A damaged finder pattern must not decode: the round trip above is not vacuous.
    modules = qr.matrix(URLS[1])
    for y in range(4, 11):
        for x in range(4, 11):
            modules[y][x] = False
    for y in range(len(modules) - 11, len(modules) - 4):
        for x in range(4, 11):
            modules[y][x] = False
    assert decode(modules) == []
