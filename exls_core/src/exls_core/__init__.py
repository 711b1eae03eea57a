"""exls core: the CLI, the plugin contract (:mod:`exls_core.plugin`) and session handling.

Keep this module tiny: every command imports it, including the fast ``auth token`` path.
"""

from __future__ import annotations

__version__ = "0.1.0"
