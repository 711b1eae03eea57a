"""An example exls flow plugin; see flow.py."""
