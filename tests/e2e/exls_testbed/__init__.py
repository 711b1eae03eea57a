"""Real components for the exls end-to-end tests: an OpenID provider, a Secret Service, a browser.

The pytest fixtures in ``tests/e2e/conftest.py`` wrap these classes; they are importable on
their own too (``from exls_testbed.idp import IdpServer``) for ad-hoc debugging.
"""
