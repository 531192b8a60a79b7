"""A NATS connection that is closed however the block leaves (an unclosed one warns in a later test)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats
from nats.aio.client import Client


@contextlib.asynccontextmanager
async def connected(servers: list[str]) -> AsyncIterator[Client]:
    nc = await nats.connect(servers)
    try:
        yield nc
    finally:
        await nc.close()
