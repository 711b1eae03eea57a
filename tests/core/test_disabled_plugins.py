"""EXLS_DISABLED_PLUGINS switches an installed plugin off: not imported, shown as disabled."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cli_kit import exls

AVAILABLE_PKCE = {"DISPLAY": ":0", "BROWSER": "firefox", "CI": ""}  # pkce would win auto


def rows(**env: str) -> dict[str, dict[str, object]]:
    result = exls("auth", "flows", "--json", **env)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    return {row["id"]: row for row in listing["flows"]} | {"<auto>": {"id": listing["auto"]}}


def test_the_control_auto_picks_pkce_where_a_browser_opens() -> None:
    assert rows(**AVAILABLE_PKCE)["<auto>"]["id"] == "pkce"


def test_a_disabled_flow_is_listed_as_disabled_and_auto_skips_it() -> None:
    listing = rows(EXLS_DISABLED_PLUGINS="pkce", **AVAILABLE_PKCE)
    assert listing["pkce"]["status"] == "disabled"
    assert listing["pkce"]["reason"] == "switched off by EXLS_DISABLED_PLUGINS"
    assert listing["pkce"]["auto"] is False and listing["pkce"]["priority"] is None
    assert listing["<auto>"]["id"] == "device_code"


def test_the_text_listing_says_disabled() -> None:
    result = exls("auth", "flows", EXLS_DISABLED_PLUGINS=" pkce , other", **AVAILABLE_PKCE)
    assert result.returncode == 0
    (line,) = [line for line in result.stdout.splitlines() if " pkce " in line]
    assert line.endswith("disabled: switched off by EXLS_DISABLED_PLUGINS")
    assert "auto picks: device_code" in result.stdout


def test_a_distribution_name_disables_its_flows() -> None:
    listing = rows(EXLS_DISABLED_PLUGINS="exls-flows-device")
    assert listing["device_code"]["status"] == "disabled"


def test_version_marks_it() -> None:
    result = exls("--version", EXLS_DISABLED_PLUGINS="device_code")
    assert "(disabled by EXLS_DISABLED_PLUGINS)" in next(
        line for line in result.stdout.splitlines() if line.startswith("flow device_code:")
    )


@pytest.mark.parametrize("flow", ["pkce", "device_code"])
def test_choosing_a_disabled_flow_fails_in_one_line_before_any_prompt(flow: str) -> None:
    result = exls("login", "--auth-flow", flow, EXLS_DISABLED_PLUGINS=flow)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"Error: flow '{flow}' is disabled by EXLS_DISABLED_PLUGINS; "
        "remove it from that variable to use it."
    ]


PROBE = """
import json, sys
from exls_core.cli_app import main
try:
    main.main(args=["auth", "flows", "--json"], prog_name="exls", standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def test_a_disabled_plugin_is_not_imported() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXLS_")}

    def modules(**extra: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-c", PROBE],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return set(json.loads(result.stdout.strip().splitlines()[-1]))

    assert "exls_flows_pkce.plugin" in modules()  # the control: listing imports plugins
    loaded = modules(EXLS_DISABLED_PLUGINS="pkce")
    assert not any(m == "exls_flows_pkce" or m.startswith("exls_flows_pkce.") for m in loaded)
    assert "exls_flows_device.plugin" in loaded


def test_the_listing_keeps_its_columns_for_long_flow_ids() -> None:
    from exls_core.commands.flows import listing

    def row(flow_id: str, distribution: str, **extra: object) -> dict[str, object]:
        base = {"id": flow_id, "distribution": distribution, "version": "1.0.0", "auto": False}
        return base | {"status": "available", "priority": 50.0, "reason": None} | extra

    lines = listing(
        [
            row("acme_smartcard_reader_v2", "acme-exls-smartcard", auto=True, priority=300.0),
            row("pkce", "exls-flows-pkce", status="unavailable", reason="No browser here"),
        ]
    )
    assert lines == [
        "* acme_smartcard_reader_v2  acme-exls-smartcard 1.0.0  available, priority 300",
        "  pkce                      exls-flows-pkce 1.0.0      unavailable: No browser here",
    ]
