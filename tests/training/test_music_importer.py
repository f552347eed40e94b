"""The catalog importer on small synthetic files in each public format, and on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from samples.music import features, moods, tidytuesday, track_ids
from services.recommender.catalog import FEATURES, CatalogError, load_catalog
from services.recommender.importer import detect, import_files
from training.music import importer


def kaggle(n: int, rng: np.random.Generator) -> pd.DataFrame:
    df = features(rng, n)
    return pd.DataFrame(
        {
            "Unnamed: 0": range(n),
            "track_id": track_ids(rng, n),
            "artists": ["Ann;Bob"] * n,
            "album_name": "LP",
            "track_name": [f"k{i}" for i in range(n)],
            "popularity": 50,
            "duration_ms": 200_000,
            "explicit": False,
            **df,
            "key": 5,
            "mode": 1,
            "time_signature": 4,
            "track_genre": "pop",
        }
    )


def test_every_format_imports_merges_and_dedupes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    k, t, m = kaggle(5, rng), tidytuesday(4, rng), moods(3, rng)
    t.loc[0, "track_id"] = k.loc[0, "track_id"]  # same track in two files: the first file wins
    k.to_csv(tmp_path / "dataset.csv", index=False)
    t.to_csv(tmp_path / "spotify_songs.csv", index=False)
    m.to_csv(tmp_path / "data_moods.csv", index=False)
    out = tmp_path / "out" / "catalog.parquet"
    code = importer.main(
        [str(tmp_path / n) for n in ("dataset.csv", "spotify_songs.csv", "data_moods.csv")]
        + ["--out", str(out)]
    )
    assert code == 0
    df = pd.read_parquet(out)
    assert len(df) == 5 + 4 + 3 - 1 and df["track_id"].is_unique
    assert set(FEATURES) <= set(df.columns)
    first = df.set_index("track_id").loc[k.loc[0, "track_id"]]
    assert first["name"] == "k0" and first["artists"] == "Ann, Bob" and first["source"].startswith("kaggle")
    tidy = df[df["source"].str.startswith("tidytuesday")]
    assert (tidy["artists"] == "Cat").all() and (tidy["popularity"] == 70).all()
    mood_rows = df[df["source"].str.startswith("moods")]
    assert set(mood_rows["label"]) <= {"Happy", "Sad", "Calm", "Energetic"}
    assert (mood_rows["duration_ms"] == 210_000).all()
    # Our own output reads back as the moodtunes format and loads as a servable catalog.
    assert detect(list(df.columns), "out").name == "moodtunes"
    assert len(load_catalog(out)) == 11


def test_csv_output(tmp_path: Path) -> None:
    kaggle(3, np.random.default_rng(1)).to_csv(tmp_path / "k.csv", index=False)
    assert importer.main([str(tmp_path / "k.csv"), "--out", str(tmp_path / "c.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "c.csv")) == 3


def test_missing_column_is_named(tmp_path: Path) -> None:
    kaggle(3, np.random.default_rng(2)).drop(columns=["energy"]).to_csv(tmp_path / "k.csv", index=False)
    with pytest.raises(CatalogError, match=r"closest format is 'kaggle'.*'energy'"):
        import_files([tmp_path / "k.csv"])
    with pytest.raises(CatalogError, match=r"missing column\(s\) 'energy'"):
        import_files([tmp_path / "k.csv"], fmt="kaggle")


@pytest.mark.parametrize(
    ("make", "column", "value", "shown"),
    [
        (kaggle, "energy", 1.7, "'energy', row 3: 1.7 is outside [0, 1]"),
        (kaggle, "tempo", "fast", "'tempo', row 3: 'fast' is not a number"),
        (tidytuesday, "track_popularity", 140, "'track_popularity', row 3: 140 is outside [0, 100]"),
        (moods, "length", -5, "'length', row 3: -5 is outside [0, 1e+08]"),
        (moods, "id", "short", "'id', row 3: 'short' is not a 22-character Spotify id"),
    ],
)
def test_bad_value_names_column_and_row(tmp_path: Path, make, column: str, value: object, shown: str) -> None:
    df = make(4, np.random.default_rng(3))
    df[column] = df[column].astype(object)
    df.loc[2, column] = value
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(CatalogError, match=shown.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        import_files([tmp_path / "bad.csv"])
    assert importer.main([str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x.parquet")]) == 2


@pytest.mark.data
def test_imports_our_real_parquet_files(data_dir: Path, tmp_path: Path) -> None:
    music = data_dir / "music"
    out = tmp_path / "merged.parquet"
    assert (
        importer.main(
            [str(music / "catalog.parquet"), str(music / "mood_labelled.parquet"), "--out", str(out)]
        )
        == 0
    )
    df = pd.read_parquet(out)
    assert len(df) > 70_000 and df["track_id"].is_unique
    assert df["label"].notna().sum() > 1000
