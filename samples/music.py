"""Synthetic catalogs and labelled sets, so tests and benches need no real data: random features,
random 22-character ids, in the formats the importer reads."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd

from services.recommender.catalog import FEATURES

ALPHABET = np.array(list(string.ascii_letters + string.digits))
# Mood centres on (valence, energy); the other features are noise around class-specific means.
CENTRES = {
    "happy": (0.8, 0.7),
    "sad": (0.2, 0.25),
    "calm": (0.5, 0.35),
    "energetic": (0.6, 0.9),
    "angry": (0.2, 0.9),
}


def track_ids(rng: np.random.Generator, n: int) -> list[str]:
    return ["".join(row) for row in rng.choice(ALPHABET, size=(n, 22))]


def features(rng: np.random.Generator, n: int, centre: tuple[float, float] | None = None) -> pd.DataFrame:
    unit = {f: rng.uniform(0, 1, n) for f in FEATURES}
    if centre is not None:
        unit["valence"] = rng.normal(centre[0], 0.08, n)
        unit["energy"] = rng.normal(centre[1], 0.08, n)
        unit["acousticness"] = rng.normal(1 - centre[1], 0.1, n)
    frame = pd.DataFrame({f: np.clip(v, 0, 1) for f, v in unit.items()})
    frame["loudness"] = -30 + 28 * frame["energy"] + rng.normal(0, 1, n)
    frame["tempo"] = 70 + 90 * frame["energy"] + rng.normal(0, 5, n)
    return frame


def catalog(n: int = 2000, artists: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = features(rng, n)
    df.insert(0, "track_id", track_ids(rng, n))
    df.insert(1, "name", [f"Song {i}" for i in range(n)])
    df.insert(2, "artists", [f"Artist {rng.integers(artists)}" for _ in range(n)])
    df.insert(3, "album", [f"Album {i // 10}" for i in range(n)])
    df.insert(4, "popularity", rng.integers(0, 101, n).astype(float))
    return df


def labelled(per_class: int = 60, seed: int = 1, moods: tuple[str, ...] = tuple(CENTRES)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for mood in moods:
        part = features(rng, per_class, CENTRES[mood])
        part.insert(0, "track_id", track_ids(rng, per_class))
        part["label"] = mood
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# data_moods.csv's moods, spelt as it spells them.
DATA_MOODS = ("Happy", "Sad", "Calm", "Energetic")


def tidytuesday(n: int, rng: np.random.Generator, artists: int = 1) -> pd.DataFrame:
    """Rows in TidyTuesday's spotify_songs.csv columns; `artists` distinct artists ("Cat" when one)."""
    df = features(rng, n)
    return pd.DataFrame(
        {
            "track_id": track_ids(rng, n),
            "track_name": [f"t{i}" for i in range(n)],
            "track_artist": "Cat" if artists == 1 else [f"Artist {i % artists}" for i in range(n)],
            "track_popularity": 70,
            "track_album_id": track_ids(rng, n),
            "track_album_name": "Album",
            "track_album_release_date": "2019-06-14",
            "playlist_name": "Pop Hits",
            "playlist_id": "p",
            "playlist_genre": "pop",
            "playlist_subgenre": "dance pop",
            **df,
            "key": 2,
            "mode": 0,
            "duration_ms": 180_000,
        }
    )


def moods(n: int, rng: np.random.Generator, centred: bool = False) -> pd.DataFrame:
    """Rows in data_moods.csv's columns; `centred`: each mood's features around its centre, as real moods
    cluster, instead of uniform noise."""
    labels = rng.choice(DATA_MOODS, n)
    df = features(rng, n)
    if centred:
        for mood in DATA_MOODS:
            rows = labels == mood
            df.loc[rows] = features(rng, int(rows.sum()), CENTRES[mood.lower()]).to_numpy()
    return pd.DataFrame(
        {
            "name": [f"m{i}" for i in range(n)],
            "album": "A",
            "artist": "Dee",
            "id": track_ids(rng, n),
            "release_date": "2001-01-01",
            "popularity": 30,
            "length": 210_000,
            **df,
            "key": 1,
            "time_signature": 4,
            "mood": labels,
        }
    )


def write(folder: Path, **catalog_args: int) -> tuple[Path, Path]:
    """A catalog and a mood-labelled set as Parquet files in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    catalog_path, labelled_path = folder / "catalog.parquet", folder / "labelled.parquet"
    catalog(**catalog_args).to_parquet(catalog_path)
    labelled().to_parquet(labelled_path)
    return catalog_path, labelled_path


def recommender_env(folder: Path, n: int = 600) -> dict[str, str]:
    """Writes a synthetic catalog of n tracks into `folder`; the recommender's settings that read it."""
    catalog_path, labelled_path = write(folder, n=n)
    return {"RECOMMENDER_CATALOG_PATH": str(catalog_path), "RECOMMENDER_LABELLED_PATH": str(labelled_path)}


def write_sources(folder: Path, n: int = 1500, per_class: int = 40) -> Path:
    """The two public files of a fresh installation, in their upstream formats: a TidyTuesday
    spotify_songs.csv of a synthetic catalog, a data_moods.csv (capitalised labels, no angry or neutral)."""
    folder.mkdir(parents=True, exist_ok=True)
    songs = catalog(n=n, artists=n // 4, seed=7)
    rng = np.random.default_rng(8)
    songs = songs.rename(
        columns={
            "name": "track_name",
            "artists": "track_artist",
            "album": "track_album_name",
            "popularity": "track_popularity",
        }
    )
    songs["track_album_id"] = track_ids(rng, n)
    songs["track_album_release_date"] = "2019-01-01"
    songs["playlist_genre"] = rng.choice(["pop", "rock", "edm", "r&b", "rap", "latin"], n)
    songs["playlist_subgenre"] = "synthetic"
    songs["key"], songs["mode"], songs["duration_ms"] = rng.integers(0, 12, n), rng.integers(0, 2, n), 200_000
    songs.to_csv(folder / "spotify_songs.csv", index=False)
    moods = labelled(per_class=per_class, seed=9, moods=("happy", "sad", "calm", "energetic"))
    m = len(moods)
    moods = moods.rename(columns={"track_id": "id", "label": "mood"})
    moods["mood"] = moods["mood"].str.capitalize()
    moods["name"], moods["album"] = [f"Mood song {i}" for i in range(m)], "Mood album"
    moods["artist"] = [f"Mood artist {i}" for i in range(m)]
    moods["release_date"], moods["popularity"], moods["length"] = "2010-01-01", 50, 200_000
    moods["key"], moods["time_signature"] = rng.integers(0, 12, m), 4
    moods.to_csv(folder / "data_moods.csv", index=False)
    return folder
