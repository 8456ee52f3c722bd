"""Helpers shared by the tests (no tests here); fixtures stay in ``tests/conftest.py``."""
