"""`LocalCluster`: a coordinator and workers inside this Python process."""

from __future__ import annotations

import atexit
import os
import weakref
from typing import TYPE_CHECKING, Optional, Union

from shardfusion._native import NativeLocalCluster

if TYPE_CHECKING:
    from shardfusion.session import Session

# Clusters still running when the interpreter exits (a notebook kernel restarting or
# shutting down) are stopped here, so no server thread outlives its kernel's state.
_running: "weakref.WeakSet[LocalCluster]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_running):
        try:
            cluster.shutdown()
        except Exception:  # the process is exiting; nothing left to report to
            pass


class LocalCluster:
    """A whole ShardFusion cluster in this process: a coordinator and ``workers`` workers, each
    on a free loopback port, with its state in ``data_dir`` (a temporary directory, removed on
    shutdown, when not given).

    Use it as a context manager, or call :meth:`shutdown`::

        with shardfusion.LocalCluster(workers=2) as cluster:
            session = cluster.connect()
    """

    def __init__(
        self, workers: int = 2, data_dir: Optional[Union[str, os.PathLike]] = None
    ) -> None:
        if workers < 1:
            raise ValueError("a local cluster needs at least one worker")
        self._native = NativeLocalCluster(
            workers, None if data_dir is None else os.fspath(data_dir)
        )
        self.workers = workers
        _running.add(self)

    @property
    def url(self) -> str:
        """The coordinator's Flight SQL URL, for :func:`shardfusion.connect`, ADBC or JDBC."""
        return self._native.url

    @property
    def data_dir(self) -> str:
        return self._native.data_dir

    @property
    def running(self) -> bool:
        return self._native.running

    def connect(self) -> "Session":
        """A new session on this cluster."""
        from shardfusion.session import connect

        return connect(self.url)

    def shutdown(self) -> None:
        """Stops the coordinator and the workers. Calling it again does nothing."""
        self._native.shutdown()
        _running.discard(self)

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalCluster(workers={self.workers}, url={self.url!r}, {state})"
