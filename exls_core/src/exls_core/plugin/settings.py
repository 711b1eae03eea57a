"""A flow's own settings: command line, environment, config.toml."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


def flow_variable(flow_id: str, name: str) -> str:
    """The environment variable of a flow's setting: ``EXLS_AUTH_<FLOW ID>_<NAME>``, upper
    case, with every character a shell cannot put in a name (``-``, ``.``) as ``_``: the
    flow ``acme-card`` reads ``reader`` from ``EXLS_AUTH_ACME_CARD_READER``."""
    key = f"{flow_id}_{name}" if flow_id else name
    return "EXLS_AUTH_" + re.sub(r"[^A-Za-z0-9_]", "_", key).upper()


class FlowSettings:
    """A flow's own settings. ``settings.get(name)`` answers, first match wins, from:

    1. what core hands the flow for this login: its command-line options (``--no-qr`` is
       ``qr=False``) and the settings core reads for flows (``callback_ports`` and
       ``pkce_timeout``, already checked; ``<flow id>_<name>`` before ``<name>``, so
       ``get("timeout")`` in the ``pkce`` flow is ``pkce_timeout``);
    2. the flow's own variable ``EXLS_AUTH_<FLOW ID>_<NAME>`` (see :func:`flow_variable`);
    3. the shared variable ``EXLS_AUTH_<NAME>``, unless ``name`` is one of core's own
       settings (``client_id``, ``issuer``, ``scopes``...): a flow never reads core's
       values, so such a name comes from the flow's own variable and table only;
    4. ``<name>`` in the ``[flows.<flow id>]`` table of config.toml;
    5. ``default``.

    The environment beats the file, as everywhere in exls. Values from 2-4 are text
    (``true``, ``30``), checked with ``parse`` (a ValueError saying what is expected becomes
    a one-line error naming the variable or the file and key, exit 2). Without ``parse`` the
    answer is text: use :meth:`switch` for a yes/no setting.

    ``secret=True`` marks a setting as a secret (a password, a refresh token): its value
    never appears in an error, and one read from config.toml, a plain-text file, draws a
    warning that points to the environment variable instead.
    """

    def __init__(
        self,
        flow_id: str = "",
        values: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        file_table: Mapping[str, str] | None = None,
        file_path: str = "config.toml",
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.flow_id = flow_id
        self._values = dict(values or {})
        self._environ = environ
        self._file = dict(file_table or {})  # [flows.<flow id>] of the config file at file_path
        self._file_path = file_path
        self._warn = warn  # core's warning line; None: warnings are not shown

    def __repr__(self) -> str:  # never a value: some are secrets
        return f"FlowSettings({self.flow_id!r})"

    def variable(self, name: str) -> str:
        """The flow's own environment variable for ``name``, to name it in a message."""
        return flow_variable(self.flow_id, name)

    def get(
        self,
        name: str,
        default: Any = None,
        *,
        parse: Callable[[str], Any] | None = None,
        secret: bool = False,
    ) -> Any:
        for key in (f"{self.flow_id}_{name}", name) if self.flow_id else (name,):
            if key in self._values:
                return self._values[key]
        import os

        from exls_core.config import CORE_VARIABLES, env_var

        environ = os.environ if self._environ is None else self._environ
        own = self.variable(name)
        for var in dict.fromkeys((own, env_var(name))):  # own, then shared (one without an id)
            if var not in CORE_VARIABLES and var in environ:
                return self._parse(environ[var], parse, var, secret)
        if name in self._file:
            where = f"{self._file_path}: [flows.{self.flow_id}] {name}"
            if secret and self._warn is not None:
                self._warn(
                    f"{where} is a secret in a plain-text file; set {own} "
                    "in the environment instead (from your secret store) and remove it there."
                )
            return self._parse(self._file[name], parse, where, secret)
        return default

    @staticmethod
    def _parse(raw: str, parse: Callable[[str], Any] | None, where: str, secret: bool) -> Any:
        from exls_core.config import parse_value

        return raw if parse is None else parse_value(parse, raw, where, secret=secret)

    def switch(self, name: str, default: bool) -> bool:
        """A yes/no setting: ``1``/``0``, ``true``/``false``, ``yes``/``no``, ``on``/``off``."""
        from exls_core.config import parse_switch

        return bool(self.get(name, default, parse=parse_switch))
