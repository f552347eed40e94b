"""ONNX Runtime sessions shared by the detector and the classifier, and the in-flight count that
decides how many cores a request may use."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import numpy as np
import onnxruntime as ort

from services.common.errors import Busy
from services.common.limits import SHED

if TYPE_CHECKING:  # settings.py imports the classifier, which imports this module
    from services.emotion.settings import AdmissionSettings

T = TypeVar("T")


def session_options(threads: int, spin: bool = True) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    # Few intra-op threads: concurrent requests run in parallel on the thread pool instead.
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin:
        # Spinning workers hold their core after each run: in a trial, the detector's and the
        # classifier's solo sessions then fought over the cores and a frame took twice as long.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class Model:
    """One ONNX model in two sessions: `shared` with `threads` intra-op threads, for requests that
    run beside others (each on its own core), and `solo` with `solo_threads`, for a request that has
    the machine to itself: its latency is then split over the idle cores instead of waiting on one."""

    def __init__(self, model: bytes | Path, threads: int, solo_threads: int = 0) -> None:
        source = model if isinstance(model, bytes) else str(model)
        self.shared = ort.InferenceSession(
            source, session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.solo = self.shared
        if solo_threads > threads:
            self.solo = ort.InferenceSession(
                source, session_options(solo_threads, spin=False), providers=["CPUExecutionProvider"]
            )

    def run(
        self, outputs: Sequence[str] | None, feeds: dict[str, np.ndarray], alone: bool = False
    ) -> list[Any]:
        return (self.solo if alone else self.shared).run(outputs, feeds)


def free_cores(cores: int, loadavg: Path = Path("/proc/loadavg")) -> int:
    """Cores with nothing to run at this instant, counting the calling thread's as free: from the
    kernel's count of runnable tasks (/proc/loadavg, 4th field, host-wide in a container). Where
    that is not readable, every core counts as free."""
    try:
        runnable = int(loadavg.read_bytes().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return cores
    return cores - max(0, runnable - 1)


class InFlight:
    """Counts the requests being processed, so that each knows whether it may use more cores: only
    when it is the only one in flight and the machine has `solo_threads` cores free. The second
    condition matters where other processes share the cores (the gateway and the recommender on one
    machine): there a request split over busy cores waits on preempted workers at every layer. On
    the in-flight count alone, frames of the gateway load test ran solo too, and throughput suffered
    in a trial; with the check, nearly none run solo under that load (reports/solo_load.md).
    """

    def __init__(self, solo_threads: int = 0, cores: int | None = None) -> None:
        self.solo_threads = solo_threads
        self.cores = cores or len(os.sched_getaffinity(0))
        self._count = 0
        self._lock = threading.Lock()

    @contextmanager
    def enter(self) -> Iterator[bool]:
        """Yields True when this request may run on solo_threads cores."""
        with self._lock:
            self._count += 1
            alone = self._count == 1
        try:
            yield alone and self.solo_threads > 1 and free_cores(self.cores) >= self.solo_threads
        finally:
            with self._lock:
                self._count -= 1


class FrameAdmission:
    """At most `max_frames` frames at once, running or waiting; `workers` of them run at once, each on a
    thread of its own. A frame beyond them is refused at once (Busy, with a time to retry), before its
    body is read; an admitted one that finds no free worker within `wait_s` is refused then. So memory
    and waiting time stay bounded however many clients send frames, and however few cores the service
    gets: on a busy machine the frames admitted by count alone would wait seconds for a worker."""

    def __init__(self, settings: AdmissionSettings) -> None:
        self.admitted = settings.max_frames
        self.retry_after_s = settings.retry_after_s
        self.max_wait_s = settings.wait_s
        self.limiter = anyio.CapacityLimiter(settings.workers)
        self.count = 0

    def free(self) -> bool:
        return self.count < self.admitted

    def busy(self, reason: str = "frames", detail: str | None = None) -> Busy:
        SHED.labels(reason).inc()
        return Busy(
            detail or f"busy: {self.admitted} frames in progress, retry shortly",
            retry_after_s=self.retry_after_s,
        )

    def enter(self) -> None:
        if not self.free():
            raise self.busy()
        self.count += 1

    def leave(self) -> None:
        self.count -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on a worker thread, once one is free within max_wait_s; else Busy."""
        with anyio.move_on_after(self.max_wait_s) as waited:
            await self.limiter.acquire()
        if waited.cancelled_caught:
            raise self.busy("frame_wait", f"busy: no worker free within {self.max_wait_s:g} s, retry shortly")
        try:
            # The thread comes from anyio's default pool: this limiter already bounds the frames on it.
            return await anyio.to_thread.run_sync(fn, *args)
        finally:
            self.limiter.release()
