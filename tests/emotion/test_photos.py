"""The whole pipeline on the real photos (shared/data/photos): faces found and emotions read."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.data

GROUP_FACES = {"df_couple.jpg": 2, "df_selfie_many.jpg": 7}


@pytest.fixture(scope="module")
def answers(data_dir: Path, client: TestClient) -> dict[str, dict]:
    labels = pd.read_csv(data_dir / "photos" / "labels.csv")
    out = {}
    for row in labels.itertuples():
        body = (data_dir / "photos" / row.filename).read_bytes()
        r = client.post("/predict", files={"image": (row.filename, body, "image/jpeg")})
        assert r.status_code == 200, f"{row.filename}: {r.text}"
        out[row.filename] = {"label": row.emotion, "n": row.n_faces_approx, **r.json()}
    return out


def test_every_single_face_photo_has_exactly_one_face(answers: dict[str, dict]) -> None:
    single = {name: len(a["faces"]) for name, a in answers.items() if a["n"] == 1}
    assert len(single) == 18
    assert {name: n for name, n in single.items() if n != 1} == {}


@pytest.mark.parametrize(("name", "faces"), GROUP_FACES.items())
def test_group_photos_find_most_faces(answers: dict[str, dict], name: str, faces: int) -> None:
    found = answers[name]["faces"]
    assert answers[name]["n"] == faces
    assert len(found) >= math.ceil(0.8 * faces)
    assert len(found) <= faces + 1
    areas = [f["box"]["w"] * f["box"]["h"] for f in found]
    assert areas == sorted(areas, reverse=True)


# One photo either way moves this by 6 points, so it rests on the crop geometry as much as on the model:
# the model trained on FER2013 labels alone (best FER2013 val) agrees on 13/18, the shipped one, which
# also learnt from the FER+ crowd votes, on 15/18 (reports/emotion/experiments.md).
def test_emotion_agrees_with_labels_on_single_face_photos(answers: dict[str, dict]) -> None:
    """Depends on the trained model as much as on detection and crop geometry."""
    single = [a for a in answers.values() if a["n"] == 1]
    agree = sum(bool(a["faces"]) and a["faces"][0]["emotion"] == a["label"] for a in single)
    rate = agree / len(single)
    assert rate >= 0.8, f"{agree}/{len(single)} photos agree ({rate:.0%}), model {single[0]['model']}"
