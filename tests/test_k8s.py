"""deploy/k8s: every manifest is valid for Kubernetes 1.31 (strict schemas: no unknown field), passes
checkov (each skipped check carries its reason), and agrees with the code and the measurements it was
written from: ports, the images' user, probes, sizes no smaller than what make bench measured, and a
network where only the gateway reaches the other services."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from services.common.paths import REPO
from services.configuration import variables
from services.emotion.settings import EmotionSettings
from services.gateway.settings import GatewaySettings
from services.gateway.spotify.account import CALLBACK_PATH
from services.launch import METRICS_PORTS, SERVICES
from services.recommender.settings import RecommenderSettings

K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.31.0"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
UID = 10001
BACKENDS = ("emotion", "recommender", "redis")
MIB = {"Mi": 1, "Gi": 1024}


def documents() -> list[tuple[Path, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [
        (K8S / name, doc)
        for name in kustomization["resources"]
        for doc in yaml.safe_load_all((K8S / name).read_text())
        if doc
    ]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def name_of(labels: dict[str, str]) -> str:
    return labels["app.kubernetes.io/name"]


def mib(quantity: str) -> float:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, f"{quantity}: not a quantity in Mi or Gi"
    number, unit = match.groups()
    return int(number) * MIB[unit]


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


@pytest.mark.parametrize("path_doc", documents(), ids=lambda pd: f"{pd[0].name}:{pd[1]['kind']}")
def test_manifest_is_valid_for_kubernetes_1_31(path_doc: tuple[Path, dict[str, Any]]) -> None:
    _, doc = path_doc
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = json.loads(json.dumps(of_kind("Deployment")["gateway"]))
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_checkov_passes_and_every_skip_has_a_reason() -> None:
    assert CHECKOV.exists(), f"{CHECKOV} missing: `make install` creates checkov's own virtualenv"
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(K8S),
            "--framework",
            "kubernetes",
            "--compact",
            "--quiet",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout, result.stdout[-4000:]
    for _, doc in documents():
        for key, value in doc["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason.split()) >= 5, value


def test_deployments_match_the_services_and_their_images() -> None:
    deployments = of_kind("Deployment")
    services = of_kind("Service")
    assert set(deployments) == {*SERVICES, "redis"}
    assert f"--uid {UID}" in (REPO / "services" / "Dockerfile").read_text()
    for name, (_, port) in SERVICES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": port, "metrics": METRICS_PORTS[name]}, name
        # The metrics port is scraped on the pod itself: no Service (hence no Ingress) exposes it.
        assert [p["port"] for p in services[name]["spec"]["ports"]] == [port]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_each_service_is_scraped_on_its_metrics_port() -> None:
    for name in SERVICES:
        template = of_kind("Deployment")[name]["spec"]["template"]
        assert template["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(METRICS_PORTS[name]),
            "prometheus.io/path": "/metrics",
        }, name
    for ingress in of_kind("Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["port"] == {"name": "http"}


def test_pods_run_unprivileged_with_read_only_roots() -> None:
    for name, deployment in of_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == UID, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            # Whatever it writes goes to an emptyDir.
            emptydirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
            assert {m["name"] for m in container["volumeMounts"]} <= emptydirs, name


def test_memory_covers_what_make_bench_measured() -> None:
    measured = json.loads((REPO / "reports" / "bench.json").read_text())["memory"]
    deployments = of_kind("Deployment")
    for name in SERVICES:
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        resources = container["resources"]
        assert mib(resources["requests"]["memory"]) >= measured[name]["rss_mb"], name
        assert mib(resources["limits"]["memory"]) >= 2 * measured[name]["peak_rss_mb"], name
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
            resources["limits"]
        )


def test_autoscalers_and_disruption_budgets() -> None:
    hpas = of_kind("HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == {"emotion", "gateway"}
    for hpa in hpas.values():
        assert hpa["spec"]["minReplicas"] >= 2
    pdbs = of_kind("PodDisruptionBudget")
    assert {name_of(p["spec"]["selector"]["matchLabels"]) for p in pdbs.values()} == set(SERVICES)


def selects(selector: dict[str, Any], name: str) -> bool:
    labels = {"app.kubernetes.io/name": name}
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and all(
        (labels.get(e["key"]) in e["values"]) == (e["operator"] == "In")
        for e in selector.get("matchExpressions", [])
    )


MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def test_only_the_gateway_reaches_the_backends() -> None:
    policies = list(of_kind("NetworkPolicy").values())
    for name in (*SERVICES, "redis"):
        applying = [p["spec"] for p in policies if selects(p["spec"]["podSelector"], name)]
        # A default deny covers every pod, so only what a rule allows gets in.
        assert any(p["podSelector"] == {} and "ingress" not in p for p in applying), name
        rules = [rule for p in applying for rule in p.get("ingress", [])]
        # Every rule names its ports: the metrics port's rule lets in the monitoring namespace alone.
        assert rules and all(rule.get("ports") for rule in rules), name
        scrape = [r for r in rules if any(p["port"] == "metrics" for p in r["ports"])]
        peers = [peer for rule in rules if rule not in scrape for peer in rule["from"]]
        assert peers, name
        if name in SERVICES:
            assert [peer for rule in scrape for peer in rule["from"]] == [MONITORING], name
            assert all(p["port"] == "metrics" for rule in scrape for p in rule["ports"]), name
        else:
            assert not scrape, name
        if name in BACKENDS:
            assert peers == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}], name


def test_gateway_is_wired_to_the_services_and_the_ingress() -> None:
    (container,) = of_kind("Deployment")["gateway"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    services = of_kind("Service")
    assert env["GATEWAY_EMOTION_URL"] == f"http://emotion:{services['emotion']['spec']['ports'][0]['port']}"
    assert (
        env["GATEWAY_RECOMMENDER_URL"]
        == f"http://recommender:{services['recommender']['spec']['ports'][0]['port']}"
    )
    assert env["REDIS_URL"].startswith(f"redis://redis:{services['redis']['spec']['ports'][0]['port']}/")
    (ingress,) = of_kind("Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "gateway"
    # Save to Spotify behind the Ingress's TLS: Spotify sends the listener back to the Ingress's host over
    # https, which the gateway sees as https through the ingress controller's X-Forwarded-Proto. Off until
    # a client id is set; the client id is no secret, and no Secret is needed.
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    assert env["MOODTUNES_SPOTIFY_REDIRECT_URI"] == f"https://{rule['host']}{CALLBACK_PATH}"
    assert env["MOODTUNES_SPOTIFY_CLIENT_ID"] == ""
    trusted = GatewaySettings.model_validate({"forwarded_allow_ips": env["GATEWAY_FORWARDED_ALLOW_IPS"]})
    assert trusted.forwarded_allow_ips, "the gateway would see the page's https origin as http"
    assert "secretKeyRef" not in json.dumps(container)


def test_every_variable_the_manifests_set_is_a_setting() -> None:
    """A misspelt variable would be ignored silently, leaving the default in force."""
    settings: dict[str, type[BaseSettings]] = {
        "emotion": EmotionSettings,
        "gateway": GatewaySettings,
        "recommender": RecommenderSettings,
    }
    # ONNX Runtime's own switch (its telemetry), as the image and `make run` set it.
    outside = {"ORT_DISABLE_TELEMETRY"}
    for name, cls in settings.items():
        (container,) = of_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"]
        unknown = {e["name"] for e in container.get("env", [])} - set(variables(cls)) - outside
        assert not unknown, f"{name}: {unknown}"
