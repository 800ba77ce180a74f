from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.devfuse.mounting import Mounted, devfuse_mount


@pytest.fixture
async def mounted(tmp_path: Path) -> AsyncIterator[Mounted]:
    async with devfuse_mount(tmp_path) as mount:
        yield mount
