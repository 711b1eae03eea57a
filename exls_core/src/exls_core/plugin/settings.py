"""A flow's own settings: command line, environment, config.toml."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class FlowSettings:
    """A flow's own settings. ``request.settings.get(name)`` answers, first match wins, from:

    1. this login's command-line options (``--no-qr`` is ``qr=False``);
    2. the settings core reads for flows, ``<flow id>_<name>`` before ``<name>``
       (``get("timeout")`` in the ``pkce`` flow is ``pkce_timeout``): ``EXLS_AUTH_<NAME>``
       beats ``[auth] <name>`` in config.toml, and core has checked them before the login
       began (a bad value is a one-line error, exit 2);
    3. for any other name, the environment variable ``EXLS_AUTH_<FLOW ID>_<NAME>``, then
       ``EXLS_AUTH_<NAME>``, then ``<name>`` in the ``[flows.<flow id>]`` table of
       config.toml, as text (``true``, ``30``), checked with ``parse`` (a ValueError saying
       what is expected becomes the same kind of one-line error);
    4. ``default``.

    Without ``parse`` the answer is text: use :meth:`switch` for a yes/no setting.
    """

    def __init__(
        self,
        flow_id: str = "",
        values: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        file_table: Mapping[str, str] | None = None,
        file_path: str = "config.toml",
    ) -> None:
        self.flow_id = flow_id
        self._values = dict(values or {})
        self._environ = environ
        self._file = dict(file_table or {})  # [flows.<flow id>] of the config file at file_path
        self._file_path = file_path

    def _names(self, name: str) -> list[str]:
        return [f"{self.flow_id}_{name}", name] if self.flow_id else [name]

    def get(
        self, name: str, default: Any = None, *, parse: Callable[[str], Any] | None = None
    ) -> Any:
        names = self._names(name)
        for key in names:
            if key in self._values:
                return self._values[key]
        import os

        from exls_core.config import env_var, parse_value

        environ = os.environ if self._environ is None else self._environ
        for key in names:
            if (var := env_var(key)) in environ:
                raw = environ[var]
                return raw if parse is None else parse_value(parse, raw, var)
        if name in self._file:
            raw, where = self._file[name], f"{self._file_path}: [flows.{self.flow_id}] {name}"
            return raw if parse is None else parse_value(parse, raw, where)
        return default

    def switch(self, name: str, default: bool) -> bool:
        """A yes/no setting: ``1``/``0``, ``true``/``false``, ``yes``/``no``, ``on``/``off``."""
        from exls_core.config import parse_switch

        return bool(self.get(name, default, parse=parse_switch))
