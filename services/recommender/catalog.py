"""The track catalog: its schema, value ranges, validation and loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from services.common.contracts import TRACK_ID_PATTERN

# Audio features the mood model and ranking use: present in every source, including the labelled sets.
FEATURES: tuple[str, ...] = (
    "danceability",
    "energy",
    "loudness",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
)
TEXT_COLUMNS: tuple[str, ...] = ("track_id", "name", "artists", "album", "genre", "release_date", "source")
OPTIONAL_NUMERIC: tuple[str, ...] = ("popularity", "duration_ms", "key", "mode", "time_signature")
CATALOG_COLUMNS: tuple[str, ...] = TEXT_COLUMNS + ("popularity",) + FEATURES + OPTIONAL_NUMERIC[1:]

# Inclusive ranges from Spotify's audio-feature reference; loudness may slightly exceed 0 dB.
RANGES: dict[str, tuple[float, float]] = {
    **{
        f: (0.0, 1.0)
        for f in (
            "danceability",
            "energy",
            "speechiness",
            "acousticness",
            "instrumentalness",
            "liveness",
            "valence",
        )
    },
    "loudness": (-60.0, 10.0),
    "tempo": (0.0, 300.0),
    "popularity": (0.0, 100.0),
    "duration_ms": (0.0, 1e8),
    "key": (-1.0, 11.0),
    "mode": (0.0, 1.0),
    "time_signature": (0.0, 7.0),
}


class CatalogError(ValueError):
    """A catalog or import file that does not fit the schema; the message names column and row."""


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(path, low_memory=False)
    raise CatalogError(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")


def _error(source: str, column: str, mask: pd.Series, what: str) -> CatalogError:
    row = int(np.flatnonzero(mask.to_numpy())[0])
    return CatalogError(f"{source}: column {column!r}, row {row + 1}: {what}")


def validate(df: pd.DataFrame, source: str, required: tuple[str, ...] = ("track_id",) + FEATURES) -> None:
    """Raises CatalogError naming the first bad column and row (1-based data row, header excluded)."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise CatalogError(f"{source}: missing column(s) {', '.join(map(repr, missing))}")
    for column, (low, high) in RANGES.items():
        if column not in df.columns:
            continue
        raw = df[column]
        values = pd.to_numeric(raw, errors="coerce")
        not_number = values.isna() & raw.notna()
        if not_number.any():
            row = int(np.flatnonzero(not_number.to_numpy())[0])
            raise _error(source, column, not_number, f"{raw.iloc[row]!r} is not a number")
        if column in required and values.isna().any():
            raise _error(source, column, values.isna(), "value is missing")
        bad = (values < low) | (values > high)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise _error(source, column, bad, f"{values.iloc[row]:g} is outside [{low:g}, {high:g}]")
    ids = df["track_id"].astype("string")
    bad_id = ~ids.str.fullmatch(TRACK_ID_PATTERN).fillna(False)
    if bad_id.any():
        row = int(np.flatnonzero(bad_id.to_numpy())[0])
        raise _error(source, "track_id", bad_id, f"{ids.iloc[row]!r} is not a 22-character Spotify id")


@dataclass(frozen=True)
class Catalog:
    """Servable tracks: rows with a valid id, a name, artists and every feature."""

    ids: list[str]
    names: list[str]
    artists: list[str]
    albums: list[str | None]
    popularity: np.ndarray  # 0..100, NaN where unknown
    features: np.ndarray  # [n, len(FEATURES)] float64, raw units
    skipped: int
    mode: np.ndarray | None = None  # 1 major, 0 minor, NaN where unknown; None: no such column
    genres: list[frozenset[str]] | None = None  # playlist genres ("pop;edm" -> both), empty where unknown

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Catalog:
        missing = [c for c in ("track_id", "name", "artists", *FEATURES) if c not in df.columns]
        if missing:
            raise CatalogError(f"catalog: missing column(s) {', '.join(map(repr, missing))}")
        names = df["name"].astype("string").str.strip()
        artists = df["artists"].astype("string").str.strip()
        features = df[list(FEATURES)].apply(pd.to_numeric, errors="coerce")
        keep = (
            df["track_id"].astype("string").str.fullmatch(TRACK_ID_PATTERN).fillna(False)
            & (names.str.len() > 0).fillna(False)
            & (artists.str.len() > 0).fillna(False)
            & features.notna().all(axis=1)
        ).to_numpy(dtype=bool)
        keep &= ~df["track_id"].duplicated().to_numpy()
        albums = (
            df["album"].astype("string").str.strip()
            if "album" in df.columns
            else pd.Series(pd.NA, index=df.index, dtype="string")
        )
        popularity = (
            pd.to_numeric(df["popularity"], errors="coerce")
            if "popularity" in df.columns
            else pd.Series(np.nan, index=df.index)
        )
        mode = pd.to_numeric(df["mode"], errors="coerce") if "mode" in df.columns else None
        genres = (
            [
                frozenset(g.casefold().split(";")) if isinstance(g, str) and g else frozenset()
                for g in df["genre"][keep]
            ]
            if "genre" in df.columns
            else None
        )
        return cls(
            ids=df["track_id"][keep].astype(str).tolist(),
            names=names[keep].tolist(),
            artists=artists[keep].tolist(),
            albums=[a if isinstance(a, str) and a else None for a in albums[keep].tolist()],
            popularity=popularity[keep].to_numpy(dtype=np.float64, na_value=np.nan),
            features=features[keep].to_numpy(dtype=np.float64),
            skipped=int(len(df) - keep.sum()),
            mode=None if mode is None else mode[keep].to_numpy(dtype=np.float64, na_value=np.nan),
            genres=genres,
        )


def load_catalog(path: Path) -> Catalog:
    if not path.exists():
        raise CatalogError(f"catalog file {path} does not exist")
    columns = ["track_id", "name", "artists", "album", "popularity", "mode", "genre", *FEATURES]
    if path.suffix.lower() == ".parquet":
        present = set(pq.read_schema(path).names)
        return Catalog.from_frame(pd.read_parquet(path, columns=[c for c in columns if c in present]))
    return Catalog.from_frame(read_table(path))
