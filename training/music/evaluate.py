"""Evaluates the mood KNN and the recommendations; writes reports/music/.

    python -m training.music.evaluate [--labelled ...] [--catalog ...] [--out reports/music] [--repeats 5]

Model: nested cross-validation (outer: repeated stratified 5-fold; inner: the hyper-parameter search of
training.music.fit, run on each outer training part only), so the accuracy is honest for the whole
selection procedure. For data_moods (4 classes) and the combined labelled set (5 labels, neutral merged
into calm), each with the original prototype's four features and with all available features.
Also: accuracy vs k (repeated CV, PNG), confusion matrix and per-class scores (outer-fold predictions).

Recommendations: the model is fitted on 70% of the labelled tracks and ranks the held-out 30% as a
catalog: precision@10 of each emotion's target mood. On the full catalog: intra-list diversity and
catalog coverage over every emotion, both strategies and 20 seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, classification_report  # noqa: E402
from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score, train_test_split  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from services.common import paths  # noqa: E402
from services.common.contracts import Emotion, Strategy  # noqa: E402
from services.recommender.catalog import Catalog, load_catalog  # noqa: E402
from services.recommender.mood_model import (  # noqa: E402
    LIFT_GOAL,
    MATCH,
    KnnConfig,
    MoodModel,
    build_pipeline,
    load_labelled,
    merged_labels,
)
from services.recommender.ranking import Ranker, artist_keys  # noqa: E402
from services.recommender.settings import MODEL_CONFIG, RecommenderSettings  # noqa: E402
from training.music.fit import FEATURE_SETS, K_GRID, available_sets, matrix, search, to_config  # noqa: E402

REPORTS = paths.REPORTS / "music"
# Nested CV runs fit.py's search once per outer fold; 3 inner folds keep it to minutes.
NESTED_GRID: dict[str, Any] = {"folds": 3}
RELEVANT_WEIGHT = 0.3  # a mood is a target of an emotion when it carries at least this weight


def nested_cv(
    df: pd.DataFrame, sets: dict[str, list[str]], repeats: int, grid: dict[str, Any], seed: int = 0
) -> dict[str, Any]:
    x, y = matrix(df), merged_labels(df["label"])
    outer = RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=seed)
    scores, chosen = [], []
    predicted = np.empty(len(y), dtype=object)
    for fold, (train, test) in enumerate(outer.split(x, y)):
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


def _eval_catalog(df: pd.DataFrame) -> Catalog:
    """Held-out labelled tracks as a catalog; tracks without metadata get a unique placeholder artist."""
    df = df.copy()
    for col, fill in (("name", df["track_id"]), ("artists", "unknown " + df["track_id"])):
        df[col] = df[col].fillna(fill) if col in df else fill
    return Catalog.from_frame(df)


def relevant(emotion: Emotion, targets: dict[Emotion, Any]) -> set[str]:
    return {m for m, w in targets[emotion].mood.items() if w >= RELEVANT_WEIGHT}


def held_out_precision(
    labelled: pd.DataFrame, config: KnnConfig, seeds: int, ranking: dict[str, Any], list_seeds: int = 10
) -> dict[str, Any]:
    """precision@10 of the target mood per emotion (match: unseeded, and the mean over `list_seeds`
    seeded lists), and of the lift's start and end. `ranking`: the Ranker's settings."""
    per: dict[str, list[float]] = {e.value: [] for e in Emotion}
    seeded: dict[str, list[float]] = {e.value: [] for e in Emotion}
    lift_start: list[float] = []
    lift_end: list[float] = []
    base: dict[str, list[float]] = {e.value: [] for e in Emotion}
    for seed in range(seeds):
        train, test = train_test_split(
            labelled, test_size=0.3, stratify=merged_labels(labelled["label"]), random_state=seed
        )
        model = MoodModel(config).fit(train)
        catalog = _eval_catalog(test)
        truth = dict(zip(test["track_id"], merged_labels(test["label"]), strict=True))
        ranker = Ranker(catalog, model, **ranking)
        for emotion in Emotion:
            goal = relevant(emotion, MATCH)
            ids = [t.id for t in ranker.recommend(emotion, Strategy.match, 10)]
            per[emotion.value].append(float(np.mean([truth[i] in goal for i in ids])))
            for list_seed in range(list_seeds):
                ids = [t.id for t in ranker.recommend(emotion, Strategy.match, 10, seed=list_seed)]
                seeded[emotion.value].append(float(np.mean([truth[i] in goal for i in ids])))
            base[emotion.value].append(float(np.mean([label in goal for label in truth.values()])))
            lift = [truth[t.id] for t in ranker.recommend(emotion, Strategy.lift, 10)]
            lift_start.append(float(np.mean([lab in goal for lab in lift[:3]])))
            lift_end.append(float(np.mean([lab in relevant(emotion, LIFT_GOAL) for lab in lift[-3:]])))
    return {
        "precision_at_10": {e: float(np.mean(v)) for e, v in per.items()},
        "precision_at_10_seeded": {e: float(np.mean(v)) for e, v in seeded.items()},
        "list_seeds": list_seeds,
        "ranking": ranking,
        "random_baseline": {e: float(np.mean(v)) for e, v in base.items()},
        "relevant_moods": {e.value: sorted(relevant(e, MATCH)) for e in Emotion},
        "lift_first3_in_start_mood": float(np.mean(lift_start)),
        "lift_last3_in_goal_mood": float(np.mean(lift_end)),
        "splits": seeds,
    }


def catalog_metrics(ranker: Ranker, seeds: int) -> dict[str, Any]:
    scale = ranker.catalog.features.std(axis=0)
    seen: set[int] = set()
    per_list_distance, unique_artist_share, per_key_unique = [], [], {}
    # No labels on the catalog: the mood model's own probability of an emotion's target moods, averaged
    # over a match list's tracks, is the proxy for how well unseeded and seeded lists fit.
    proba = ranker.model.predict_proba(ranker.catalog.features)
    target_p: dict[str, list[float]] = {"unseeded": [], "seeded": []}
    for emotion in Emotion:
        goal = [ranker.model.classes.index(m) for m in relevant(emotion, MATCH) if m in ranker.model.classes]
        for strategy in Strategy:
            mine: set[int] = set()
            for seed in [None, *range(seeds)]:
                rows = [p.row for p in ranker.rank(emotion, strategy, 10, seed=seed)]
                if strategy is Strategy.match:
                    target_p["unseeded" if seed is None else "seeded"].append(
                        float(proba[np.ix_(rows, goal)].sum(axis=1).mean())
                    )
                x = ranker.catalog.features[rows] / scale
                per_list_distance.append(
                    np.mean([np.linalg.norm(x[i] - x[j]) for i, j in combinations(range(len(rows)), 2)])
                )
                keys = [k for r in rows for k in artist_keys(ranker.catalog.artists[r])]
                unique_artist_share.append(len(set(keys)) / len(keys))
                mine.update(rows)
            per_key_unique[f"{emotion.value}/{strategy.value}"] = len(mine)
            seen |= mine
    x = ranker.catalog.features / scale
    rng = np.random.default_rng(0)
    random_pairs = [np.linalg.norm(x[a] - x[b]) for a, b in rng.integers(0, len(x), (5000, 2))]
    return {
        "lists": len(per_list_distance),
        "intra_list_distance_mean": float(np.mean(per_list_distance)),
        "random_pair_distance_mean": float(np.mean(random_pairs)),
        "unique_artist_share_mean": float(np.mean(unique_artist_share)),
        "catalog_coverage": len(seen) / len(ranker.catalog),
        "distinct_tracks": len(seen),
        "catalog_size": len(ranker.catalog),
        "distinct_tracks_per_emotion_strategy": per_key_unique,
        "target_mood_probability_match": {k: float(np.mean(v)) for k, v in target_p.items()},
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def write_markdown(out: Path, model: dict[str, Any], recs: dict[str, Any], command: str) -> None:
    lines = [
        "# Music mood model and recommendations",
        "",
        f"Command: `{command}`",
        "",
        "## Mood KNN: nested cross-validated accuracy",
        "",
        "Outer: repeated stratified 5-fold; inner: 3-fold search (training.music.fit's grid) over feature "
        "set, transform (quantile to a normal, or percentile ranks), Minkowski p and k for a "
        "distance-weighted KNN; the outer folds only score. The last row of each set is the previous grid "
        "(quantile map only) on the same outer folds. Reference (data README, StandardScaler + uniform KNN): "
        "data_moods 72.5% (4 features) / 78.0% (12 features), combined 67.9%; the original prototype 62.24%.",
        "",
        "| set | classes | features | accuracy (mean ± std over outer folds) |",
        "|---|---|---|---|",
    ]
    names = {
        "original4": "valence, energy, tempo, loudness",
        "all": "all available",
        "all_quantile": "all available, previous grid (quantile only)",
    }
    for name, res in model.items():
        for variant, feats in names.items():
            r = res[variant]
            lines.append(
                f"| {name} ({res['n']}) | {len(res['classes'])} | {feats} | "
                f"{_pct(r['accuracy_mean'])} ± {_pct(r['accuracy_std'])} ({r['folds']} folds) |"
            )
        gain = np.subtract(res["all"]["scores"], res["all_quantile"]["scores"])
        lines.append(
            f"| {name}: transform search minus previous grid, paired | | | {_pct(gain.mean())} "
            f"± {_pct(gain.std(ddof=1) / np.sqrt(len(gain)))} (standard error) |"
        )
    lines += ["", "Configuration chosen most often (all features):", ""]
    for name, res in model.items():
        lines.append(f"- {name}: `{json.dumps(res['most_chosen'])}`")
    lines += ["", "![accuracy vs k](knn_accuracy_vs_k.png)", ""]
    for name, res in model.items():
        lines += [
            f"### {name}: per-class scores (first outer repeat)",
            "",
            "| class | precision | recall | f1 | support |",
            "|---|---|---|---|---|",
        ]
        for cls in res["classes"]:
            c = res["per_class"][cls]
            lines.append(
                f"| {cls} | {c['precision']:.2f} | {c['recall']:.2f} | {c['f1-score']:.2f} | "
                f"{int(c['support'])} |"
            )
        lines += ["", f"![confusion matrix](confusion_{name}.png)", ""]
    p = recs["held_out"]
    lines += [
        "## Recommendations on held-out labelled tracks",
        "",
        f"The service's model (config from `python -m training.music.fit`) is fitted on 70% of the combined "
        f"labelled set and ranks the other 30% as a catalog; mean of {p['splits']} stratified splits.",
        "",
        f"Ranker settings: `{json.dumps(p['ranking'])}`; seeded: mean over seeds 0..{p['list_seeds'] - 1}.",
        "",
        "| emotion | target moods | precision@10 (match) | seeded | share of target moods in held-out set |",
        "|---|---|---|---|---|",
    ]
    for e in Emotion:
        lines.append(
            f"| {e.value} | {', '.join(p['relevant_moods'][e.value])} | "
            f"{_pct(p['precision_at_10'][e.value])} | {_pct(p['precision_at_10_seeded'][e.value])} "
            f"| {_pct(p['random_baseline'][e.value])} |"
        )
    c = recs["catalog"]
    lines += [
        "",
        f"Lift lists: first 3 tracks in the start mood {_pct(p['lift_first3_in_start_mood'])}, "
        f"last 3 in the goal mood {_pct(p['lift_last3_in_goal_mood'])}.",
        "",
        f"## Full catalog ({c['catalog_size']} servable tracks)",
        "",
        f"- {c['lists']} lists of 10 (7 emotions x 2 strategies x (no seed + {recs['seeds']} seeds))",
        f"- intra-list diversity: mean pairwise distance {c['intra_list_distance_mean']:.2f} in "
        f"standardised feature units (random pairs: {c['random_pair_distance_mean']:.2f})",
        f"- distinct-artist share per list: {_pct(c['unique_artist_share_mean'])}",
        f"- catalog coverage: {c['distinct_tracks']} distinct tracks = {_pct(c['catalog_coverage'])} of "
        f"the catalog (at most {c['lists'] * 10} could be distinct)",
        f"- the mood model's probability of the target moods, mean over match lists' tracks: unseeded "
        f"{_pct(c['target_mood_probability_match']['unseeded'])}, seeded "
        f"{_pct(c['target_mood_probability_match']['seeded'])}",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    settings = RecommenderSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labelled", type=Path, default=settings.labelled_path)
    parser.add_argument("--catalog", type=Path, default=settings.catalog_path)
    parser.add_argument("--config", type=Path, default=MODEL_CONFIG)
    parser.add_argument("--out", type=Path, default=REPORTS)
    parser.add_argument("--repeats", type=int, default=5, help="outer CV repeats")
    parser.add_argument("--seeds", type=int, default=20, help="seeded lists per emotion and strategy")
    parser.add_argument("--splits", type=int, default=3, help="held-out splits for precision@10")
    parser.add_argument("--k", default=",".join(map(str, K_GRID)), help="k values the nested search tries")
    parser.add_argument("--curve-k", default=",".join(map(str, range(1, 82, 8))), help="k values plotted")
    args = parser.parse_args(argv)
    if args.labelled is None or args.catalog is None:
        parser.error("set --labelled and --catalog (or RECOMMENDER_LABELLED_PATH / RECOMMENDER_CATALOG_PATH)")
    args.out.mkdir(parents=True, exist_ok=True)
    threadpool_limits(1)  # small matrices: extra BLAS threads only contend on a busy machine
    labelled = load_labelled(args.labelled)
    grid = {**NESTED_GRID, "k_grid": [int(k) for k in args.k.split(",")]}
    curve = [int(k) for k in args.curve_k.split(",")]
    model = model_report(labelled, args.out, args.repeats, grid, curve)
    config = KnnConfig.load(args.config)
    ranking: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "diversity": settings.diversity,
        "seed_noise": settings.seed_noise,
    }  # the service's settings
    ranker = Ranker(load_catalog(args.catalog), MoodModel(config).fit(labelled), **ranking)
    recs = {
        "held_out": held_out_precision(labelled, config, args.splits, ranking),
        "catalog": catalog_metrics(ranker, args.seeds),
        "seeds": args.seeds,
        "config": config.model_dump(),
    }
    command = "python -m training.music.evaluate " + " ".join(argv if argv is not None else [])
    (args.out / "metrics.json").write_text(
        json.dumps({"model": model, "recommendations": recs}, indent=2, default=float) + "\n"
    )
    write_markdown(args.out, model, recs, command.strip())
    print((args.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
