"""Helpers shared by every test package (importable as ``testkit``: tests/ is on sys.path)."""
