"""A synthetic catalog of any size drawn from the real catalog's joint distribution, for scale tests.

    .venv/bin/python -m bench.synthetic_catalog --tracks 1000000 --out build/catalog-1m.parquet

A smoothed bootstrap: each synthetic track copies a random real track (so the features keep their joint
distribution: valence with energy, acousticness with loudness, ...) and every continuous feature gets
Gaussian jitter of JITTER times that feature's standard deviation, clipped to its valid range. Discrete
columns (mode, key, time signature, genre) are copied. Ids are fake but well formed (22 characters of
base 62, starting with "S", which no id of the real catalog collides with at this count: they are
checked), names say they are synthetic, and each artist becomes COPIES separate artists so that tracks per
artist stay as in the real catalog. The data is generated, never committed.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path

import numpy as np
import pandas as pd

from services.common.paths import data_dir
from services.recommender.catalog import FEATURES, RANGES, load_catalog, validate

JITTER = 0.05
DIGITS = string.digits + string.ascii_uppercase + string.ascii_lowercase
CONTINUOUS = (*FEATURES, "popularity", "duration_ms")


def fake_ids(n: int) -> np.ndarray:
    """'S' + the index in base 62, left-padded with '0' to 22 characters."""
    out = np.empty(n, dtype=object)
    for i in range(n):
        digits, k = [], i
        while True:
            k, r = divmod(k, 62)
            digits.append(DIGITS[r])
            if k == 0:
                break
        out[i] = "S" + "".join(reversed(digits)).rjust(21, "0")
    return out


def synthesize(real: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(real), n)
    out = real.iloc[rows].reset_index(drop=True).copy()
    for column in CONTINUOUS:
        if column not in out.columns:
            continue
        values = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=np.float64)
        sd = float(np.nanstd(pd.to_numeric(real[column], errors="coerce")))
        low, high = RANGES[column]
        jittered = np.clip(values + rng.normal(0.0, JITTER * sd, n), low, high)
        if column == "duration_ms":
            out[column] = pd.array(np.round(jittered), dtype="Int64")
        else:
            out[column] = jittered
    copies = max(1, round(n / len(real)))
    out["track_id"] = fake_ids(n)
    out["name"] = [f"{name} (synthetic {i})" for i, name in enumerate(out["name"].astype(str))]
    out["artists"] = out["artists"].astype(str) + " #" + (np.arange(n) % copies).astype(str)
    out["source"] = "synthetic"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument(
        "--catalog", type=Path, default=None, help="the real catalog (default: the data folder's)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source = args.catalog or data_dir() / "music" / "catalog.parquet"
    # Only servable rows: what the recommender would load from the real catalog.
    served = set(load_catalog(source).ids)
    real = pd.read_parquet(source)
    real = real[real["track_id"].isin(served)].drop_duplicates("track_id")
    synthetic = synthesize(real, args.tracks, args.seed)
    assert not set(synthetic["track_id"]) & served, "a fake id collides with a real one"
    validate(synthetic, str(args.out))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    synthetic.to_parquet(tmp, index=False)
    tmp.replace(args.out)
    print(f"{args.out}: {len(synthetic)} tracks from {len(real)} real ones ({source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
