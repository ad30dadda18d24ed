"""One torch thread for the parser tests (the shared ``one_torch_thread`` fixture: tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    yield
