"""The evaluation's "best possible" precision@10: a ranking that knows the labels, under the service's
rules (the emotion's region first, one track per artist): training/music/recommendations.py's
precision_ceiling."""

from __future__ import annotations

import pandas as pd

from training.music.recommendations import precision_ceiling

HAPPY = {"valence": 0.8, "energy": 0.7}  # inside the happy region
SAD = {"valence": 0.2, "energy": 0.3}  # inside the sad region, outside the happy one


def tracks(rows: list[tuple[str, str, dict[str, float]]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"track_id": f"t{i}", "label": label, "artists": artists, **where}
            for i, (label, artists, where) in enumerate(rows)
        ]
    )


def test_the_region_fills_the_list_before_target_tracks_outside_it() -> None:
    held_out = tracks(
        [
            *[("happy", f"artist {i}", HAPPY) for i in range(6)],
            ("happy", "artist 0", HAPPY),  # a second track by artist 0 cannot add a place
            ("happy", "artist 1 feat. artist 7", HAPPY),  # shares a credit with a track already picked
            ("happy", "elsewhere", SAD),  # happy, but the region still has tracks to offer
            *[("energetic", f"loud {i}", HAPPY) for i in range(5)],  # inside, but not a target mood
        ]
    )
    assert precision_ceiling(held_out)["happy"] == 0.6


def test_when_the_region_runs_out_target_tracks_outside_it_come_next() -> None:
    held_out = tracks(
        [
            *[("happy", f"artist {i}", HAPPY) for i in range(3)],
            *[("happy", f"far {i}", SAD) for i in range(2)],
            *[("sad", f"other {i}", SAD) for i in range(10)],
        ]
    )
    assert precision_ceiling(held_out)["happy"] == 0.5


def test_ten_places_at_most() -> None:
    held_out = tracks([("sad", f"artist {i}", SAD) for i in range(14)])
    assert precision_ceiling(held_out)["sad"] == 1.0
    assert precision_ceiling(held_out)["happy"] == 0.0
