"""The one source of truth for what crosses a service boundary.

Emotion labels are in FER2013's class order: the model's output index i is EMOTIONS[i].
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
TRACK_ID_PATTERN = r"^[0-9A-Za-z]{22}$"
MAX_TRACKS = 50  # `limit` of /recommend and /analyze is 1..MAX_TRACKS
MAX_SEED = 2**32 - 1


class Emotion(StrEnum):
    angry = "angry"
    disgust = "disgust"
    fear = "fear"
    happy = "happy"
    sad = "sad"
    surprise = "surprise"
    neutral = "neutral"


assert tuple(e.value for e in Emotion) == EMOTIONS


class Strategy(StrEnum):
    """How a facial emotion becomes a musical target."""

    match = "match"  # mirror the mood
    lift = "lift"  # start near the mood, move toward a better one (iso principle)


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


class Face(BaseModel):
    box: Box
    emotion: Emotion
    confidence: float = Field(ge=0, le=1)
    probabilities: dict[Emotion, float]


class PredictResponse(BaseModel):
    faces: list[Face] = Field(description="Largest face first.")
    width: int
    height: int
    model: str
    region: Box | None = Field(
        default=None,
        description="The part of the frame searched for faces when the request passed "
        "the previous frame's `boxes` and they were found again there; null: the whole frame.",
    )
    timings_ms: dict[str, float] = Field(default_factory=dict)


class Track(BaseModel):
    id: str = Field(pattern=TRACK_ID_PATTERN)
    name: str
    artists: str
    album: str | None = None
    url: str
    score: float
    reason: str = ""
    popularity: float | None = None
    features: dict[str, float] = Field(default_factory=dict)


class RecommendResponse(BaseModel):
    emotion: Emotion
    strategy: Strategy = Strategy.match
    tracks: list[Track]


class MapRegion(BaseModel):
    valence: tuple[float, float]
    energy: tuple[float, float]


class MapTrack(BaseModel):
    id: str
    name: str
    artists: str
    valence: float
    energy: float
    stage: int = Field(description="the waypoint (index into regions) the track was picked for")
    reason: str


class RecommendMap(BaseModel):
    """GET /recommend/map: a list of tracks on the valence-energy plane, for "why these songs"."""

    emotion: Emotion
    strategy: Strategy
    bins: int
    density: list[list[int]] = Field(
        description="catalog tracks per cell: density[i][j] has energy in bin i and valence in bin j"
    )
    regions: list[MapRegion] = Field(description="the region each waypoint keeps its tracks in")
    tracks: list[MapTrack]


class AnalyzeResponse(PredictResponse):
    emotion: Emotion | None = Field(description="Emotion of the largest face, None when no face.")
    stable_emotion: Emotion | None = Field(
        default=None, description="Emotion that has held over the session's recent frames."
    )
    tracks: list[Track] = Field(default_factory=list)
    recommender_error: str | None = None
    tracks_updated: bool = Field(
        default=False,
        description="True when `tracks` is a fresh recommendation; False when none was made (no face, "
        "recommender down, or recommend=auto and the stable emotion has not changed).",
    )


# POST /api/mood: the page in on-device mode reads faces itself and sends only their probabilities.
MOOD_MAX_FACES = 20  # per frame, as the emotion service's default max_faces
MOOD_MAX_FRAMES = 100  # the most any steadiness window may hold (the gateway's own window is smaller)
PROBABILITY_SUM_TOLERANCE = 0.01  # rounded to 4 decimals, seven float32 probabilities sum within 4e-4


def _sums_to_one(values: list[float]) -> list[float]:
    total = math.fsum(values)
    if abs(total - 1) > PROBABILITY_SUM_TOLERANCE:
        raise ValueError(f"probabilities sum to {total:.4g}, not 1 (within {PROBABILITY_SUM_TOLERANCE:g})")
    return values


Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Probabilities = Annotated[
    list[Probability],
    Field(
        min_length=len(EMOTIONS),
        max_length=len(EMOTIONS),
        description=f"one per emotion, summing to 1 within {PROBABILITY_SUM_TOLERANCE:g}",
    ),
    AfterValidator(_sums_to_one),
]


class MoodFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    faces: list[Probabilities] = Field(
        min_length=1,
        max_length=MOOD_MAX_FACES,
        description="Each face's probabilities in the order of GET /api/emotions, the largest face first.",
    )


class MoodRequest(BaseModel):
    """What the page in on-device mode sends: no image, the probabilities of its recent frames."""

    model_config = ConfigDict(extra="forbid")

    frames: list[MoodFrame] = Field(
        min_length=1,
        max_length=MOOD_MAX_FRAMES,
        description="The session's most recent frames that showed a face, oldest first; at most the "
        "steadiness window of GET /api/emotions. The gateway derives the steady emotion from them (the "
        "largest face's most probable emotion per frame) and the steady emotion it holds for the session.",
    )


class MoodResponse(BaseModel):
    stable_emotion: Emotion = Field(description="The session's steady emotion, derived from the frames.")
    tracks: list[Track] = Field(default_factory=list)
    recommender_error: str | None = None
    tracks_updated: bool = Field(
        default=False,
        description="True when `tracks` is a fresh recommendation; False when none was made (recommender "
        "down, recommend=never, or recommend=auto and nothing changed since the last one).",
    )


def top_emotion(probabilities: list[float]) -> Emotion:
    """The most probable emotion; a tie goes to the first in EMOTIONS order (frontend/steadiness.js too)."""
    return Emotion(EMOTIONS[max(range(len(EMOTIONS)), key=probabilities.__getitem__)])


class ErrorResponse(BaseModel):
    detail: str


def parse_track_ids(text: str | None) -> frozenset[str]:
    """The `exclude` parameter: comma-separated track ids, blanks ignored. ValueError names the first
    malformed one."""
    ids = frozenset(part.strip() for part in (text or "").split(",") if part.strip())
    bad = sorted(i for i in ids if not re.fullmatch(TRACK_ID_PATTERN, i))
    if bad:
        raise ValueError(f"{bad[0][:40]!r} is not a 22-character Spotify track id")
    return ids


def spotify_url(track_id: str) -> str:
    return f"https://open.spotify.com/track/{track_id}"


class GraphInfo(BaseModel):
    """One ONNX graph that the emotion service runs and the page's on-device mode downloads."""

    name: str = Field(description="content-addressed file name: <kind>.<first 16 hex of its sha256>.onnx")
    sha256: str
    bytes: int


class OnDevicePipeline(BaseModel):
    """The emotion service's settings for the steps around the graphs (services/emotion/settings.py),
    which frontend/ondevice.js ports."""

    detect_max_side: int
    video_max_side: int
    photo_detect_max_side: int
    min_face_px: int
    max_faces: int
    track_scale: float
    track_max_side: int
    track_face_px: int
    crop_margin: float
    crop_shift_y: float
    frame_retry: float
    retry_side: int
    align: bool
    max_roll: float


class OnDeviceManifest(BaseModel):
    """The emotion service's GET /models: what the page needs to compute what /predict computes."""

    model: str = Field(description="as /predict's `model`")
    files: dict[str, GraphInfo] = Field(description="'detect' and 'classify'")
    pipeline: OnDevicePipeline
