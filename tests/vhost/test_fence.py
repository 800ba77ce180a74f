"""Where the virtqueue puts its full barriers (QEMU's smp_mb() pairs), made observable.

A barrier cannot be watched from Python, but its place can: each test swaps
:func:`full_fence` for the driver on the other CPU, whose store becomes
visible exactly at the barrier.  The device's store must already be in
guest memory by then, and its load must come after, so it sees that store.
"""

from __future__ import annotations

import trio

from hostfs.vhost import ring as ring_module
from hostfs.vhost import virtqueue
from hostfs.vhost.fence import full_fence
from hostfs.vhost.ring import Ring
from tests.support.rings import EchoHandler, device_queue
from tests.vhost.test_virtqueue import serve


def test_fence_runs() -> None:
    full_fence()


def test_used_idx_stored_before_used_event_loaded(rings, monkeypatch) -> None:
    """virtio_split_should_notify: the driver re-enables interrupts (used_event) while the
    device publishes; whichever is second must see the other, or no interrupt comes."""
    memory, driver = rings
    queue = device_queue(memory, driver, event_idx=True)
    driver.set_used_event(5)  # interrupts off for now, as far as the device can tell
    driver.submit([b"x"], [4])
    serve(queue)

    def driver_enables_interrupts() -> None:
        # The driver saw no new used entry only if our used->idx store was not visible yet.
        assert driver.used_idx() == 1, "used->idx not stored before the barrier"
        driver.set_used_event(0)  # virtqueue_enable_cb: "interrupt me after entry 0"

    monkeypatch.setattr(virtqueue, "full_fence", driver_enables_interrupts)
    assert queue.should_notify()


def test_avail_event_stored_before_avail_idx_reloaded(rings, monkeypatch) -> None:
    """virtio_queue_split_set_notification then virtqueue_pop: a chain the driver adds while
    the device asks for kicks is either kicked or seen by the device's next look."""
    memory, driver = rings
    queue = device_queue(memory, driver, event_idx=True)

    def driver_adds_without_kick() -> None:
        assert driver.avail_event() == queue.last_avail_idx, "avail_event not stored"
        driver.submit([b"x"], [4])  # saw the old avail_event: no kick

    monkeypatch.setattr(virtqueue, "full_fence", driver_adds_without_kick)
    queue.request_kick()
    assert queue.pending() == 1


async def test_ring_looks_again_before_sleeping(rings, monkeypatch) -> None:
    """The drain loop, after asking for a kick, must pop once more before it waits on the
    kick fd: a chain added just before that kick request is never kicked."""
    memory, driver = rings
    added = False

    def driver_adds_without_kick() -> None:
        nonlocal added
        if not added:
            added = True
            driver.submit([b"x"], [4])

    monkeypatch.setattr(virtqueue, "full_fence", driver_adds_without_kick)
    ring = Ring(1)
    ring.lifecycle.kick(protocol_features=False)  # SET_VRING_KICK
    ring.kick_fd = driver.kick_fd
    ring.call_fd = driver.call_fd
    async with trio.open_nursery() as nursery:
        await nursery.start(
            ring.serve, device_queue(memory, driver, event_idx=True), EchoHandler(), 0
        )
        with trio.fail_after(5):
            while driver.used_idx() != 1:
                await trio.sleep(ring_module.POLL_INTERVAL)
        await ring.stop()
    assert len(driver.collect()) == 1
