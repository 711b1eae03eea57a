"""A flow whose availability check raises: exls must skip it with a warning."""

from exls_core.plugin import hookimpl


@hookimpl
def exls_flow_priority(env):  # type: ignore[no-untyped-def]
    raise RuntimeError("the availability check of this plugin is broken")
