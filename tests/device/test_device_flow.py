"""The whole flow in process against a scripted provider on 127.0.0.1, on a fake clock."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import pytest
from device_fakes import FakeClock, FakeUI, decode, parse_half_blocks, qr_lines

from exls_core.errors import ConfigError
from exls_core.http import new_session
from exls_core.plugin import (
    PRIORITY_DEVICE_CODE,
    FlowEnvironment,
    FlowFailed,
    FlowRequest,
    FlowSettings,
    NonceCheck,
)
from exls_flows_device import flow, poller
from testkit.http_server import FakeServer, QuietHandler

DEVICE_CODE = "DC-SECRET-GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS"
ACCESS_TOKEN = "AT-SECRET-eyJhbGciOiJSUzI1NiJ9"
REFRESH_TOKEN = "RT-SECRET-8xLOxBtZp8"
ID_TOKEN = "IDT-SECRET-eyJ0eXAiOiJKV1QifQ"
SECRETS = ("SECRET", DEVICE_CODE, ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN)

Answer = tuple[int, bytes, str]


def js(status: int, body: Any) -> Answer:
    return status, json.dumps(body).encode(), "application/json"


PENDING = js(400, {"error": "authorization_pending"})
TOKENS = js(
    200,
    {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": REFRESH_TOKEN,
        "id_token": ID_TOKEN,
        "scope": "openid profile email offline_access",
    },
)


class Provider:
    """A scripted identity provider: plain http on loopback is fine for unit tests."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.device_answer: Answer = js(
            200,
            {
                "device_code": DEVICE_CODE,
                "user_code": "WDJB-MJHT",
                "verification_uri": "https://idp.example/device",
                "verification_uri_complete": "https://idp.example/device?user_code=WDJB-MJHT",
                "expires_in": 600,
                "interval": 5,
            },
        )
        self.token_answers: list[Answer] = []
        self.seen: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.poll_times: list[float] = []
        provider = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                form = dict(parse_qsl(self.form().decode(), strict_parsing=True))
                provider.seen.append((self.path, form, dict(self.headers)))
                if self.path == "/device":
                    status, body, kind = provider.device_answer
                elif self.path == "/token":
                    provider.poll_times.append(provider.clock.now)
                    answers = provider.token_answers
                    status, body, kind = answers.pop(0) if answers else PENDING
                else:
                    status, body, kind = 404, b"not here", "text/plain"
                redirect = {"Location": "/elsewhere"} if status in {302, 307} else {}
                self.reply(status, body, kind, redirect)

        self.server = FakeServer(Handler, name="device-provider")
        self.base = self.server.base
        self.metadata = {
            "issuer": self.base,
            "token_endpoint": f"{self.base}/token",
            "device_authorization_endpoint": f"{self.base}/device",
        }

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.seen]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)  # monotonic clocks do not start at zero


@pytest.fixture
def provider(clock: FakeClock) -> Iterator[Provider]:
    idp = Provider(clock)
    with idp.server:
        yield idp


def make_request(metadata: dict[str, str], ui: FakeUI, **changes: Any) -> FlowRequest:
    fields: dict[str, Any] = {
        "issuer": metadata.get("issuer", "https://idp.example"),
        "metadata": metadata,
        "client_id": "exls-cli",
        "scopes": ("openid", "profile", "email", "offline_access"),
        "nonce": "NONCE-not-for-the-device-grant",
        "ui": ui,
        "audience": "https://api.exalsius.ai",
        "email": "jane.doe@acme.example",
        "extra_params": {"connection": "acme-okta", "organization": "org_123"},
        "http_timeout": 2.0,
    }
    show_qr = changes.pop("show_qr", False)
    fields.update(changes)
    fields["http"] = new_session(fields["http_timeout"])
    fields["settings"] = FlowSettings("device_code", {} if show_qr else {"qr": False})
    return FlowRequest(**fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_full_flow_sends_the_right_requests_and_returns_the_tokens(
    provider: Provider, clock: FakeClock
) -> None:
    provider.token_answers = [
        PENDING,
        (503, b"<html>upstream down</html>", "text/html"),
        (200, b"<html>captive portal</html>", "text/html"),
        js(400, {"error": "slow_down"}),
        TOKENS,
    ]
    ui = FakeUI()
    response = flow.run(make_request(provider.metadata, ui), clock=clock, sleep=clock.sleep)

    assert response.access_token == ACCESS_TOKEN
    assert response.refresh_token == REFRESH_TOKEN
    assert response.id_token == ID_TOKEN
    assert response.expires_in == 3600
    assert response.nonce_check is NonceCheck.NOT_IN_PROTOCOL  # the device grant has none

    path, form, headers = provider.seen[0]
    assert path == "/device"
    assert form == {
        "client_id": "exls-cli",
        "scope": "openid profile email offline_access",
        "audience": "https://api.exalsius.ai",
        "login_hint": "jane.doe@acme.example",
        "connection": "acme-okta",
        "organization": "org_123",
    }
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("exls/")

    polls = provider.seen[1:]
    assert [path for path, _, _ in polls] == ["/token"] * 5
    for _, form, _ in polls:
        assert form == {
            "grant_type": poller.GRANT_TYPE,
            "device_code": DEVICE_CODE,
            "client_id": "exls-cli",
        }
    # pending, 503 (retry after the interval), junk (twice the interval), slow_down (+5 s).
    assert [t - 1000 for t in provider.poll_times] == [5, 10, 15, 25, 35]

    assert ui.messages == [
        "To sign in, visit: https://idp.example/device",
        "and enter the code: WDJB-MJHT",
        "Or open this link, which includes the code: https://idp.example/device?user_code=WDJB-MJHT",
    ]
    assert ui.updates[:3] == [
        "Waiting for approval... code expires in 10:00 (Ctrl+C to cancel)",
        "Waiting for approval... code expires in 10:00 (Ctrl+C to cancel)",
        "Waiting for approval... code expires in 9:59 (Ctrl+C to cancel)",
    ]
    assert any(
        "retrying, the last check failed: the token endpoint answered HTTP 503" in u
        for u in ui.updates
    )
    assert any("did not answer with JSON (HTTP 200, text/html)" in u for u in ui.updates)
    assert ui.status_closed
    for secret in SECRETS:
        assert secret not in ui.everything
        assert secret not in repr(response)


def test_on_a_terminal_the_flow_shows_a_scannable_qr_code(
    provider: Provider, clock: FakeClock
) -> None:
    provider.token_answers = [TOKENS]
    ui = FakeUI(terminal=True)
    flow.run(make_request(provider.metadata, ui, show_qr=True), clock=clock, sleep=clock.sleep)
    modules = parse_half_blocks(qr_lines(ui.everything))
    assert decode(modules) == ["https://idp.example/device?user_code=WDJB-MJHT"]
    for secret in SECRETS:
        assert secret not in ui.everything


def test_qr_false_in_the_config_file_leaves_the_qr_code_out(
    provider: Provider, clock: FakeClock
) -> None:
    provider.token_answers = [TOKENS]
    ui = FakeUI(terminal=True)
    request = make_request(provider.metadata, ui, show_qr=True)
    settings = FlowSettings("device_code", environ={}, file_table={"qr": "false"})
    flow.run(replace(request, settings=settings), clock=clock, sleep=clock.sleep)
    assert "WDJB-MJHT" in ui.everything
    with pytest.raises(AssertionError, match="no QR code"):
        qr_lines(ui.everything)


def test_a_bad_qr_setting_fails_before_the_provider_is_asked(
    provider: Provider, clock: FakeClock
) -> None:
    request = make_request(provider.metadata, FakeUI(terminal=True), show_qr=True)
    settings = FlowSettings("device_code", environ={"EXLS_AUTH_DEVICE_CODE_QR": "maybe"})
    with pytest.raises(ConfigError, match=r"^EXLS_AUTH_DEVICE_CODE_QR: expected 1 or 0"):
        flow.run(replace(request, settings=settings), clock=clock, sleep=clock.sleep)
    assert provider.seen == []


def test_without_sso_or_audience_only_the_basics_are_sent(
    provider: Provider, clock: FakeClock
) -> None:
    provider.token_answers = [TOKENS]
    request = make_request(
        provider.metadata, FakeUI(), audience=None, email=None, extra_params={}, scopes=("openid",)
    )
    flow.run(request, clock=clock, sleep=clock.sleep)
    assert provider.seen[0][1] == {"client_id": "exls-cli", "scope": "openid"}


def test_a_provider_without_device_flow_fails_clearly_before_any_request(
    provider: Provider, clock: FakeClock
) -> None:
    metadata = {k: v for k, v in provider.metadata.items() if k != "device_authorization_endpoint"}
    with pytest.raises(FlowFailed) as failed:
        flow.run(make_request(metadata, FakeUI()), clock=clock, sleep=clock.sleep)
    assert failed.value.message == (
        "The identity provider does not offer device login; "
        "its metadata has no device_authorization_endpoint."
    )
    assert failed.value.hint is None  # one line
    assert provider.seen == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            js(
                400,
                {"error": "unauthorized_client", "error_description": "Device grant\x1b[2J off"},
            ),
            "The identity provider refused the device code request: "
            "Device grant[2J off (unauthorized_client)",
        ),
        (
            (502, b"<html>Bad gateway</html>", "text/html"),
            "The device authorization endpoint did not answer with JSON (HTTP 502, text/html).",
        ),
        (js(404, {"detail": "nope"}), "The device authorization endpoint answered HTTP 404."),
        (
            js(
                400, {"error": "invalid_scope", "error_description": "Unknown scope\x1b[2J: openid"}
            ),
            "The identity provider does not accept the requested scopes "
            '"openid profile email offline_access" '
            "(invalid_scope: Unknown scope[2J: openid); set EXLS_AUTH_SCOPES to the scopes it "
            "allows for this client.",
        ),
        (
            js(200, ["device_code"]),
            "The identity provider's device authorization answer is not an object.",
        ),
        (
            js(200, {"user_code": "A", "verification_uri": "https://i/d", "expires_in": 9}),
            "The identity provider's device authorization answer has no device_code.",
        ),
    ],
)
def test_device_authorization_failures(
    provider: Provider, clock: FakeClock, answer: Answer, message: str
) -> None:
    provider.device_answer = answer
    ui = FakeUI()
    with pytest.raises(FlowFailed) as failed:
        flow.run(make_request(provider.metadata, ui), clock=clock, sleep=clock.sleep)
    assert failed.value.message == message
    assert provider.paths() == ["/device"]
    assert ui.messages == []


def test_device_endpoint_unreachable(clock: FakeClock) -> None:
    url = f"http://127.0.0.1:{free_port()}/device"
    metadata = {"token_endpoint": "http://127.0.0.1:9/token", "device_authorization_endpoint": url}
    with pytest.raises(FlowFailed) as failed:
        flow.run(make_request(metadata, FakeUI()), clock=clock, sleep=clock.sleep)
    assert failed.value.message == f"Could not start the device code flow: cannot connect to {url}."


def test_access_denied(provider: Provider, clock: FakeClock) -> None:
    provider.token_answers = [PENDING, js(400, {"error": "access_denied"})]
    ui = FakeUI()
    with pytest.raises(FlowFailed) as failed:
        flow.run(make_request(provider.metadata, ui), clock=clock, sleep=clock.sleep)
    assert failed.value.message == poller.DENIED
    assert ui.status_closed


def test_expired_token(provider: Provider, clock: FakeClock) -> None:
    provider.token_answers = [js(400, {"error": "expired_token"})]
    with pytest.raises(FlowFailed) as failed:
        flow.run(make_request(provider.metadata, FakeUI()), clock=clock, sleep=clock.sleep)
    assert str(failed.value) == 'The code expired before it was approved. Run "exls login" again.'


def test_token_endpoint_unreachable_until_the_code_expires(
    provider: Provider, clock: FakeClock
) -> None:
    token_url = f"http://127.0.0.1:{free_port()}/token"
    provider.device_answer = js(
        200,
        {
            "device_code": DEVICE_CODE,
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://idp.example/device",
            "expires_in": 30,
        },
    )
    metadata = {**provider.metadata, "token_endpoint": token_url}
    ui = FakeUI()
    with pytest.raises(FlowFailed) as failed:
        flow.run(make_request(metadata, ui), clock=clock, sleep=clock.sleep)
    assert failed.value.message == poller.EXPIRED
    assert failed.value.hint == f"The last attempt to check failed: cannot connect to {token_url}."
    assert clock.now == 1030
    assert DEVICE_CODE not in str(failed.value) and DEVICE_CODE not in ui.everything


def test_token_endpoint_that_never_answers_times_out(provider: Provider, clock: FakeClock) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        token_url = f"http://127.0.0.1:{silent.getsockname()[1]}/token"
        provider.device_answer = js(
            200,
            {
                "device_code": DEVICE_CODE,
                "user_code": "WDJB-MJHT",
                "verification_uri": "https://idp.example/device",
                "expires_in": 12,
            },
        )
        metadata = {**provider.metadata, "token_endpoint": token_url}
        with pytest.raises(FlowFailed) as failed:
            # long enough for the real provider to answer the device request on a busy machine
            request = make_request(metadata, FakeUI(), http_timeout=0.5)
            flow.run(request, clock=clock, sleep=clock.sleep)
    assert failed.value.message == poller.EXPIRED
    assert (
        failed.value.hint
        == f"The last attempt to check failed: {token_url} did not answer in time."
    )


def test_redirects_are_not_followed_with_the_device_code(
    provider: Provider, clock: FakeClock
) -> None:
    provider.token_answers = [(307, b"", "text/plain"), (302, b"", "text/plain"), TOKENS]
    response = flow.run(make_request(provider.metadata, FakeUI()), clock=clock, sleep=clock.sleep)
    assert response.access_token == ACCESS_TOKEN
    assert "/elsewhere" not in provider.paths()


def test_a_success_without_an_access_token_fails(provider: Provider, clock: FakeClock) -> None:
    provider.token_answers = [js(200, {"token_type": "Bearer"})]
    with pytest.raises(FlowFailed, match="no access_token"):
        flow.run(make_request(provider.metadata, FakeUI()), clock=clock, sleep=clock.sleep)


def test_ctrl_c_cancels_at_once_and_returns_nothing(provider: Provider, clock: FakeClock) -> None:
    clock.interrupt_after = 3
    ui = FakeUI()
    with pytest.raises(KeyboardInterrupt):
        flow.run(make_request(provider.metadata, ui), clock=clock, sleep=clock.sleep)
    assert provider.paths() == ["/device"]
    assert clock.now == 1003
    assert ui.status_closed and not ui.status_active


# --- the plugin's hooks -------------------------------------------------------------------


def test_hooks_through_the_core_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from exls_core.plugin import TokenResponse
    from exls_core.registry import PluginEntry, load_registry

    entry = PluginEntry(
        "exls.flows", "device_code", "exls_flows_device.plugin", "exls-flows-device", "0.1.0"
    )
    warnings: list[str] = []
    registry = load_registry(warn=warnings.append, entries=[entry])
    assert warnings == []
    device = registry.flows["device_code"]
    assert device.title == "device code flow"
    headless = FlowEnvironment(
        environ={}, platform="linux", stdin_is_terminal=False, stderr_is_terminal=False
    )
    assert device.priority(headless).priority == PRIORITY_DEVICE_CODE == 50

    seen: list[FlowRequest] = []

    def fake_run(request: FlowRequest) -> TokenResponse:
        seen.append(request)
        return TokenResponse(access_token="x")

    monkeypatch.setattr(flow, "run", fake_run)
    request = make_request({}, FakeUI())
    assert device.run(request).access_token == "x"
    assert seen == [request]


def test_the_entry_point_is_declared() -> None:
    from importlib.metadata import entry_points

    (point,) = [ep for ep in entry_points(group="exls.flows") if ep.name == "device_code"]
    assert point.value == "exls_flows_device.plugin"


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, exls_flows_device.plugin\n"
        "heavy = ['requests', 'rich', 'qrcode', 'exls_flows_device.flow', 'exls_core.http']\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
