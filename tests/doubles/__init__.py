"""Test doubles for the services cloudvamp talks to (OneGate, oned, ...).

Each module runs a real server or fake on localhost so tests exercise the real client code.
Import them as ``tests.doubles.<name>``: the repository root must be on sys.path, which
``python -m pytest`` from the root gives (``tests/onegate/conftest.py`` also ensures it).
"""
