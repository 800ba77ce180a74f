"""Live migration: the FUSE session's state, from one daemon to another over the same storage.

``state`` is the stream format (sans-I/O); ``snapshot`` takes the state out of a
:class:`~hostfs.core.filesystem.FileSystem` and rebuilds it in another;
``transfer`` moves it through the pipe of vhost-user's SET_DEVICE_STATE_FD.
"""
