"""Fixtures for the TLS tests: every network test runs on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from tls_helpers import Runner


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine to completion on a fresh loop of the parametrized kind."""
    if request.param == "uvloop":
        return uvloop.run
    return asyncio.run
