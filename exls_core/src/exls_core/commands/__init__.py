"""One module per command family, imported lazily by :mod:`exls_core.cli`."""
