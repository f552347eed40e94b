"""Fitting and evaluating the mood KNN on synthetic labelled tracks (real-data runs are in reports/music)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samples import music as synthetic
from services.common.contracts import EMOTIONS
from services.recommender.mood_model import KnnConfig, MoodModel, load_labelled
from training.music import evaluate, fit


@pytest.fixture(scope="module")
def labelled_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = synthetic.labelled(per_class=40)
    df["source"] = ["data_moods" if m != "angry" else "other" for m in df["label"]]
    df.loc[df["label"] == "calm", "label"] = ["neutral", "calm"] * 20  # merged into calm
    path = tmp_path_factory.mktemp("labelled") / "labelled.parquet"
    df.to_parquet(path)
    return path


def test_fit_writes_a_config_the_model_loads(labelled_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "knn.json"
    assert fit.main(["--labelled", str(labelled_path), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["cv_accuracy"] > 0.85
    assert written["classes"] == ["angry", "calm", "energetic", "happy", "sad"]
    config = KnnConfig.load(out)
    assert config.k in fit.K_GRID
    assert config.features in (fit.FEATURE_SETS["original4"], fit.FEATURE_SETS["audio9"])
    model = MoodModel(config).fit(load_labelled(labelled_path))
    assert model.classes == written["classes"]


def test_evaluate_writes_the_reports(labelled_path: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.parquet"
    synthetic.catalog(n=800, artists=200).to_parquet(catalog)
    out = tmp_path / "reports"
    code = evaluate.main(
        [
            "--labelled",
            str(labelled_path),
            "--catalog",
            str(catalog),
            "--out",
            str(out),
            "--config",
            str(tmp_path / "absent.json"),
            "--sources",
            str(synthetic.write_sources(tmp_path / "sources")),
            "--repeats",
            "1",
            "--seeds",
            "2",
            "--splits",
            "1",
            "--k",
            "5,15",
            "--curve-k",
            "5,15",
        ]
    )
    assert code == 0
    for name in (
        "report.md",
        "report.json",
        "knn_accuracy_vs_k.png",
        "confusion_data_moods.png",
        "confusion_combined.png",
    ):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "report.json").read_text())
    model = metrics["model"]
    assert model["data_moods"]["classes"] == ["calm", "energetic", "happy", "sad"]
    assert model["combined"]["all"]["accuracy_mean"] > 0.85 and model["combined"]["all"]["folds"] == 5
    recs = json.loads((out / "recommendations.json").read_text())
    for name in ("full", "fresh"):
        setting = recs["settings"][name]
        assert set(setting["done_when"]) == set(EMOTIONS) and all(setting["done_when"].values()), name
        assert set(setting["labelled"]["test_precision_target"]) == set(EMOTIONS)
        assert (out / f"lists_{name}.png").stat().st_size > 0
    assert recs["settings"]["fresh"]["labelled"]["counted"] == ["happy", "sad"]  # no angry, no neutral labels
    text = (out / "recommendations.md").read_text()
    assert all(f"| {e}/match |" in text for e in EMOTIONS)
