"""Names a package exports but imports only on first use (PEP 562): start-up stays cheap."""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:
    from collections.abc import Callable


def lazy_names(
    package: str, homes: dict[str, str], namespace: dict[str, object], names: list[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: a name in ``homes`` is imported from
    ``package.<its home>`` when first looked up, then kept in ``namespace`` (its globals)."""

    def getattr_(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(f"{package}.{home}"), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(names))

    return getattr_, dir_
