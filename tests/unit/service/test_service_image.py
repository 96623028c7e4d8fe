"""The service image's Dockerfile keeps the contract the platform relies on."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from inferops_service.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "service" / "Dockerfile"
MANIFEST = ROOT / "gitops" / "base" / "workload" / "deployment.yaml"


def instructions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    logical = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.setdefault(keyword.upper(), []).append(rest.strip())
    return found


def test_image_runs_as_non_root_and_exposes_both_ports() -> None:
    found = instructions()
    assert found["FROM"][-1] == "python:3.11-slim"
    # The cluster manifests run the pods as a fixed uid; the image's own user is the same one.
    deployment = yaml.safe_load(MANIFEST.read_text())
    uid = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert found["USER"] == [str(uid)]
    assert found["EXPOSE"] == ["8000 9090"]
    assert "/health" in found["HEALTHCHECK"][0]


def test_entrypoint_serves_on_all_interfaces_and_args_can_override() -> None:
    entrypoint = json.loads(instructions()["ENTRYPOINT"][0])
    assert entrypoint[:2] == ["inferops-service", "serve"]
    # Kubernetes args are appended after the entrypoint; argparse lets the last flag win.
    args = build_parser().parse_args([*entrypoint[1:], "--port", "8001", "--host", "10.0.0.1"])
    assert (args.host, args.port, args.metrics_port) == ("10.0.0.1", 8001, 9090)
    assert build_parser().parse_args(entrypoint[1:]).host == "0.0.0.0"
