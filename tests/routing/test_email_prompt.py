"""How ``exls login`` gets the email address: --email, a terminal prompt, or a line on stdin."""

from __future__ import annotations

import io
import json
import os
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from exls_core.email import ask_email, last_email, remember_email
from exls_core.errors import EXIT_USAGE, UsageError
from exls_core.paths import user_dir
from exls_core.ui import TerminalUI


@click.command()
def ask() -> None:
    """ask_email as login.py calls it, with the address on stdout so the test can see it."""
    click.echo(ask_email(None, TerminalUI()))


def on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # CliRunner's stdin is a pipe; pretend it is a terminal to drive click.prompt with input.
    monkeypatch.setattr("exls_core.email.prompt._is_terminal", lambda stream: True)


# --- --email ------------------------------------------------------------------------------------


def test_the_email_option_skips_the_prompt_and_is_normalised() -> None:
    stdin = io.StringIO("ignored@example.com\n")
    assert ask_email("Alice@ACME.com", TerminalUI(io.StringIO()), stdin=stdin) == "Alice@acme.com"
    assert stdin.tell() == 0  # nothing was read


def test_a_malformed_email_option_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as refused:
        ask_email("alice.acme.com", TerminalUI(io.StringIO()))
    assert refused.value.exit_code == EXIT_USAGE
    assert refused.value.message == (
        "--email: 'alice.acme.com' is not a valid email address: it has no @."
    )


# --- the terminal prompt ------------------------------------------------------------------------


def test_the_prompt_says_why_and_asks_again(monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal(monkeypatch)
    result = CliRunner().invoke(ask, input="alice\nalice@acme..com\nalice@ACME.com\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "alice@acme.com"
    assert result.stderr.count("Email address: ") == 3
    assert "Error: 'alice' is not a valid email address: it has no @." in result.stderr
    assert "the domain has an empty part" in result.stderr


def test_the_prompt_offers_the_last_address_as_default(monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal(monkeypatch)
    remember_email("bob@acme.com")
    result = CliRunner().invoke(ask, input="\n")
    assert result.exit_code == 0, result.output
    assert "Email address [bob@acme.com]: " in result.stderr
    assert result.stdout.splitlines()[-1] == "bob@acme.com"


def test_typing_another_address_replaces_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal(monkeypatch)
    remember_email("bob@acme.com")
    result = CliRunner().invoke(ask, input="carol@other.org\n")
    assert result.stdout.splitlines()[-1] == "carol@other.org"


def test_without_a_remembered_address_the_prompt_has_no_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_terminal(monkeypatch)
    result = CliRunner().invoke(ask, input="\n\nalice@acme.com\n")
    assert "[" not in result.stderr
    assert result.stdout.splitlines()[-1] == "alice@acme.com"


def test_end_of_input_at_the_prompt_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal(monkeypatch)
    result = CliRunner().invoke(ask, input="")
    assert result.exit_code == 1  # click.Abort, which exls maps to "Cancelled." and 130
    assert "Aborted!" in result.stderr


def _read_until(fd: int, marker: bytes, seen: bytearray, start: int = 0) -> int:
    """Read the terminal until ``marker`` appears after ``start``; return where it ends."""
    deadline = time.monotonic() + 60  # generous: a loaded machine starts the child slowly
    while (found := seen.find(marker, start)) < 0:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"timed out waiting for {marker!r}; got {bytes(seen)!r}")
        seen.extend(os.read(fd, 1024))
    return found + len(marker)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_a_real_terminal_prompts_reasks_and_uses_the_default() -> None:
    import pty

    remember_email("bob@acme.com")
    leader, follower = pty.openpty()
    code = (
        "from exls_core.email import ask_email; from exls_core.ui import TerminalUI; "
        "print(ask_email(None, TerminalUI()))"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=follower,
        stderr=follower,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        os.close(follower)
        seen = bytearray()
        try:
            prompt = b"Email address [bob@acme.com]: "
            at = _read_until(leader, prompt, seen)
            os.write(leader, b"not-an-address\n")
            at = _read_until(leader, b"is not a valid email address: it has no @.", seen, at)
            _read_until(leader, prompt, seen, at)  # asked again, with the same default
            os.write(leader, b"\n")
            out, _ = child.communicate(timeout=10)
        finally:
            os.close(leader)
    assert child.returncode == 0, bytes(seen)
    assert out.strip() == "bob@acme.com"


# --- not a terminal: a line on stdin ------------------------------------------------------------


def test_a_line_on_stdin_is_the_address() -> None:
    stdin = io.StringIO("alice@ACME.com\nsomething else\n")
    assert ask_email(None, TerminalUI(io.StringIO()), stdin=stdin) == "alice@acme.com"


@pytest.mark.parametrize("stdin", [io.StringIO(""), io.StringIO("\n"), io.StringIO("   \n")])
def test_no_terminal_and_nothing_on_stdin_names_the_option(stdin: io.StringIO) -> None:
    with pytest.raises(UsageError) as refused:
        ask_email(None, TerminalUI(io.StringIO()), stdin=stdin)
    assert refused.value.exit_code == EXIT_USAGE
    assert "--email EMAIL" in refused.value.message


def test_a_closed_stdin_names_the_option() -> None:
    stdin = io.StringIO()
    stdin.close()
    with pytest.raises(UsageError, match="--email EMAIL"):
        ask_email(None, TerminalUI(io.StringIO()), stdin=stdin)


def test_a_malformed_line_on_stdin_is_a_usage_error_not_a_prompt() -> None:
    with pytest.raises(UsageError) as refused:
        ask_email(None, TerminalUI(io.StringIO()), stdin=io.StringIO("alice at acme\n"))
    assert refused.value.message == (
        "stdin: 'alice at acme' is not a valid email address: it contains a space."
    )


def test_a_silent_pipe_says_what_it_waits_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("exls_core.email.prompt.STDIN_HINT_AFTER", 0.05)
    read_end, write_end = os.pipe()
    messages = io.StringIO()
    with os.fdopen(read_end, "r") as stdin:
        # The address arrives only after the hint interval: exls says what it waits for.
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import os,time; time.sleep(0.5); os.write({write_end}, b'a@b.co\\n')",
            ],
            pass_fds=(write_end,),
        )
        os.close(write_end)
        assert ask_email(None, TerminalUI(messages), stdin=stdin) == "a@b.co"
        writer.wait(timeout=10)
    assert "Waiting for your email address on standard input" in messages.getvalue()


def test_a_pipe_with_an_address_waiting_reads_it_silently() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"a@b.co\n")
    os.close(write_end)
    messages = io.StringIO()
    with os.fdopen(read_end, "r") as stdin:
        assert ask_email(None, TerminalUI(messages), stdin=stdin) == "a@b.co"
    assert messages.getvalue() == ""


def _exls(*args: str, stdin: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EXLS_AUTH_ISSUER="http://127.0.0.1:9/")  # never reach a real provider
    return subprocess.run(
        [sys.executable, "-m", "exls_core.cli", "login", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_exls_login_without_terminal_or_email_exits_2_naming_the_option() -> None:
    done = _exls(stdin=None)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("Error: No email address: pass --email EMAIL")


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (("--email", "alice"), None, "Error: --email: 'alice' is not a valid email address"),
        ((), "alice@@acme.com\n", "Error: stdin: 'alice@@acme.com' is not a valid email address"),
    ],
)
def test_exls_login_with_a_malformed_address_exits_2(
    args: tuple[str, ...], stdin: str | None, expected: str
) -> None:
    done = _exls(*args, stdin=stdin)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr.startswith(expected)


# --- remembering ---------------------------------------------------------------------------------


def test_remembered_address_round_trips_and_keeps_other_state() -> None:
    path = Path(user_dir("state"), "state.json")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"other": 1}), encoding="utf-8")
    remember_email("alice@acme.com")
    assert last_email() == "alice@acme.com"
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "other": 1,
        "last_email": "alice@acme.com",
    }


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_the_state_file_is_private() -> None:
    remember_email("alice@acme.com")
    mode = stat.S_IMODE((Path(user_dir("state"), "state.json")).stat().st_mode)
    assert mode == 0o600


@pytest.mark.parametrize(
    "content", ["not json", "[1]", '{"last_email": 5}', '{"last_email": "x\\u001b@a.co"}']
)
def test_a_damaged_state_file_means_no_default(content: str) -> None:
    path = Path(user_dir("state"), "state.json")
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    assert last_email() is None


def test_a_failure_to_remember_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))  # the state dir cannot be created
    remember_email("alice@acme.com")
    assert last_email() is None
