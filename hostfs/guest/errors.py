"""The one exception the guest tooling raises for problems outside the guest."""


class GuestError(Exception):
    """The guest could not be prepared or started: no kernel, daemon failed, ..."""
