"""Faults with requests flowing: the recommender, then the emotion service, then Redis go away (killed, or
stuck with SIGSTOP); the gateway answers a clear 503 or a degraded answer within its timeouts, never a
500 or a hang, and recovers by itself when they come back on the same ports.

Redis here is a private `redis-server` on a free port, so killing it touches nothing else."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bench.memory import server_pid
from samples.images import astronaut_jpeg
from samples.music import recommender_env
from services.launch import SERVICES, backends_env, free_port, service
from tests.integration.stack import gateway_env

# Short timeouts keep the test quick; what is tested is that they hold, whatever their value.
PREDICT_TIMEOUT_S = 3.0
RECOMMEND_TIMEOUT_S = 2.0
REDIS_BACKOFF_S = 1.0
GATEWAY_ENV = {
    "GATEWAY_EMOTION_TIMEOUT_S": str(PREDICT_TIMEOUT_S),
    "GATEWAY_RECOMMENDER_TIMEOUT_S": str(RECOMMEND_TIMEOUT_S),
    "GATEWAY_EMOTION_CONNECT_TIMEOUT_S": "0.5",
    "GATEWAY_RECOMMENDER_CONNECT_TIMEOUT_S": "0.5",
    "GATEWAY_REDIS_BACKOFF_S": str(REDIS_BACKOFF_S),
}
# The slowest a gateway answer may be: a full read timeout, its connection retries, and a slow CPU.
WORST_S = PREDICT_TIMEOUT_S + 3 * 0.5 + 3.0
JPEG = astronaut_jpeg()

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


class Restartable:
    """A service on a fixed port that can be stopped, frozen and started again."""

    def __init__(self, start: Callable[[], contextlib.AbstractContextManager[object]]) -> None:
        self._start = start
        self._running: contextlib.ExitStack | None = None

    def start(self) -> None:
        assert self._running is None
        stack = contextlib.ExitStack()
        stack.enter_context(self._start())
        self._running = stack

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The process is stuck (SIGSTOP): connections are accepted by the kernel, nothing answers."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def redis_server(port: int) -> Iterator[None]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.05)
        client.close()
        yield
    finally:
        proc.kill()
        proc.wait()


class Traffic:
    """Requests flowing through the gateway the whole time; records every answer or client error."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.results: list[tuple[str, int | str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.gateway, timeout=30) as http:
            i = 0
            while not self._stop.is_set():
                i += 1
                start = time.perf_counter()
                try:
                    if i % 2:
                        resp = http.post(
                            "/analyze",
                            params={"recommend": "always", "seed": i % 5},
                            files={"image": ("f.jpg", JPEG, "image/jpeg")},
                        )
                    else:
                        resp = http.get("/recommend", params={"emotion": "happy", "seed": i % 7})
                    outcome: int | str = resp.status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                kind = "analyze" if i % 2 else "recommend"
                self.results.append((kind, outcome, time.perf_counter() - start))
                self._stop.wait(0.1)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    resp = call()
    return resp, time.perf_counter() - start


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "did not recover in time"
        time.sleep(0.2)


def test_gateway_degrades_and_recovers_as_dependencies_fail(tmp_path: Path) -> None:
    ports = {"emotion": free_port(), "recommender": free_port(), "gateway": free_port(), "redis": free_port()}
    url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    rec_env = recommender_env(tmp_path)
    gw_env = {
        **backends_env(url["emotion"], url["recommender"]),
        **gateway_env(f"redis://127.0.0.1:{ports['redis']}/0"),
        **GATEWAY_ENV,
    }
    emotion = Restartable(lambda: service("emotion", port=ports["emotion"]))
    recommender = Restartable(lambda: service("recommender", port=ports["recommender"], env=rec_env))
    gateway = Restartable(lambda: service("gateway", port=ports["gateway"], env=gw_env))
    redis_ctl = Restartable(lambda: redis_server(ports["redis"]))
    parts = [redis_ctl, emotion, recommender, gateway]

    http = httpx.Client(base_url=url["gateway"], timeout=30)

    def analyze(**params: str | int) -> httpx.Response:
        return http.post(
            "/analyze",
            params={"recommend": "always", **params},
            files={"image": ("f.jpg", JPEG, "image/jpeg")},
        )

    def recommend(seed: int) -> httpx.Response:
        return http.get("/recommend", params={"emotion": "sad", "seed": seed})

    try:
        for part in parts:
            part.start()
        assert analyze().json()["tracks"] and recommend(1).headers["X-Cache"] == "miss"

        with Traffic(url["gateway"]) as traffic:
            # 1. Recommender stopped: faces still come back (degraded), new lists are a clear 503,
            #    lists already in Redis are still served.
            recommender.stop()
            resp, took = timed(lambda: analyze(seed=101))  # a list not cached yet
            assert resp.status_code == 200 and resp.json()["faces"] and resp.json()["tracks"] == []
            assert "recommender" in resp.json()["recommender_error"] and took < WORST_S
            resp, took = timed(lambda: recommend(2))
            assert resp.status_code == 503 and "recommender" in resp.json()["detail"] and took < WORST_S
            assert recommend(1).headers["X-Cache"] == "hit"
            recommender.start()
            eventually(lambda: recommend(2).status_code == 200)

            # 2. Recommender stuck: the read timeout answers for it.
            with frozen(server_pid(SERVICES["recommender"][0], ports["recommender"])):
                resp, took = timed(lambda: recommend(3))
                assert resp.status_code == 503 and took < RECOMMEND_TIMEOUT_S + 2.0
            eventually(lambda: recommend(3).status_code == 200)

            # 3. Emotion service stopped, then stuck: /analyze and /predict are a clear 503;
            #    /recommend does not need it.
            emotion.stop()
            resp, took = timed(analyze)
            assert resp.status_code == 503 and "emotion" in resp.json()["detail"] and took < WORST_S
            assert http.post("/predict", files={"image": ("f.jpg", JPEG, "image/jpeg")}).status_code == 503
            assert recommend(4).status_code == 200
            emotion.start()
            eventually(lambda: analyze().status_code == 200)
            with frozen(server_pid(SERVICES["emotion"][0], ports["emotion"])):
                resp, took = timed(analyze)
                assert resp.status_code == 503 and took < PREDICT_TIMEOUT_S + 2.0
            eventually(lambda: analyze().status_code == 200)

            # 4. Redis killed: everything is served uncached; when it is back the cache is used again.
            redis_ctl.stop()
            for seed in (5, 5):
                resp, took = timed(functools.partial(recommend, seed))
                assert resp.status_code == 200 and resp.headers["X-Cache"] == "miss" and took < WORST_S
            assert analyze().json()["tracks"]
            assert http.get("/readyz").status_code == 200
            assert http.get("/api/status").json()["cache"]["status"] != "ok"
            redis_ctl.start()
            eventually(lambda: recommend(6).headers["X-Cache"] == "hit")
            assert http.get("/api/status").json()["cache"]["status"] == "ok"

        # The traffic all along: only 200s and clear 503s, no dropped connection, nothing hung.
        outcomes = {outcome for _, outcome, _ in traffic.results}
        assert outcomes <= {200, 503}, outcomes
        assert 503 in outcomes  # the traffic did run into the faults
        assert len(traffic.results) > 20
        assert max(took for _, _, took in traffic.results) < WORST_S
    finally:
        http.close()
        for part in reversed(parts):
            part.stop()
