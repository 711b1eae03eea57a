"""A CI job signs in with its own identity (issue 22), end to end.

Real parts: the test provider (node-oidc-provider) with its RFC 8693 grant and RFC 7523
client, a stand-in CI issuer over TLS that answers like GitHub Actions' ID token request URL
and publishes its keys (the provider fetches them to verify what exls trades), the installed
``exls`` with the workload flow, the Linux kernel keyring (a VM runner: no session bus).
"""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from exls_testbed.ci_issuer import CiIssuer
from exls_testbed.cli import ExlsCli, Result, Timings
from exls_testbed.idp import (
    TOKEN_EXCHANGE_GRANT,
    WORKLOAD_ASSERTION_CLIENT_ID,
    WORKLOAD_CLIENT_ID,
    WORKLOAD_CLIENT_SECRET,
    WORKLOAD_SECRET_CLIENT_ID,
    IdpServer,
    TlsFiles,
)
from exls_testbed.secret_service import SecretService
from test_e2e_session import _files, _leaks

from exls_core.session.kernel_store import KernelSessionStore
from kernel_testkit import scoped_keys

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux kernel keyring")

SUBJECT = "repo:acme/train:ref:refs/heads/main"
# A VM runner: no session bus, so the session goes to the kernel keyring. Named: this machine
# is itself a container sharing the host's users, where auto keeps it in the exls agent.
RUNNER = {
    "DBUS_SESSION_BUS_ADDRESS": None,
    "EXLS_AUTH_CLIENT_ID": WORKLOAD_CLIENT_ID,
    "EXLS_SESSION_STORE": "kernel",
}


@pytest.fixture
def ci(idp_files: tuple[TlsFiles, Path]) -> Iterator[CiIssuer]:
    with CiIssuer(idp_files[0]) as issuer:
        yield issuer


def _job(ci: CiIssuer, **more: str | None) -> dict[str, str | None]:
    return {**RUNNER, **ci.github_env(), **more}


def _error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def test_a_github_job_signs_in_renews_and_logs_out_with_no_person(
    idp: IdpServer,
    exls: ExlsCli,
    ci: CiIssuer,
    secret_service: SecretService,
    e2e_timings: Timings,
) -> None:
    idp.configure(workload_trust=ci.trust(audience=idp.issuer), access_token_ttl=30)
    job = _job(ci)

    listing = exls.run("auth", "flows", "--json", env=job).json()
    assert listing["auto"] == "workload"
    row = next(r for r in listing["flows"] if r["id"] == "workload")
    assert row["reason"] == "a GitHub Actions ID token"

    login = exls.run("login", env=job)  # no stdin, no --email: nobody is there
    assert login.returncode == 0, login.describe()
    assert f"Logged in as workload {SUBJECT}" in login.stderr
    assert "email" not in login.output.lower()
    [asked] = ci.requests
    assert asked.authorized and asked.audience == idp.issuer  # &audience= after api-version
    [traded] = idp.token_grants(TOKEN_EXCHANGE_GRANT, succeeded=True)
    assert traded["params"]["subject_token_type"] == "urn:ietf:params:oauth:token-type:id_token"
    assert traded["params"]["client_id"] == WORKLOAD_CLIENT_ID
    assert secret_service.search() == []

    status = exls.run("auth", "status", "--json", env=job).json()
    assert status["kind"] == "workload" and status["subject"] == SUBJECT
    assert status["identity_issuer"] == ci.base and status["email"] is None
    assert status["client_id"] == WORKLOAD_CLIENT_ID and status["flow"] == "workload"
    shown = exls.run("auth", "status", env=job)
    assert f"Logged in as workload {SUBJECT}" in shown.stdout
    assert f"identity: workload of {ci.base}" in shown.stdout

    # 30 s left is inside the refresh margin: auth token trades a fresh CI token.
    idp.configure(access_token_ttl=3600)
    first = KernelSessionStore().load()
    assert first is not None and first.refresh_token is None
    renewed = exls.run("auth", "token", env=job)
    assert renewed.returncode == 0 and renewed.stderr == "", renewed.describe()
    token = renewed.stdout.strip()
    assert token != first.access_token
    assert len(idp.token_grants(TOKEN_EXCHANGE_GRANT, succeeded=True)) == 2
    assert len(ci.requests) == 2
    active = idp.introspect(token)
    assert active["active"] is True and active["sub"] == SUBJECT
    assert active["client_id"] == WORKLOAD_CLIENT_ID

    # Ten parallel steps when the token runs out: one exchange, one token for all of them.
    idp.configure(access_token_ttl=30)
    exls.run("login", env=job)  # a short-lived token again (three exchanges so far)
    idp.configure(access_token_ttl=3600)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        tokens = list(pool.map(lambda _: exls.run("auth", "token", env=job), range(10)))
    assert all(r.returncode == 0 for r in tokens), [r.describe() for r in tokens]
    assert len({r.stdout for r in tokens}) == 1
    assert len(idp.token_grants(TOKEN_EXCHANGE_GRANT, succeeded=True)) == 4
    final = tokens[0].stdout.strip()
    e2e_timings.add(
        "workload",
        login=login.seconds,
        renewing_auth_token=renewed.seconds,
        ten_parallel_auth_tokens_slowest=max(r.seconds for r in tokens),
    )

    logout = exls.run("logout", env=job)
    assert logout.returncode == 0 and logout.stderr == "Logged out.\n", logout.describe()
    assert idp.events("revocation", token_type_hint="access_token")
    assert idp.introspect(final)["active"] is False
    assert scoped_keys() == {}

    secrets = {ci.request_token, *ci.minted, first.access_token, token, final}
    homes = [secret_service.home, exls.tmpdir]
    for path in _files(*homes):
        assert not _leaks(secrets, path.read_bytes()), f"a secret in {path}"
    for result in exls.results:
        out = result.stderr if result.args[:2] == ("auth", "token") else result.output
        assert not _leaks(secrets, out.encode()), f"a secret in the output of {result.args}"
        assert not _leaks({ci.request_token, *ci.minted}, result.output.encode())


def test_a_ci_token_signed_with_an_unknown_key_is_refused_and_nothing_is_stored(
    idp: IdpServer, exls: ExlsCli, ci: CiIssuer
) -> None:
    idp.configure(workload_trust=ci.trust(audience=idp.issuer))
    forged = ci.mint(audience=idp.issuer, unknown_key=True)
    job = {**RUNNER, "EXLS_AUTH_WORKLOAD_TOKEN_ENV": "CI_JOB_JWT", "CI_JOB_JWT": forged}
    login = exls.run("login", env=job)
    assert login.returncode == 1, login.describe()
    [error] = _error_lines(login)
    assert "refused the CI token (invalid_grant" in error
    assert f"trusts issuer {ci.base}, subject {SUBJECT}, audience {idp.issuer}" in error
    assert "Traceback" not in login.stderr and forged not in login.output
    assert KernelSessionStore().load() is None and scoped_keys() == {}
    assert exls.run("auth", "status", env=job).returncode == 1


def test_a_job_without_the_permission_gets_the_fix(
    idp: IdpServer, exls: ExlsCli, ci: CiIssuer
) -> None:
    job = {**RUNNER, "GITHUB_ACTIONS": "true"}
    listing = exls.run("auth", "flows", env=job)
    line = next(x for x in listing.stdout.splitlines() if x.lstrip("* ").startswith("workload"))
    assert "unavailable" in line and "permissions: id-token: write" in line
    login = exls.run("login", "--auth-flow", "workload", env=job)
    assert login.returncode == 1, login.describe()
    [error] = _error_lines(login)
    assert "permissions: id-token: write" in error
    assert ci.requests == [] and idp.token_grants() == []


def test_assertion_mode_trades_a_token_file_as_client_assertion(
    idp: IdpServer, exls: ExlsCli, ci: CiIssuer, tmp_path: Path
) -> None:
    idp.configure(workload_trust=ci.trust(audience="api://AzureADTokenExchange"))
    token_file = tmp_path / "token"
    token_file.write_text(ci.mint(audience="api://AzureADTokenExchange") + "\n")
    job = {
        **RUNNER,
        "EXLS_AUTH_CLIENT_ID": WORKLOAD_ASSERTION_CLIENT_ID,
        "EXLS_AUTH_WORKLOAD_MODE": "assertion",
        "EXLS_AUTH_WORKLOAD_TOKEN_FILE": str(token_file),
        "EXLS_AUTH_WORKLOAD_TOKEN_AUDIENCE": "api://AzureADTokenExchange",
    }
    login = exls.run("login", env=job)
    assert login.returncode == 0, login.describe()
    assert f"Logged in as workload {SUBJECT}" in login.stderr
    [grant] = idp.token_grants("client_credentials", succeeded=True)
    assert grant["params"]["client_assertion_type"].endswith(":jwt-bearer")
    token = exls.run("auth", "token", env=job).stdout.strip()
    assert idp.introspect(token)["active"] is True
    assert exls.run("logout", env=job).returncode == 0

    token_file.write_text(ci.mint(audience="api://AzureADTokenExchange", unknown_key=True))
    refused = exls.run("login", env=job)
    assert refused.returncode == 1
    [error] = _error_lines(refused)
    assert "refused the CI token as client assertion" in error
    assert "check the federated credential" in error


def test_where_no_store_works_nothing_is_kept_and_every_token_is_traded_again(
    idp: IdpServer, exls: ExlsCli, ci: CiIssuer, secret_service: SecretService
) -> None:
    # A container job: no session bus (no Secret Service), and the keyring store chosen,
    # so there is no kernel keyring either (as under a seccomp profile that refuses it).
    idp.configure(workload_trust=ci.trust(audience=idp.issuer))
    job = _job(ci, EXLS_SESSION_STORE="keyring", EXLS_TOKEN_CACHE="0")
    login = exls.run("login", env=job)
    assert login.returncode == 0, login.describe()
    assert f"Logged in as workload {SUBJECT}" in login.stderr
    assert "Nothing was kept: no session store works here" in login.stderr
    tokens = [exls.run("auth", "token", env=job) for _ in range(2)]
    assert all(t.returncode == 0 and t.stderr == "" for t in tokens), [t.describe() for t in tokens]
    assert tokens[0].stdout != tokens[1].stdout
    assert len(idp.token_grants(TOKEN_EXCHANGE_GRANT, succeeded=True)) == 3  # login + 2 calls
    assert idp.introspect(tokens[1].stdout.strip())["sub"] == SUBJECT
    assert scoped_keys() == {} and secret_service.search() == []
    secrets = {ci.request_token, *ci.minted, *(t.stdout.strip() for t in tokens)}
    for path in _files(secret_service.home, exls.tmpdir):
        assert not _leaks(secrets, path.read_bytes()), f"a secret in {path}"

    person = exls.run(
        "auth",
        "token",
        env={
            **job,
            "GITHUB_ACTIONS": None,
            "ACTIONS_ID_TOKEN_REQUEST_URL": None,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": None,
        },
    )
    assert person.returncode == 1 and "Failed to load token" in person.stderr, person.describe()


def test_a_confidential_client_sends_its_secret_and_revokes_with_it(
    idp: IdpServer, exls: ExlsCli, ci: CiIssuer
) -> None:
    idp.configure(workload_trust=ci.trust(audience=idp.issuer))
    job = _job(
        ci,
        EXLS_AUTH_CLIENT_ID=WORKLOAD_SECRET_CLIENT_ID,
        EXLS_AUTH_WORKLOAD_CLIENT_SECRET=WORKLOAD_CLIENT_SECRET,
    )
    login = exls.run("login", env=job)
    assert login.returncode == 0, login.describe()
    [traded] = idp.token_grants(TOKEN_EXCHANGE_GRANT, succeeded=True)
    assert traded["params"]["client_id"] == WORKLOAD_SECRET_CLIENT_ID
    token = exls.run("auth", "token", env=job).stdout.strip()
    assert idp.introspect(token)["active"] is True
    logout = exls.run("logout", env=job)
    assert logout.returncode == 0 and logout.stderr == "Logged out.\n", logout.describe()
    [revoked] = idp.events("revocation")
    assert revoked["status"] == 200 and revoked["params"]["client_id"] == WORKLOAD_SECRET_CLIENT_ID
    assert idp.introspect(token)["active"] is False

    wrong = exls.run("login", env={**job, "EXLS_AUTH_WORKLOAD_CLIENT_SECRET": "not-the-secret"})
    assert wrong.returncode == 1
    [error] = _error_lines(wrong)
    assert "did not accept client exls-ci-confidential (invalid_client" in error
    assert "not-the-secret" not in wrong.output and WORKLOAD_CLIENT_SECRET not in wrong.output
