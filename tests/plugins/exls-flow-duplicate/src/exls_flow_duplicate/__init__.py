"""A second device_code flow."""

from exls_core.plugin import hookimpl


@hookimpl
def exls_flow_priority(env):  # type: ignore[no-untyped-def]
    return 1
