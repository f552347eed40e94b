"""How many cores a request gets: several when it runs alone on an idle machine, else one."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from services.common.errors import Busy
from services.emotion import runtime
from services.emotion.pipeline import EmotionPipeline
from services.emotion.runtime import FrameAdmission, InFlight, Model
from services.emotion.settings import AdmissionSettings, EmotionSettings

# runtime.free_cores reads how many of the machine's cores are idle, which a test on a shared machine
# cannot set on demand: the tests below fake that one reading, and nothing else.


def test_in_flight_says_alone_only_to_a_lone_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "free_cores", lambda cores: cores)
    flight = InFlight(solo_threads=2, cores=2)
    with flight.enter() as first:
        with flight.enter() as second:
            assert first and not second
        with flight.enter() as third:  # the first is still in flight
            assert not third
    with flight.enter() as later:
        assert later
    with InFlight(solo_threads=0, cores=2).enter() as alone:  # no solo session configured
        assert not alone


def test_no_solo_run_while_other_processes_keep_the_cores_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    flight = InFlight(solo_threads=2, cores=4)
    monkeypatch.setattr(runtime, "free_cores", lambda cores: 1)
    with flight.enter() as alone:
        assert not alone
    monkeypatch.setattr(runtime, "free_cores", lambda cores: 2)
    with flight.enter() as alone:
        assert alone


def test_free_cores_reads_the_kernels_runnable_count(tmp_path: Path) -> None:
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.52 0.58 0.59 3/187 4242\n")  # 3 runnable: this thread and 2 others
    assert runtime.free_cores(4, loadavg) == 2
    loadavg.write_text("0.10 0.20 0.30 1/187 4242\n")
    assert runtime.free_cores(2, loadavg) == 2
    loadavg.write_text("garbage")
    assert runtime.free_cores(2, loadavg) == 2  # unreadable: no reason to hold back
    assert runtime.free_cores(2, tmp_path / "missing") == 2


def test_solo_session_has_more_threads_and_does_not_spin() -> None:
    settings = EmotionSettings()
    model = Model(settings.model_path, threads=1, solo_threads=2)
    shared, solo = model.shared.get_session_options(), model.solo.get_session_options()
    assert shared.intra_op_num_threads == 1 and solo.intra_op_num_threads == 2
    assert solo.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    crops = np.random.default_rng(0).uniform(0, 255, (2, 1, 48, 48)).astype(np.float32)
    name = model.shared.get_inputs()[0].name
    np.testing.assert_allclose(
        model.run(None, {name: crops}, alone=True)[0], model.run(None, {name: crops})[0], rtol=1e-4, atol=1e-4
    )


def test_no_second_session_without_more_threads() -> None:
    model = Model(EmotionSettings().model_path, threads=2, solo_threads=2)
    assert model.solo is model.shared


def test_pipeline_uses_the_solo_session_only_for_a_lone_request(
    face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "free_cores", lambda cores: 64)  # whatever else CI runs
    pipeline = EmotionPipeline(EmotionSettings(solo_threads=2))
    seen: list[bool] = []
    second_entered = threading.Event()
    real_run = pipeline.detector.model.run

    def run(outputs: Sequence[str] | None, feeds: dict[str, np.ndarray], alone: bool = False) -> list[Any]:
        seen.append(alone)
        if alone:  # the first request waits in the detector until the second one has started
            second_entered.wait(10)
        else:
            second_entered.set()
        return real_run(outputs, feeds, alone)

    monkeypatch.setattr(pipeline.detector.model, "run", run)
    first = threading.Thread(target=pipeline.predict, args=(face_jpeg,))
    first.start()
    while not seen:
        time.sleep(0.001)
    pipeline.predict(face_jpeg)
    first.join(10)
    assert seen == [True, False]
    pipeline.predict(face_jpeg)
    assert seen == [True, False, True]


def test_a_frame_that_finds_no_worker_within_the_wait_is_refused_then() -> None:
    admission = FrameAdmission(AdmissionSettings(max_frames=8, workers=1, retry_after_s=2, wait_s=1.0))
    busy, release = threading.Event(), threading.Event()

    def hold() -> str:
        busy.set()
        release.wait(10)
        return "held"

    async def main() -> tuple[list[object], float]:
        results: list[object] = []

        async def frame(fn: Any) -> None:
            try:
                results.append(await admission.run(fn))
            except Busy as exc:
                results.append(exc)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(frame, hold)
            await anyio.to_thread.run_sync(busy.wait)
            start = time.monotonic()
            await frame(lambda: "too late")  # the one worker is held past the wait
            waited = time.monotonic() - start
            tasks.start_soon(frame, lambda: "in time")  # waits, and gets the worker when it is free
            await anyio.sleep(0.1)
            release.set()
        return results, waited

    results, waited = anyio.run(main)
    refused = results[0]
    assert isinstance(refused, Busy), results
    # Bounds with room for a slow machine: a frame that waited for the held worker would take its 10 s.
    assert refused.retry_after_s == 2 and "within 1 s" in refused.message
    assert 1.0 <= waited < 5.0
    assert results[1:] == ["held", "in time"]
