"""Collects emotion-labelled tracks from Spotify playlists whose names contain an emotion word.

    SPOTIPY_CLIENT_ID=... SPOTIPY_CLIENT_SECRET=... python -m training.music.scraper --out scraped.parquet

For each word it searches playlists, keeps those whose name contains the word, pages through their
tracks and labels every track with that word (a track found under several words takes the most
frequent). Audio features come from /v1/audio-features; apps registered since 27 Nov 2024 get 403 there,
so features then come from the catalog by track id, and tracks found in neither are written to
`<out stem>.missing.csv`. Rate limits (429) are retried by spotipy itself, honouring Retry-After.
Progress is checkpointed to a JSON state file after every playlist and feature batch: rerunning the
same command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from tqdm import tqdm

from services.common.contracts import EMOTIONS
from services.recommender.catalog import FEATURES, load_catalog
from services.recommender.settings import RecommenderSettings
from training.logs import configure, logger

log = logger("scraper")
EXTRA_FEATURES = ("key", "mode", "time_signature", "duration_ms")
FEATURE_BATCH = 100  # the audio-features endpoint takes at most 100 ids


def make_client(
    api_url: str | None = None,
    token_url: str | None = None,
    *,
    retries: int = 5,
    status_retries: int = 5,
    backoff_factor: float = 0.5,
    timeout: float = 10.0,
) -> spotipy.Spotify:
    """Client-credentials client (SPOTIPY_CLIENT_ID/SECRET from the environment) with explicit retries.

    spotipy retries 429 and 5xx through urllib3: at most `status_retries` times, sleeping for the
    response's Retry-After when it has one, else `backoff_factor * 2**n` seconds.
    """
    auth = spotipy.SpotifyClientCredentials(cache_handler=MemoryCacheHandler(), requests_timeout=timeout)
    if token_url:
        auth.OAUTH_TOKEN_URL = token_url
    client = spotipy.Spotify(
        auth_manager=auth,
        retries=retries,
        status_retries=status_retries,
        backoff_factor=backoff_factor,
        requests_timeout=timeout,
    )
    if api_url:
        client.prefix = api_url.rstrip("/") + "/"
    return client


@dataclass
class State:
    """Everything fetched so far; saved as JSON so an interrupted scrape resumes."""

    done: dict[str, list[str]] = field(default_factory=dict)  # word -> finished playlist ids
    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> metadata + label counts
    features: dict[str, dict[str, float] | None] = field(default_factory=dict)  # None: API had none
    features_api: str = "unknown"  # "ok" or "forbidden" once known

    @classmethod
    def load(cls, path: Path) -> State:
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)  # atomic: a crash never leaves half a state file


def _record(track: dict[str, Any]) -> dict[str, Any]:
    album = track.get("album") or {}
    return {
        "name": track.get("name"),
        "artists": ", ".join(a["name"] for a in track.get("artists") or [] if a.get("name")),
        "album": album.get("name"),
        "release_date": album.get("release_date"),
        "popularity": track.get("popularity"),
        "duration_ms": track.get("duration_ms"),
        "labels": {},
    }


class Scraper:
    def __init__(
        self,
        client: spotipy.Spotify,
        state: State,
        state_path: Path,
        catalog_features: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.state_path = state_path
        self.catalog_features = catalog_features or {}

    def playlists(self, word: str, wanted: int) -> list[dict[str, Any]]:
        """Playlists whose name contains the word (search also returns looser matches and null items)."""
        found: list[dict[str, Any]] = []
        page: dict[str, Any] | None = self.client.search(q=word, type="playlist", limit=50)["playlists"]
        while page and len(found) < wanted:
            found += [p for p in page["items"] if p and word.casefold() in (p.get("name") or "").casefold()]
            page = self.client.next(page)["playlists"] if page.get("next") else None
        return found[:wanted]

    def collect(self, word: str, playlist_id: str, max_tracks: int) -> int:
        page: dict[str, Any] | None = self.client.playlist_items(
            playlist_id, limit=100, additional_types=("track",)
        )
        count = 0
        while page and count < max_tracks:
            for item in page["items"]:
                track = (item or {}).get("track")
                # Local files and podcast episodes have no catalogue id or audio features.
                if (
                    not track
                    or track.get("type", "track") != "track"
                    or not track.get("id")
                    or track.get("is_local")
                ):
                    continue
                record = self.state.tracks.setdefault(track["id"], _record(track))
                record["labels"][word] = record["labels"].get(word, 0) + 1
                count += 1
            page = self.client.next(page) if page.get("next") else None
        return count

    def scrape(
        self, words: list[str], playlists_per_word: int, max_tracks: int, progress: bool = True
    ) -> None:
        with tqdm(total=len(words) * playlists_per_word, desc="playlists", disable=not progress) as bar:
            for word in words:
                done = self.state.done.setdefault(word, [])
                found = self.playlists(word, playlists_per_word)
                bar.total = (bar.total or 0) + len(found) - playlists_per_word
                for playlist in found:
                    if playlist["id"] not in done:
                        n = self.collect(word, playlist["id"], max_tracks)
                        bar.set_postfix(word=word, tracks=n)
                        done.append(playlist["id"])
                        self.state.save(self.state_path)
                    bar.update()
        self.fetch_features(progress)

    def fetch_features(self, progress: bool = True) -> None:
        todo = [t for t in self.state.tracks if t not in self.state.features]
        batches = [todo[i : i + FEATURE_BATCH] for i in range(0, len(todo), FEATURE_BATCH)]
        for batch in tqdm(batches, desc="audio features", disable=not progress):
            if self.state.features_api != "forbidden":
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        answer = self.client.audio_features(batch)
                    self.state.features_api = "ok"
                    for track_id, feats in zip(batch, answer, strict=True):
                        self.state.features[track_id] = _features(feats)
                except spotipy.SpotifyException as exc:
                    if exc.http_status != 403:
                        raise
                    log.warning(
                        "audio-features answered 403 (apps registered since 27 Nov 2024 are "
                        "refused it): taking features from the catalog by track id"
                    )
                    self.state.features_api = "forbidden"
            for track_id in batch:
                self.state.features.setdefault(track_id, None)
            self.state.save(self.state_path)

    def table(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(tracks with features, tracks lacking them)."""
        rows, missing = [], []
        for track_id, record in self.state.tracks.items():
            labels = Counter(record["labels"])
            row = {
                "track_id": track_id,
                **{k: v for k, v in record.items() if k != "labels"},
                "label": labels.most_common(1)[0][0],
                "labels": ",".join(sorted(labels)),
            }
            feats, origin = self.state.features.get(track_id), "api"
            if feats is None:
                feats, origin = self.catalog_features.get(track_id), "catalog"
            if feats is None:
                missing.append(row)
            else:
                rows.append({**row, **feats, "features_from": origin})
        return pd.DataFrame(rows), pd.DataFrame(missing)


def _features(answer: dict[str, Any] | None) -> dict[str, float] | None:
    if not answer or any(answer.get(f) is None for f in FEATURES):
        return None
    return {f: float(answer[f]) for f in (*FEATURES, *EXTRA_FEATURES) if answer.get(f) is not None}


def catalog_features(path: Path | None) -> dict[str, dict[str, float]]:
    if path is None or not path.exists():
        return {}
    catalog = load_catalog(path)
    return {
        track_id: dict(zip(FEATURES, row, strict=True))
        for track_id, row in zip(catalog.ids, catalog.features.tolist(), strict=True)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="labelled tracks to write (.parquet or .csv)")
    parser.add_argument("--state", type=Path, help="checkpoint file (default: <out>.state.json)")
    parser.add_argument("--words", default=",".join(EMOTIONS), help="comma-separated emotion words")
    parser.add_argument("--playlists", type=int, default=5, help="playlists per word")
    parser.add_argument("--max-tracks", type=int, default=200, help="tracks per playlist")
    parser.add_argument(
        "--catalog",
        type=Path,
        default=RecommenderSettings().catalog_path,
        help="features when audio-features is refused (default: RECOMMENDER_CATALOG_PATH)",
    )
    parser.add_argument("--api-url", help="Web API base (default https://api.spotify.com/v1/)")
    parser.add_argument("--token-url", help="token endpoint (default https://accounts.spotify.com/api/token)")
    parser.add_argument("--retries", type=int, default=5, help="retries on 429/5xx (spotipy status_retries)")
    parser.add_argument("--backoff", type=float, default=0.5, help="spotipy backoff_factor, seconds")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    configure()
    if not os.environ.get("SPOTIPY_CLIENT_ID") or not os.environ.get("SPOTIPY_CLIENT_SECRET"):
        log.error("set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET (a Spotify app's client credentials)")
        return 2
    state_path = args.state or args.out.with_suffix(".state.json")
    client = make_client(
        args.api_url,
        args.token_url,
        retries=args.retries,
        status_retries=args.retries,
        backoff_factor=args.backoff,
    )
    scraper = Scraper(client, State.load(state_path), state_path, catalog_features(args.catalog))
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    try:
        scraper.scrape(words, args.playlists, args.max_tracks, progress=not args.no_progress)
    except spotipy.SpotifyException as exc:
        log.error(
            f"Spotify answered {exc.http_status}: {exc.msg.strip()}; progress is saved in "
            f"{state_path}, rerun the same command to resume"
        )
        return 1
    found, missing = scraper.table()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix.lower() == ".csv":
        found.to_csv(args.out, index=False)
    else:
        found.to_parquet(args.out, index=False)
    missing_path = args.out.with_name(args.out.stem + ".missing.csv")
    missing.to_csv(missing_path, index=False)
    api = scraper.state.features_api
    log.info(
        f"{len(found)} labelled tracks with features -> {args.out} (audio-features API: {api}); "
        f"{len(missing)} lacking features -> {missing_path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
