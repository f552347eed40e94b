"""First run without a catalog: download the two public source files, check them, build the catalog.

TidyTuesday's spotify_songs.csv becomes the catalog (with data_moods' tracks added), data_moods.csv the
mood-labelled tracks, both through the importer, into FirstRunSettings.cache_dir:

    <cache>/sources/spotify_songs.csv, <cache>/sources/data_moods.csv   the files as downloaded, checked
    <cache>/catalog.parquet, <cache>/mood_labelled.parquet               what the service loads

Every file appears under its name only complete and checked (a temporary file in the same folder, then
an atomic rename), so an interrupted or failed first run leaves nothing that a later one would trust.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd

from services.recommender.catalog import CatalogError
from services.recommender.importer import BY_NAME, import_table, merge, write
from services.recommender.settings import FirstRunSettings

log = logging.getLogger("moodtunes.recommender.download")

CATALOG_FILE = "catalog.parquet"
LABELLED_FILE = "mood_labelled.parquet"
SOURCES_DIR = "sources"
# Generous for a slow link; a stalled server is reported instead of waited on forever.
TIMEOUT = httpx.Timeout(30.0, connect=10.0)

Progress = Callable[[str], None]


class DownloadError(RuntimeError):
    """The first-run catalog could not be made; the message says what went wrong and what to set.
    `transient`: the network failed (no connection, cut short, stalled, a server error), so trying again
    later may work; a file that is not the expected one will not become it."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Source:
    name: str  # file name in <cache>/sources
    setting: str  # the environment variable holding its address
    url: str
    size: int
    sha256: str
    rows: int
    fmt: str  # the importer's format name


def sources(settings: FirstRunSettings) -> tuple[Source, Source]:
    return (
        Source(
            "spotify_songs.csv",
            "RECOMMENDER_FIRST_RUN_CATALOG_URL",
            settings.catalog_url,
            settings.catalog_bytes,
            settings.catalog_sha256,
            settings.catalog_rows,
            "tidytuesday",
        ),
        Source(
            "data_moods.csv",
            "RECOMMENDER_FIRST_RUN_MOODS_URL",
            settings.moods_url,
            settings.moods_bytes,
            settings.moods_sha256,
            settings.moods_rows,
            "moods",
        ),
    )


def built(cache_dir: Path) -> tuple[Path, Path]:
    """Where the first run puts the catalog and the labelled tracks."""
    return cache_dir / CATALOG_FILE, cache_dir / LABELLED_FILE


def how_to_fix(source: Source, cache_dir: Path) -> str:
    return (
        f"To use a local copy, set {source.setting} to the path of {source.name} (or put the file in "
        f"{cache_dir / SOURCES_DIR}/); or set RECOMMENDER_CATALOG_PATH and RECOMMENDER_LABELLED_PATH to a "
        "catalog and labelled tracks built with `python -m training.music.importer`."
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _local_path(url: str) -> Path | None:
    """A local copy named by path or file:// address; None for a network address."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(parts.path)
    return None if parts.scheme else Path(url)


def _check_bytes(source: Source, size: int, digest: str) -> None:
    if size != source.size:
        what = "cut short" if size < source.size else "longer than expected"
        raise DownloadError(
            f"{what}: got {size:,} bytes, expected {source.size:,}", transient=size < source.size
        )
    if digest != source.sha256:
        raise DownloadError(f"sha256 is {digest}, expected {source.sha256} (the content differs)")


def _check_file(path: Path, source: Source) -> None:
    if not path.is_file():
        raise DownloadError(f"{path} is not a file")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    _check_bytes(source, path.stat().st_size, digest.hexdigest())


def _read_table(path: Path, source: Source) -> pd.DataFrame:
    """The file as a table with the importer's columns for its format and the expected row count."""
    try:
        df = pd.read_csv(path, low_memory=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DownloadError(f"not a readable CSV: {exc}") from exc
    missing = [c for c in BY_NAME[source.fmt].required if c not in df.columns]
    if missing:
        raise DownloadError(f"missing column(s) {', '.join(map(repr, missing))}")
    if len(df) != source.rows:
        raise DownloadError(f"{len(df):,} rows, expected {source.rows:,}")
    return df


class _Meter:
    """Logs (and reports) a download's progress every 10%."""

    def __init__(self, source: Source, total: int, progress: Progress) -> None:
        self.source, self.total, self.progress = source, total, progress
        self.next_tenth = 1

    def update(self, done: int) -> None:
        tenths = done * 10 // self.total if self.total else 0
        if tenths < self.next_tenth:
            return
        self.next_tenth = tenths + 1
        message = (
            f"downloading {self.source.name}: {min(tenths, 10) * 10}% ({_mb(done)} of {_mb(self.total)})"
        )
        log.info("%s", message)
        self.progress(message)


async def _download(client: httpx.AsyncClient, source: Source, folder: Path, progress: Progress) -> Path:
    """The checked bytes in a temporary file in `folder`; nothing is left there when it raises."""
    fd, name = tempfile.mkstemp(prefix=f".{source.name}.", suffix=".part", dir=folder)
    tmp = Path(name)
    size = 0
    try:
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                async with client.stream("GET", source.url) as response:
                    if response.status_code != 200:
                        raise DownloadError(
                            f"HTTP {response.status_code} {response.reason_phrase}",
                            transient=response.status_code >= 500 or response.status_code == 429,
                        )
                    # Content-Length counts the bytes on the wire (compressed, when the server compresses).
                    meter = _Meter(
                        source, int(response.headers.get("content-length", 0)) or source.size, progress
                    )
                    async for chunk in response.aiter_bytes():  # as they arrive: a cut is counted exactly
                        size += len(chunk)
                        if size > source.size:
                            raise DownloadError(f"longer than the expected {source.size:,} bytes; stopped")
                        digest.update(chunk)
                        out.write(chunk)
                        meter.update(response.num_bytes_downloaded)
            _check_bytes(source, size, digest.hexdigest())
        except httpx.ConnectTimeout as exc:
            raise DownloadError(f"cannot connect (no answer within {TIMEOUT.connect:g} s)", True) from exc
        except httpx.ConnectError as exc:
            raise DownloadError(f"cannot connect ({exc})", True) from exc
        except httpx.TimeoutException as exc:
            raise DownloadError(
                f"stalled: nothing received for {TIMEOUT.read:g} s after {size:,} of {source.size:,} bytes",
                transient=True,
            ) from exc
        except httpx.RemoteProtocolError as exc:
            raise DownloadError(
                f"cut short: the connection closed after {size:,} of {source.size:,} bytes", transient=True
            ) from exc
        except httpx.HTTPError as exc:
            raise DownloadError(f"failed after {size:,} bytes ({exc!r})", True) from exc
    except BaseException:  # any failure, a full disk, or the service stopping mid-download
        tmp.unlink(missing_ok=True)
        raise
    return tmp


async def _obtain(
    client: httpx.AsyncClient, source: Source, cache_dir: Path, progress: Progress
) -> pd.DataFrame:
    """The source's table: from a local copy, the cache, or a download that lands in the cache."""
    local = _local_path(source.url)
    cached = cache_dir / SOURCES_DIR / source.name
    path = local or cached
    where = f"{path}" if local or cached.exists() else source.url
    try:
        if local is not None or cached.exists():
            await asyncio.to_thread(_check_file, path, source)
            return await asyncio.to_thread(_read_table, path, source)
        cached.parent.mkdir(parents=True, exist_ok=True)
        log.info(
            "downloading %s (%s) from %s into %s", source.name, _mb(source.size), source.url, cached.parent
        )
        tmp = await _download(client, source, cached.parent, progress)
        try:
            table = await asyncio.to_thread(_read_table, tmp, source)
            _publish(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
        log.info(
            "%s: %s bytes, sha256 as expected, %s rows", source.name, f"{source.size:,}", f"{len(table):,}"
        )
        return table
    except OSError as exc:
        raise DownloadError(
            f"no music catalog: {source.name}: {exc}. If {cache_dir} is not writable, set "
            "MOODTUNES_CACHE_DIR to a folder that is. " + how_to_fix(source, cache_dir)
        ) from exc
    except DownloadError as exc:
        stale = " (delete it to download again)" if local is None and cached.exists() else ""
        raise DownloadError(
            f"no music catalog: {source.name} from {where}{stale}: {exc}. Nothing half-written was kept. "
            + how_to_fix(source, cache_dir),
            transient=exc.transient,
        ) from exc


def _publish(tmp: Path, path: Path) -> None:
    """Puts a complete file under its name in one step; readable by all, as a plain copy would be
    (temporary files start private)."""
    tmp.chmod(0o644)
    os.replace(tmp, path)


def _write_atomic(df: pd.DataFrame, path: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(df, Path(name))
        _publish(Path(name), path)
    finally:
        Path(name).unlink(missing_ok=True)


def build(
    songs: pd.DataFrame, moods: pd.DataFrame, song_source: Source, mood_source: Source, cache_dir: Path
) -> None:
    """The catalog (TidyTuesday first, then data_moods' tracks) and the labelled tracks, written atomically;
    the catalog last, since its presence is what marks the cache complete."""
    catalog_path, labelled_path = built(cache_dir)
    try:
        labelled = import_table(moods, mood_source.name, mood_source.fmt)
        catalog = merge([import_table(songs, song_source.name, song_source.fmt), labelled])
    except CatalogError as exc:
        raise DownloadError(
            f"no music catalog: the downloaded files do not import: {exc}. "
            + how_to_fix(song_source, cache_dir)
        ) from exc
    _write_atomic(labelled, labelled_path)
    _write_atomic(catalog, catalog_path)
    log.info(
        "built %s (%s tracks) and %s (%s labelled)",
        catalog_path,
        f"{len(catalog):,}",
        labelled_path,
        f"{len(labelled):,}",
    )


async def first_run(settings: FirstRunSettings, progress: Progress) -> tuple[Path, Path]:
    """Makes <cache>/catalog.parquet and <cache>/mood_labelled.parquet, downloading what is missing."""
    songs_source, moods_source = sources(settings)
    try:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"no music catalog: cannot create the cache folder {settings.cache_dir} ({exc}); "
            "set MOODTUNES_CACHE_DIR to a writable folder."
        ) from exc
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True) as client:
        songs = await _obtain(client, songs_source, settings.cache_dir, progress)
        moods = await _obtain(client, moods_source, settings.cache_dir, progress)
    progress("building the music catalog from the downloaded files")
    await asyncio.to_thread(build, songs, moods, songs_source, moods_source, settings.cache_dir)
    return built(settings.cache_dir)
