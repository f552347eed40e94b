"""The one source of truth for what crosses a service boundary.

Emotion labels are in FER2013's class order: the model's output index i is EMOTIONS[i].
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, Field

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
