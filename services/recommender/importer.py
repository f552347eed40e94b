"""Reads public Spotify audio-feature tables into catalog columns (the recommender's first run uses it too).

Formats are recognised by their columns (or forced by name): our own parquet/CSV (`moodtunes`), Kaggle's
"Spotify Tracks Dataset" (`kaggle`), TidyTuesday 2020-01-21 `spotify_songs.csv` (`tidytuesday`) and
mood-labelled CSVs in data_moods style (`moods`). Every table is validated (columns, value ranges, track
ids; the error names the column and the 1-based data row), then all are merged, first table wins per
track id. A `label` column is kept when an input has one, so the output of mood-labelled files can serve
as RECOMMENDER_LABELLED_PATH. The command line is `python -m training.music.importer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from services.recommender.catalog import CATALOG_COLUMNS, FEATURES, CatalogError, read_table, validate

log = logging.getLogger("moodtunes.importer")


@dataclass(frozen=True)
class Format:
    name: str
    required: tuple[str, ...]  # columns as the source spells them
    rename: dict[str, str]  # source column -> catalog column
    artist_separator: str | None = None


FORMATS: tuple[Format, ...] = (
    Format("moodtunes", ("track_id", "name", "artists", *FEATURES), {}),
    Format(
        "kaggle",
        (
            "track_id",
            "artists",
            "album_name",
            "track_name",
            "popularity",
            "duration_ms",
            "explicit",
            *FEATURES,
            "key",
            "mode",
            "time_signature",
            "track_genre",
        ),
        {"track_name": "name", "album_name": "album", "track_genre": "genre"},
        artist_separator=";",
    ),
    Format(
        "tidytuesday",
        (
            "track_id",
            "track_name",
            "track_artist",
            "track_popularity",
            "track_album_id",
            "track_album_name",
            "track_album_release_date",
            "playlist_genre",
            "playlist_subgenre",
            *FEATURES,
            "key",
            "mode",
            "duration_ms",
        ),
        {
            "track_name": "name",
            "track_artist": "artists",
            "track_popularity": "popularity",
            "track_album_id": "album_id",
            "track_album_name": "album",
            "track_album_release_date": "release_date",
            "playlist_genre": "genre",
            "playlist_subgenre": "subgenre",
        },
    ),
    Format(
        "moods",
        (
            "name",
            "album",
            "artist",
            "id",
            "release_date",
            "popularity",
            "length",
            *FEATURES,
            "key",
            "time_signature",
            "mood",
        ),
        {"id": "track_id", "artist": "artists", "length": "duration_ms", "mood": "label"},
    ),
)
BY_NAME = {f.name: f for f in FORMATS}


def detect(columns: list[str], source: str) -> Format:
    """The most specific format whose columns are all present; otherwise an error naming what is missing."""
    present = set(columns)
    matches = [f for f in FORMATS if set(f.required) <= present]
    if matches:
        return max(matches, key=lambda f: len(f.required))
    closest = max(FORMATS, key=lambda f: len(set(f.required) & present))
    missing = [c for c in closest.required if c not in present]
    raise CatalogError(
        f"{source}: unrecognised columns; closest format is {closest.name!r}, "
        f"missing column(s) {', '.join(map(repr, missing))}"
    )


def normalise(df: pd.DataFrame, fmt: Format, source: str) -> pd.DataFrame:
    """Validates a table in `fmt` and returns it in catalog columns; errors use the source's names."""
    missing = [c for c in fmt.required if c not in df.columns]
    if missing:
        names = ", ".join(map(repr, missing))
        raise CatalogError(f"{source}: missing column(s) {names} for format {fmt.name!r}")
    out = df.rename(columns=fmt.rename)
    original = {v: k for k, v in fmt.rename.items()}
    try:
        validate(out, source)
    except CatalogError as exc:
        # Report the column as the file spells it.
        message = str(exc)
        for catalog_name, source_name in original.items():
            message = message.replace(f"column {catalog_name!r}", f"column {source_name!r}")
        raise CatalogError(message) from None
    if fmt.artist_separator:
        out["artists"] = out["artists"].astype("string").str.replace(fmt.artist_separator, ", ", regex=False)
    keep = [c for c in (*CATALOG_COLUMNS, "subgenre", "album_id", "label") if c in out.columns]
    out = out[keep].copy()
    if "source" not in out.columns:
        out["source"] = f"{fmt.name}:{Path(source).name}"
    return out


def import_table(df: pd.DataFrame, source: str, fmt: str = "auto") -> pd.DataFrame:
    chosen = detect(list(df.columns), source) if fmt == "auto" else BY_NAME[fmt]
    frame = normalise(df, chosen, source)
    log.info("%s: %d rows as %s", source, len(frame), chosen.name)
    return frame


def merge(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table, the first frame winning for each track id."""
    merged = pd.concat(frames, ignore_index=True)
    return merged.drop_duplicates("track_id", keep="first").reset_index(drop=True)


def import_files(paths: list[Path], fmt: str = "auto") -> pd.DataFrame:
    return merge([import_table(read_table(path), str(path), fmt) for path in paths])


def write(df: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        df.to_parquet(out, index=False, compression="zstd")
    elif out.suffix.lower() == ".csv":
        df.to_csv(out, index=False)
    else:
        raise CatalogError(f"{out}: output must end in .parquet or .csv")
