"""Builds one catalog file from public Spotify audio-feature tables (services/recommender/importer.py).

    python -m training.music.importer dataset.csv spotify_songs.csv data_moods.csv --out catalog.parquet

The formats and their checks are those of services/recommender/importer.py; the output (.parquet or
.csv) keeps a `label` column when an input has one, so mood-labelled files can serve as
RECOMMENDER_LABELLED_PATH.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from services.recommender.catalog import CatalogError
from services.recommender.importer import BY_NAME, import_files, write
from training.logs import configure, logger

log = logger("importer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="parquet or CSV files, first wins per track id")
    parser.add_argument("--out", type=Path, required=True, help="catalog file to write (.parquet or .csv)")
    parser.add_argument("--format", choices=["auto", *BY_NAME], default="auto")
    args = parser.parse_args(argv)
    configure()
    try:
        catalog = import_files(args.inputs, args.format)
        write(catalog, args.out)
    except (CatalogError, OSError) as exc:
        log.error(str(exc))
        return 2
    lacking = int((catalog["name"].isna() | catalog["artists"].isna()).sum()) if "name" in catalog else 0
    log.info(f"wrote {len(catalog)} tracks to {args.out} ({lacking} without name/artists, not servable)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
