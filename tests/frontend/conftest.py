"""Fixtures for the front-end tests: a running oned double and an auth file."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fe_support import OnedDouble  # noqa: E402


@pytest.fixture
def oned():
    with OnedDouble(resize_settle_s=0.02, migrate_settle_s=0.05) as double:
        yield double


@pytest.fixture
def auth_file(tmp_path, oned):
    path = tmp_path / "one_auth"
    path.write_text(oned.session + "\n")
    return str(path)


