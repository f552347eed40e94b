"""How long a fresh installation waits for music: the recommender's first run, timed phase by phase.

    MOODTUNES_DATA=../shared/data .venv/bin/python -m bench.first_run [--rounds 3]

Serves the two public files' real bytes (MOODTUNES_DATA/music/sources/) from a local HTTP server, so the
download phase measures this machine, not a network link (8.1 MB over a real one takes what the link
allows). Each round starts from an empty cache: download and check both files, import and write the
catalog (first_run), then what the service does next (load, fit, candidate pools); then a second start
that finds the cache. Writes reports/first_run.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench import report
from samples.upstream import MOODS, SONGS, Files, serving
from services.common.paths import data_dir
from services.recommender.download import first_run
from services.recommender.pipeline import build, needs_download
from services.recommender.settings import FirstRunSettings, RecommenderSettings

PHASES = ("download_and_check_s", "import_and_write_s", "service_build_s", "total_s", "cached_start_s")


def one_round(url: str, cache: Path) -> dict[str, float]:
    settings = RecommenderSettings(
        catalog_path=None,
        labelled_path=None,
        first_run=FirstRunSettings(cache_dir=cache, catalog_url=f"{url}/{SONGS}", moods_url=f"{url}/{MOODS}"),
    )
    assert needs_download(settings)
    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        if message.startswith("building"):
            marks["build"] = time.perf_counter()

    start = time.perf_counter()
    asyncio.run(first_run(settings.first_run, progress))
    fetched = time.perf_counter()
    build(settings)
    ready = time.perf_counter()
    assert not needs_download(settings)
    _, timings = build(settings)  # a later start: the cache is there, nothing is downloaded
    return {
        "download_and_check_s": marks["build"] - start,
        "import_and_write_s": fetched - marks["build"],
        "service_build_s": ready - fetched,
        "total_s": ready - start,
        "cached_start_s": timings["total_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=report.REPORTS)
    args = parser.parse_args(argv)
    sources = data_dir() / "music" / "sources"
    files = Files({name: (sources / name).read_bytes() for name in (SONGS, MOODS)})
    rounds = []
    with serving(files) as url:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as cache:
                rounds.append(one_round(url, Path(cache)))
                catalog = pd.read_parquet(Path(cache) / "catalog.parquet", columns=["track_id"])
                labelled = pd.read_parquet(Path(cache) / "mood_labelled.parquet", columns=["label"])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "bytes": {name: len(body) for name, body in files.content.items()},
        "catalog_tracks": len(catalog),
        "labelled": labelled["label"].str.lower().value_counts().to_dict(),
        "rounds": rounds,
        "median": {p: statistics.median(r[p] for r in rounds) for p in PHASES},
    }
    report.write(
        args.out,
        "first_run",
        result,
        title="The recommender's first run",
        command=f"python -m bench.first_run --rounds {args.rounds}",
        notes=[
            "The two public files served from a local HTTP server (download speed here is this machine's, "
            "not a network link's); median and rounds in seconds per phase. download_and_check: both files "
            "fetched, sha256, columns and rows checked; import_and_write: the importer and the two Parquet "
            "files; service_build: catalog load, mood model fit, candidate pools (the service is ready "
            "after it); cached_start: a later start that finds the cache (no download, no import).",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
