"""Gateway replicas that agree: two real gateway processes on one real Redis answer one viewer's frames,
sent to them alternately, exactly as one gateway does; when Redis dies mid-session they go on answering
from per-process state, with a log line and no 5xx.

The frames are real images whose emotions come from the real emotion service: at start-up the test
asks it for the emotion of a few variants of a face crop (`detect=false`) and keeps two that differ,
plus a blank frame with no face."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageOps
from skimage import data

from samples.music import recommender_env
from samples.servers import redis_server
from services.common.contracts import Emotion
from services.gateway.steadiness import Steadiness
from services.launch import backends_env, service
from tests.integration.stack import gateway_env, redis_db

REDIS_DB = 11  # this test's own database: flushed before and after, nothing else touched
WINDOW, VOTES = 5, 3
# Two emotions (a, b) and no face (-): it starts on a, flickers, then b holds, then a comes back.
SCRIPT = "aabab-bbaab-aaa-ba"


@dataclass(frozen=True)
class Frame:
    name: str
    body: bytes
    detect: bool
    emotion: Emotion | None


def jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def predict(emotion_url: str, body: bytes, detect: bool) -> Emotion | None:
    resp = httpx.post(
        f"{emotion_url}/predict",
        params={"detect": str(detect).lower()},
        content=body,
        headers={"Content-Type": "image/jpeg"},
        timeout=60,
    )
    resp.raise_for_status()
    faces = resp.json()["faces"]
    return Emotion(faces[0]["emotion"]) if faces else None


def pick_frames(emotion_url: str) -> dict[str, Frame]:
    face = Image.fromarray(data.astronaut()).convert("L").crop((150, 40, 330, 240))
    variants = [face, face.rotate(180), ImageOps.invert(face), Image.new("L", (96, 96), 128)]
    frames: dict[str, Frame] = {}
    for variant in variants:
        body = jpeg(variant)
        emotion = predict(emotion_url, body, detect=False)
        if not frames:
            frames["a"] = Frame("a", body, False, emotion)
        elif emotion != frames["a"].emotion:
            frames["b"] = Frame("b", body, False, emotion)
            break
    assert "b" in frames, "the emotion service read every variant as the same emotion"
    blank = jpeg(Image.new("L", (320, 240), 200))
    frames["-"] = Frame("-", blank, True, predict(emotion_url, blank, detect=True))
    assert frames["-"].emotion is None, "a blank frame should show no face"
    return frames


@dataclass(frozen=True)
class Backends:
    emotion: str
    recommender: str
    frames: dict[str, Frame]


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    with (
        service("emotion") as emotion,
        service("recommender", env=recommender_env(tmp_path_factory.mktemp("music"))) as rec,
    ):
        yield Backends(emotion, rec, pick_frames(emotion))


@contextlib.contextmanager
def gateways(backends: Backends, redis_url: str, n: int, log_dir: Path | None = None) -> Iterator[list[str]]:
    env = {
        **backends_env(backends.emotion, backends.recommender),
        **gateway_env(redis_url),
        "GATEWAY_STEADINESS_WINDOW": str(WINDOW),
        "GATEWAY_STEADINESS_VOTES": str(VOTES),
    }
    with contextlib.ExitStack() as stack:
        urls = [
            stack.enter_context(
                service("gateway", env=env, log=log_dir / f"gateway{i}.log" if log_dir else None)
            )
            for i in range(n)
        ]
        yield urls


def analyze(gateway: str, frame: Frame, session: str) -> dict[str, Any]:
    resp = httpx.post(
        f"{gateway}/analyze",
        params={"detect": str(frame.detect).lower(), "limit": 3},
        headers={"X-Session-ID": session},
        files={"image": (f"{frame.name}.jpg", frame.body, "image/jpeg")},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def play(urls: list[str], frames: dict[str, Frame], script: str, session: str) -> list[tuple[Any, ...]]:
    """Sends the script's frames round-robin over the gateways; per frame: emotion, stable emotion,
    whether new tracks came."""
    answers = [analyze(urls[i % len(urls)], frames[c], session) for i, c in enumerate(script)]
    return [(a["emotion"], a["stable_emotion"], a["tracks_updated"]) for a in answers]


def expected_stable(frames: dict[str, Frame], script: str) -> list[str | None]:
    steady = Steadiness(WINDOW, VOTES, 1, 60)
    state = steady.session("s")
    stable = [steady.observe(state, frames[c].emotion) for c in script]
    return [None if s is None else str(s) for s in stable]


def logs_tail(log_dir: Path) -> str:
    """The gateways' last lines, for a failure's message: a disagreement comes with its cause."""
    return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(log_dir.glob("*.log")))


def test_two_gateways_on_one_redis_agree_with_one(backends: Backends, tmp_path: Path) -> None:
    frames = backends.frames
    with redis_db(REDIS_DB) as (url, _), gateways(backends, url, 3, tmp_path) as (solo, one, two):
        alone = play([solo], frames, SCRIPT, "viewer-solo")
        shared = play([one, two], frames, SCRIPT, "viewer-shared")
    stable = [s for _, s, _ in alone]
    assert stable == expected_stable(frames, SCRIPT), logs_tail(tmp_path)
    assert len({s for s in stable}) == 2, "the script must switch the stable emotion"
    assert shared == alone, logs_tail(tmp_path)


def test_without_redis_two_gateways_disagree(backends: Backends) -> None:
    """What the shared state fixes: each process's own state gives the viewer another stable emotion."""
    frames = backends.frames
    with gateways(backends, "", 2) as (one, two):
        split = play([one, two], frames, SCRIPT, "viewer")
    assert [s for _, s, _ in split] != expected_stable(frames, SCRIPT)


def test_redis_dying_mid_session_degrades_to_per_process_state(backends: Backends, tmp_path: Path) -> None:
    frames = backends.frames
    half = len(SCRIPT) // 2
    with redis_server() as (url, proc), gateways(backends, url, 2, tmp_path) as (one, two):
        before = play([one, two], frames, SCRIPT[:half], "viewer")
        proc.kill()
        proc.wait(10)
        # One gateway carries the session on from what Redis last told it; the other still answers.
        after = play([one], frames, SCRIPT[half:], "viewer")
        other = analyze(two, frames["b"], "viewer")
    assert [s for _, s, _ in before + after] == expected_stable(frames, SCRIPT)
    assert other["faces"] and other["stable_emotion"] is not None
    for name in ("gateway0.log", "gateway1.log"):
        log = (tmp_path / name).read_text()
        assert "redis session observe failed" in log, log[-2000:]
