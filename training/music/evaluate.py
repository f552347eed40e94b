"""Evaluates the mood KNN and the recommendations; writes reports/music/.

    python -m training.music.evaluate [--part all|model|recommendations] [--labelled ...] [--catalog ...]
        [--sources music/sources] [--out reports/music] [--repeats 5] [--save-weights]

Model: nested cross-validation (outer: repeated stratified 5-fold; inner: the hyper-parameter search of
training.music.fit, run on each outer training part only), so the accuracy is honest for the whole
selection procedure. For data_moods (4 classes) and the combined labelled set (5 labels, neutral merged
into calm), each with the original prototype's four features and with all available features.
Also: accuracy vs k (repeated CV, PNG), confusion matrix and per-class scores (outer-fold predictions).

Recommendations (`--part recommendations`, training.music.recommendations): per emotion and strategy on the
full catalog and on the fresh-install one (the two public source files through the importer), and
precision@10 on labelled tracks split into train / validation (the ranker's weights) / test (reported);
reports/music/recommendations.md, recommendations.json, lists_full.png, lists_fresh.png.
`--save-weights` writes the weights chosen on validation to services/recommender/model/ranking.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, classification_report  # noqa: E402
from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench import report  # noqa: E402
from services.common import paths  # noqa: E402
from services.recommender.catalog import FEATURES, Catalog, load_catalog  # noqa: E402
from services.recommender.mood_model import (  # noqa: E402
    KnnConfig,
    MoodModel,
    build_pipeline,
    load_labelled,
    merged_labels,
)
from services.recommender.ranking import WEIGHTS_PATH, Ranker, RankWeights  # noqa: E402
from services.recommender.settings import MODEL_CONFIG, RecommenderSettings  # noqa: E402
from training.music import recommendations as recs  # noqa: E402
from training.music.fit import FEATURE_SETS, K_GRID, available_sets, matrix, search, to_config  # noqa: E402
from training.settings import settings as training_settings  # noqa: E402

REPORTS = training_settings.reports / "music"
# Nested CV runs fit.py's search once per outer fold; 3 inner folds keep it to minutes.
NESTED_GRID: dict[str, Any] = {"folds": 3}


def nested_cv(
    df: pd.DataFrame, sets: dict[str, list[str]], repeats: int, grid: dict[str, Any], seed: int = 0
) -> dict[str, Any]:
    x, y = matrix(df), merged_labels(df["label"])
    outer = RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=seed)
    scores, chosen = [], []
    predicted = np.empty(len(y), dtype=object)
    folds = tqdm(outer.split(x, y), total=outer.get_n_splits(), desc="nested CV, outer folds", mininterval=5)
    for fold, (train, test) in enumerate(folds):
        gs = search(sets, **grid).fit(x[train], y[train])
        pred = gs.predict(x[test])
        scores.append(accuracy_score(y[test], pred))
        chosen.append(to_config(gs.best_params_).model_dump())
        if fold < 5:  # the first repeat covers every track once
            predicted[test] = pred
    return {
        "accuracy_mean": float(np.mean(scores)),
        "accuracy_std": float(np.std(scores)),
        "folds": len(scores),
        "scores": [float(a) for a in scores],
        "chosen": chosen,
        "y": y,
        "predicted": predicted.astype(str),
    }


def accuracy_vs_k(
    df: pd.DataFrame, config: KnnConfig, features: list[str], k_grid: list[int], repeats: int
) -> tuple[np.ndarray, np.ndarray]:
    y = merged_labels(df["label"])
    cv = RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=1)
    x = df.reindex(columns=features).to_numpy(dtype=np.float64)
    runs = [
        cross_val_score(build_pipeline(config.model_copy(update={"k": k, "features": features})), x, y, cv=cv)
        for k in k_grid
    ]
    return np.array([r.mean() for r in runs]), np.array([r.std() for r in runs])


def model_report(
    labelled: pd.DataFrame, out: Path, repeats: int, grid: dict[str, Any], k_grid: list[int]
) -> dict[str, Any]:
    datasets = {
        "data_moods": labelled[labelled["source"] == "data_moods"] if "source" in labelled else labelled,
        "combined": labelled,
    }
    results: dict[str, Any] = {}
    fig_k, axes_k = plt.subplots(1, len(datasets), figsize=(12, 4.5), squeeze=False)
    for col, (name, df) in enumerate(datasets.items()):
        df = df.reset_index(drop=True)
        if df.empty:
            continue
        every = available_sets(df, ["audio9", "audio10"])
        # (feature sets, grid overrides); all_quantile is the previous grid (normal quantile map only),
        # run on the same outer splits so the transform search's gain is a paired comparison.
        variants: dict[str, tuple[dict[str, list[str]], dict[str, Any]]] = {
            "original4": ({"original4": FEATURE_SETS["original4"]}, {}),
            "all": (every, {}),
            "all_quantile": (every, {"transforms": ("quantile",)}),
        }
        res: dict[str, Any] = {"n": len(df), "classes": sorted(set(merged_labels(df["label"])))}
        for variant, (sets, overrides) in variants.items():
            t0 = time.perf_counter()
            r = nested_cv(df, sets, repeats, {**grid, **overrides})
            res[variant] = {k: v for k, v in r.items() if k not in ("y", "predicted")}
            res[variant]["seconds"] = time.perf_counter() - t0
            if variant == "all":
                res["per_class"] = classification_report(
                    r["y"], r["predicted"], output_dict=True, zero_division=0
                )
                fig, ax = plt.subplots(figsize=(5.5, 5))
                ConfusionMatrixDisplay.from_predictions(r["y"], r["predicted"], ax=ax, colorbar=False)
                ax.set_title(f"{name}: KNN, nested-CV predictions")
                fig.tight_layout()
                fig.savefig(out / f"confusion_{name}.png", dpi=110)
                plt.close(fig)
        # Accuracy vs k for the configuration chosen most often, with both feature sets.
        picks = [json.dumps(c, sort_keys=True) for c in res["all"]["chosen"]]
        best = KnnConfig.model_validate_json(max(set(picks), key=picks.count))
        res["most_chosen"] = best.model_dump()
        ax = axes_k[0][col]
        for label, feats in (("all features", best.features), ("original 4", FEATURE_SETS["original4"])):
            mean, std = accuracy_vs_k(df, best, feats, k_grid, 1)
            ax.plot(k_grid, mean, marker=".", label=f"{label} ({len(feats)})")
            ax.fill_between(k_grid, mean - std, mean + std, alpha=0.2)
        ax.set_title(f"{name} ({len(df)} tracks, {len(res['classes'])} classes)")
        ax.set_xlabel("k (neighbours)")
        ax.set_ylabel("CV accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
        results[name] = res
    fig_k.suptitle(
        f"KNN mood accuracy vs k ({best.transform} transform, {best.weights} weights, repeated 5-fold CV)"
    )
    fig_k.tight_layout()
    fig_k.savefig(out / "knn_accuracy_vs_k.png", dpi=110)
    plt.close(fig_k)
    return results


MODEL_NOTES = [
    "Outer: repeated stratified 5-fold; inner: 3-fold search (training.music.fit's grid) over feature set, "
    "transform (quantile to a normal, or percentile ranks), Minkowski p and k for a distance-weighted KNN; "
    "the outer folds only score. Per set: original4 = valence, energy, tempo, loudness; all = every "
    "available feature; all_quantile = the previous grid (quantile map only) on the same outer folds, "
    "and transform_search_gain_paired the paired difference (mean, standard error). most_chosen: the "
    "configuration chosen most often; per_class: the first outer repeat's scores. Reference (data README, "
    "StandardScaler + uniform KNN): data_moods 72.5% (4 features) / 78.0% (12 features), combined 67.9%; "
    "the original prototype 62.24%.",
]


def recommendations_report(args: argparse.Namespace, settings: RecommenderSettings, command: str) -> None:
    config = KnnConfig.load(args.config)
    ranking: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "diversity": settings.diversity,
        "seed_noise": settings.seed_noise,
    }
    fresh_catalog, fresh_labelled = recs.fresh_install(args.sources)
    fresh_labelled = fresh_labelled.dropna(subset=["label", *FEATURES]).reset_index(drop=True)
    inputs = {
        "full": (
            "the shipped catalog and labelled tracks",
            load_catalog(args.catalog),
            load_labelled(args.labelled),
        ),
        "fresh": (
            "a fresh installation: spotify_songs.csv and data_moods.csv through the importer",
            Catalog.from_frame(fresh_catalog),
            fresh_labelled,
        ),
    }
    # The weights: searched on every labelled set's validation splits together, then reported on test.
    shipped, grid = RankWeights.load(), recs.weight_grid()
    validation = {
        name: recs.validation_scores(labelled, config, args.splits, ranking, grid)
        for name, (_, _, labelled) in inputs.items()
    }
    choice = recs.choose_weights(validation)
    chosen: RankWeights = choice["chosen"]
    if args.save_weights:
        WEIGHTS_PATH.write_text(
            json.dumps(
                {
                    **asdict(chosen),
                    "validation_min": round(choice["validation_min"], 4),
                    "validation_mean": round(choice["validation_mean"], 4),
                    "chosen_by": command,
                },
                indent=2,
            )
            + "\n"
        )
    results: dict[str, Any] = {
        "seeds": args.seeds,
        "config": config.model_dump(),
        "ranking": ranking,
        "weights": {**choice, "chosen": asdict(chosen), "shipped_before": asdict(shipped)},
        "settings": {},
    }
    for name, (description, catalog, labelled) in inputs.items():
        t0 = time.perf_counter()
        labelled_part = recs.labelled_report(labelled, config, args.splits, ranking, chosen, validation[name])
        ranker = Ranker(catalog, MoodModel(config).fit(labelled), weights=chosen, **ranking)
        lists = recs.catalog_report(ranker, args.seeds)
        recs.plot(ranker, args.out / f"lists_{name}.png", f"{name} catalog ({len(catalog)} tracks)")
        results["settings"][name] = {
            "description": description,
            "catalog": lists,
            "done_when": recs.done_when(lists),
            "labelled": labelled_part,
            "seconds": time.perf_counter() - t0,
        }
    report.write(
        args.out,
        "recommendations",
        results,
        title="Recommendations per emotion",
        command=command,
        notes=recs.NOTES,
        plots=[f"lists_{name}.png" for name in inputs],
    )


def main(argv: list[str] | None = None) -> int:
    settings = RecommenderSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["all", "model", "recommendations"], default="all")
    parser.add_argument("--labelled", type=Path, default=settings.labelled_path)
    parser.add_argument("--catalog", type=Path, default=settings.catalog_path)
    parser.add_argument(
        "--sources",
        type=Path,
        default=paths.data_dir() / "music" / "sources",
        help="spotify_songs.csv and data_moods.csv",
    )
    parser.add_argument("--config", type=Path, default=MODEL_CONFIG)
    parser.add_argument("--out", type=Path, default=REPORTS)
    parser.add_argument("--repeats", type=int, default=5, help="outer CV repeats")
    parser.add_argument("--seeds", type=int, default=20, help="seeded lists per emotion and strategy")
    parser.add_argument(
        "--splits", type=int, default=recs.SPLITS, help="train/validation/test splits for precision@10"
    )
    parser.add_argument(
        "--save-weights",
        action="store_true",
        help=f"write the weights chosen on validation to {WEIGHTS_PATH}",
    )
    parser.add_argument("--k", default=",".join(map(str, K_GRID)), help="k values the nested search tries")
    parser.add_argument("--curve-k", default=",".join(map(str, range(1, 82, 8))), help="k values plotted")
    args = parser.parse_args(argv)
    if args.labelled is None or args.catalog is None:
        parser.error("set --labelled and --catalog (or RECOMMENDER_LABELLED_PATH / RECOMMENDER_CATALOG_PATH)")
    args.out.mkdir(parents=True, exist_ok=True)
    threadpool_limits(1)  # small matrices: extra BLAS threads only contend on a busy machine
    command = " ".join(["python -m training.music.evaluate", *(argv if argv is not None else sys.argv[1:])])
    if args.part in ("all", "model"):
        labelled = load_labelled(args.labelled)
        grid = {**NESTED_GRID, "k_grid": [int(k) for k in args.k.split(",")]}
        curve = [int(k) for k in args.curve_k.split(",")]
        model = model_report(labelled, args.out, args.repeats, grid, curve)
        for res in model.values():
            gain = np.subtract(res["all"]["scores"], res["all_quantile"]["scores"])
            res["transform_search_gain_paired"] = {
                "mean": float(gain.mean()),
                "standard_error": float(gain.std(ddof=1) / np.sqrt(len(gain))),
            }
        report.write(
            args.out,
            "report",
            {"model": model},
            title="Music mood model: nested cross-validated accuracy",
            command=command,
            notes=MODEL_NOTES,
            plots=["knn_accuracy_vs_k.png", *(f"confusion_{name}.png" for name in model)],
        )
    if args.part in ("all", "recommendations"):
        recommendations_report(args, settings, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
