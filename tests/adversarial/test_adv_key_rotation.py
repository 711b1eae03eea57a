"""Key rotation (rp-key-rotation-op-sign-key) and unknown keys, with JWKS fetches counted.

exls caches the issuer's JWKS for a day. A token signed with a key it has not seen must
cause exactly one refetch: accepted if the provider now publishes the key, rejected if not,
and never a fetch storm.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import EMAIL, Outcomes, Result, Sandbox, Scenarios
from lying_idp import Key, LyingIdP, Tenant, rsa_key

pytestmark = pytest.mark.attack("key_rotation")


@dataclass
class Rotation:
    first: Result
    second: Result
    third: Result | None
    jwks_after: tuple[int, ...]  # cumulative JWKS fetches after each login
    before_second: dict[str, str]
    after_second: dict[str, str]
    status: tuple[int, dict[str, object] | None]


def rotate(
    idp: LyingIdP,
    root: Path,
    name: str,
    *,
    new_signer: str,
    published: tuple[str, ...],
    same_kid: bool = False,
    kid: bool = True,
    third: bool = True,
) -> Rotation:
    """Log in, let the provider change keys, log in again (and once more)."""

    def token(tenant: Tenant, ctx: dict[str, object]) -> str:
        return tenant.signer.sign(tenant.claims_for(None), **({} if kid else {"kid": None}))

    tenant = idp.tenant(name, id_token=token)
    box = Sandbox(root / name, tenant)
    counts = []
    first = box.login()
    counts.append(tenant.hits["jwks"])
    old_kid = tenant.signer.kid
    tenant.signer = rsa_key(new_signer)
    tenant.published = [rsa_key(kid) for kid in published]
    if same_kid:  # a new key under the old kid: only the signature tells them apart
        tenant.signer = Key(old_kid, rsa_key(new_signer).private)
        tenant.published = [tenant.signer]
    before = box.keyring()
    second = box.login()
    after = box.keyring()
    counts.append(tenant.hits["jwks"])
    last = None
    if third:
        last = box.login()
        counts.append(tenant.hits["jwks"])
    return Rotation(first, second, last, tuple(counts), before, after, box.status())


SCENARIOS: dict[str, dict[str, Any]] = {
    "rotation-both-keys-published": dict(new_signer="adv-2", published=("adv-1", "adv-2")),
    "rotation-old-key-withdrawn": dict(new_signer="adv-2", published=("adv-2",)),
    "unknown-kid-after-a-cached-login": dict(new_signer="adv-rogue", published=("adv-1",)),
    "rotation-without-kid": dict(new_signer="adv-2", published=("adv-2",), kid=False),
    "rotation-under-the-same-kid": dict(new_signer="adv-2", published=(), same_kid=True),
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    return {name: partial(rotate, idp, root, name, **kw) for name, kw in SCENARIOS.items()}


@pytest.mark.parametrize(
    "name",
    [
        "rotation-both-keys-published",
        "rotation-old-key-withdrawn",
        # issue 25 item 8: new keys under the same kid were refused, the keys not fetched again
        "rotation-under-the-same-kid",
    ],
)
def test_a_rotated_key_is_accepted_after_exactly_one_refetch(
    name: str, outcomes: Outcomes[Rotation]
) -> None:
    rotation = outcomes[name]
    assert rotation.first.rc == 0, rotation.first
    assert rotation.second.rc == 0, rotation.second
    assert rotation.third is not None and rotation.third.rc == 0, rotation.third
    # one fetch for the first login, one refetch for the new kid, then the cache serves
    assert rotation.jwks_after == (1, 2, 2)
    assert rotation.status[0] == 0 and rotation.status[1] is not None
    assert rotation.status[1]["email"] == EMAIL


@pytest.mark.parametrize("name", ["unknown-kid-after-a-cached-login"])
def test_an_unknown_kid_is_rejected_after_one_refetch_and_the_session_kept(
    name: str, outcomes: Outcomes[Rotation]
) -> None:
    rotation = outcomes[name]
    assert rotation.first.rc == 0, rotation.first
    assert rotation.second.rc == 1, rotation.second
    assert (
        rotation.second.error == "ID token rejected: no RS256 key 'adv-rogue' in the issuer's JWKS"
    )
    assert rotation.after_second == rotation.before_second
    assert rotation.third is not None and rotation.third.rc == 1
    assert rotation.jwks_after == (1, 2, 3)  # one refetch per attempt, no storm
    assert rotation.status[0] == 0  # the first login's session is still there


@pytest.mark.parametrize("name", ["rotation-without-kid"])
def test_a_rotated_key_without_kid_is_accepted_after_one_refetch(
    name: str, outcomes: Outcomes[Rotation]
) -> None:
    rotation = outcomes[name]
    assert rotation.first.rc == 0, rotation.first
    assert rotation.second.rc == 0, rotation.second
    assert rotation.jwks_after[:2] == (1, 2)
