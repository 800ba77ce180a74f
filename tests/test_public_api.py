"""``hostfs.testing`` is a public API (its docstring says so): users test their own
set-ups with it, so its names do not change without this test changing too."""

from __future__ import annotations

import hostfs.testing

PUBLIC = {
    "DriverQueue",
    "Frontend",
    "FrontendError",
    "FuseError",
    "FuseReply",
    "GuestFuseClient",
    "GuestRam",
    "Pipeline",
    "PipelineResult",
    "Submitted",
}


def test_hostfs_testing_exports_its_documented_names() -> None:
    assert set(hostfs.testing.__all__) == PUBLIC
    for name in PUBLIC:
        exported = getattr(hostfs.testing, name)
        assert exported.__doc__, f"{name} has no docstring"
        assert name in hostfs.testing.__doc__ or exported.__module__.startswith("hostfs.testing.")
