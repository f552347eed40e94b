"""The capacity model of docs/scaling.md, computed from the committed reports and the manifests.

    python -m bench.capacity

Inputs: the emotion service's throughput at concurrency 8 (reports/emotion_bench.json; whole frames and
tracked frames, with the solo threads the manifest sets), the gateway's own CPU per /analyze frame with
the viewers' state in Redis (reports/gateway_state.json), the per-frame Redis script's calls per second
(reports/redis_state.json), the page's frame interval and full-scan period (frontend/main.js), and the
pods' requests and HPA targets (deploy/k8s). On-device mode's column: the gateway's CPU per
POST /api/mood and what one Redis core serves of such requests (reports/mood_cost.json), at the planned
requests per viewer per minute and at the most the gateway admits (its per-session rate limit). Writes
reports/capacity.md and .json.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from bench import report
from bench.report import REPORTS
from services.common.paths import REPO
from services.gateway.settings import GatewaySettings

VIEWERS = (100, 10_000, 1_000_000)
REDIS_HEADROOM = 0.5  # plan each Redis primary at half the measured rate
# On-device mode: a page posts when its steady emotion (or the viewer's choice of music) changes. Planned
# at one change every 10 s, far more often than a face's steady emotion (3 of the last 5 frames) moves
# for a viewer watching a screen; the rate limit's ceiling is modelled beside it (docs/scaling.md).
MOOD_PER_MINUTE = 6
K8S = REPO / "deploy" / "k8s"


def page_constant(name: str) -> int:
    match = re.search(rf"const {name} = (\d+);", (REPO / "frontend" / "main.js").read_text())
    assert match, f"{name} not found in frontend/main.js"
    return int(match.group(1))


def quantity(value: str) -> float:
    """CPU in cores ('250m', '1'), memory in MiB ('384Mi', '1Gi')."""
    units = {"m": 1e-3, "Mi": 1.0, "Gi": 1024.0}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def manifests() -> dict[str, dict[str, Any]]:
    """Per deployment: CPU and memory requests, and its HPA's target utilisation (None without one)."""
    docs = [d for p in K8S.glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    hpa = {
        d["spec"]["scaleTargetRef"]["name"]: d["spec"]["metrics"][0]["resource"]["target"][
            "averageUtilization"
        ]
        for d in docs
        if d["kind"] == "HorizontalPodAutoscaler"
    }
    out = {}
    for d in docs:
        if d["kind"] == "Deployment":
            requests = d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
            name = d["metadata"]["name"]
            container = d["spec"]["template"]["spec"]["containers"][0]
            out[name] = {
                "env": {e["name"]: e["value"] for e in container.get("env", [])},
                "cpu": quantity(requests["cpu"]),
                "memory_mib": quantity(requests["memory"]),
                "replicas": d["spec"]["replicas"],
                "target": hpa.get(name),
            }
    return out


def emotion_core_ms(report: dict[str, Any], mode: str, solo_threads: int) -> float:
    found = re.search(r"(\d+) cores", report["machine"])
    if found is None:
        raise ValueError(f"no core count in the emotion bench's machine line: {report['machine']!r}")
    cores = int(found.group(1))
    (run,) = [
        r
        for r in report["runs"]
        if r["mode"] == mode and r["concurrency"] == 8 and r["solo_threads"] == solo_threads
    ]
    return cores * 1000 / run["requests_per_s"]


def ondevice_rows(pods: dict[str, dict[str, Any]], server_cpu: dict[int, float]) -> dict[str, Any]:
    """On-device mode's rows, from reports/mood_cost.json: the gateway and Redis per POST /api/mood."""
    mood = json.loads((REPORTS / "mood_cost.json").read_text())
    gateway_ms = mood["gateways"]["redis"]["cpu_ms_per_request"]
    per_primary = mood["redis"]["requests_per_s"] * REDIS_HEADROOM
    settings = GatewaySettings()
    limit = settings.mood.rate_requests * 60 / settings.mood.rate_period_s
    gw, em, rec, rd = pods["gateway"], pods["emotion"], pods["recommender"], pods["redis"]
    rows = []
    for per_minute in (MOOD_PER_MINUTE, limit):
        for viewers in VIEWERS:
            rate = viewers * per_minute / 60
            cores = rate * gateway_ms / 1000
            gateway_pods = max(gw["replicas"], math.ceil(cores / (gw["cpu"] * gw["target"] / 100)))
            primaries = max(1, math.ceil(rate / per_primary))
            counted = ((gw, gateway_pods), (em, em["replicas"]), (rec, rec["replicas"]), (rd, primaries))
            cpu = sum(pod["cpu"] * n for pod, n in counted)
            memory = sum(pod["memory_mib"] * n for pod, n in counted)
            rows.append(
                {
                    "viewers": viewers,
                    "requests_per_viewer_per_minute": per_minute,
                    "requests_per_s": rate,
                    "gateway_cores": cores,
                    "gateway_pods": gateway_pods,
                    "redis_primaries": primaries,
                    "emotion_pods": em["replicas"],
                    "cpu_requested": cpu,
                    "memory_requested_gib": memory / 1024,
                    "fewer_cores": server_cpu[viewers] / cpu,
                }
            )
    return {
        "gateway_ms": gateway_ms,
        "redis_requests_per_s": mood["redis"]["requests_per_s"],
        "planned_per_minute": MOOD_PER_MINUTE,
        "limit_per_minute": limit,
        "rows": rows,
    }


def main() -> int:
    emotion_report = json.loads((REPORTS / "emotion_bench.json").read_text())
    redis = json.loads((REPORTS / "redis_state.json").read_text())
    gateway = json.loads((REPORTS / "gateway_state.json").read_text())
    pods = manifests()
    fps = 1000 / page_constant("FRAME_INTERVAL_MS")
    every = page_constant("FULL_SCAN_EVERY")
    solo = int(pods["emotion"]["env"]["EMOTION_SOLO_THREADS"])
    whole = emotion_core_ms(emotion_report, "full frame", solo)
    tracked = emotion_core_ms(emotion_report, "tracked", solo)
    emotion_ms = (whole + (every - 1) * tracked) / every
    gateway_ms = gateway["gateways"]["redis"]["cpu_ms_per_frame"]
    per_primary = redis["requests_per_s"]["observe"] * REDIS_HEADROOM
    session_bytes = redis["memory"]["bytes_per_session"]
    per_pod = {
        name: pods[name]["cpu"] * pods[name]["target"] / 100 / (fps * ms / 1000)
        for name, ms in (("emotion", emotion_ms), ("gateway", gateway_ms))
    }
    rows = []
    for viewers in VIEWERS:
        emotion_cores, gateway_cores = viewers * fps * emotion_ms / 1000, viewers * fps * gateway_ms / 1000
        emotion_pods = max(pods["emotion"]["replicas"], math.ceil(viewers / per_pod["emotion"]))
        gateway_pods = max(pods["gateway"]["replicas"], math.ceil(viewers / per_pod["gateway"]))
        calls = viewers * fps
        primaries = max(1, math.ceil(calls / per_primary))
        rec = pods["recommender"]
        cpu = (
            emotion_pods * pods["emotion"]["cpu"]
            + gateway_pods * pods["gateway"]["cpu"]
            + rec["replicas"] * rec["cpu"]
            + primaries * pods["redis"]["cpu"]
        )
        memory = (
            emotion_pods * pods["emotion"]["memory_mib"]
            + gateway_pods * pods["gateway"]["memory_mib"]
            + rec["replicas"] * rec["memory_mib"]
            + primaries * pods["redis"]["memory_mib"]
        )
        rows.append(
            {
                "viewers": viewers,
                "frames_per_s": viewers * fps,
                "emotion_cores": emotion_cores,
                "emotion_pods": emotion_pods,
                "gateway_cores": gateway_cores,
                "gateway_pods": gateway_pods,
                "redis_calls_per_s": calls,
                "redis_primaries": primaries,
                "redis_session_mib": viewers * session_bytes / 2**20,
                "cpu_requested": cpu,
                "memory_requested_gib": memory / 1024,
            }
        )
    ondevice = ondevice_rows(pods, {r["viewers"]: r["cpu_requested"] for r in rows})
    result = {
        "command": "python -m bench.capacity",
        "frames_per_s_per_viewer": fps,
        "full_scan_every": every,
        "emotion_core_ms": {"whole": whole, "tracked": tracked, "mix": emotion_ms},
        "gateway_ms": gateway_ms,
        "viewers_per_pod": per_pod,
        "redis_calls_per_s_per_primary": per_primary,
        "viewers_per_redis_primary": per_primary / fps,
        "rows": rows,
        "ondevice": ondevice,
    }
    report.write(
        REPORTS,
        "capacity",
        result,
        title="Capacity model",
        command="python -m bench.capacity",
        notes=[
            "Inputs: reports/emotion_bench.json, reports/gateway_state.json, reports/redis_state.json, "
            "frontend/main.js, deploy/k8s; docs/scaling.md explains the model.",
            f"A viewer: {fps:.2f} frames/s, 1 in {every} searching the whole frame. Emotion service: "
            f"{whole:.1f} core-ms per whole frame, {tracked:.1f} per tracked frame, {emotion_ms:.1f} for a "
            f"viewer's mix; a pod at its HPA target serves {per_pod['emotion']:.1f} viewers. Gateway: "
            f"{gateway_ms:.2f} CPU ms per frame (state in Redis); at its HPA target a pod serves "
            f"{per_pod['gateway']:.1f} viewers. Redis: one script call per frame; planned at "
            f"{REDIS_HEADROOM:.0%} of the measured {redis['requests_per_s']['observe']:,.0f} calls/s, a "
            f"primary serves {per_primary / fps:,.0f} viewers; {session_bytes:.0f} bytes per session.",
            "Rows: pods are rounded up, never below the manifests' replicas; CPU and memory requested add "
            "the recommender's replicas and one Redis pod per primary.",
            f"On-device mode (ondevice): the page reads faces itself and posts to /api/mood only when its "
            f"steady emotion or the viewer's choice of music changes: planned at {MOOD_PER_MINUTE} requests "
            f"per viewer per minute, and at the per-session limit the gateway enforces "
            f"({ondevice['limit_per_minute']:g}). Gateway: {ondevice['gateway_ms']:.2f} CPU ms per request "
            f"(state in Redis); Redis: {ondevice['redis_requests_per_s']:,.0f} such requests/s per core "
            f"(three calls each), planned at {REDIS_HEADROOM:.0%}. The emotion service keeps the manifests' "
            "replicas, for REST users and pages in server mode (each 1% of viewers in server mode adds 1% "
            "of the server-mode rows). fewer_cores: server mode's CPU requested over on-device mode's.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
