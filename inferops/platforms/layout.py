"""Where the local environment's parts live: ports and folders, from Terraform outputs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LocalLayout:
    """The local environment's description, as provisioned."""

    env: str
    state_dir: Path
    project_root: Path
    config_path: Path
    redis_port: int
    prometheus_port: int
    scrape_interval: str
    router_port: int
    prefect_port: int
    prefect_home: Path
    prefect_enabled: bool
    service_port_start: int
    service_port_end: int
    stable_replicas: int
    canary_replicas: int
    gitops_remote: Path
    gitops_workdir: Path
    gitops_branch: str
    gitops_path: str
    images_dir: Path

    @classmethod
    def from_outputs(
        cls,
        outputs: dict[str, Any],
        project_root: Path,
        config_path: Path,
        prefect_enabled: bool,
    ) -> LocalLayout:
        """Build the layout from the local Terraform module's outputs."""
        try:
            return cls(
                env=str(outputs["environment"]),
                state_dir=Path(outputs["state_dir"]),
                project_root=project_root,
                config_path=config_path,
                redis_port=int(outputs["redis"]["port"]),
                prometheus_port=int(outputs["prometheus"]["port"]),
                scrape_interval=str(outputs["prometheus"].get("scrape_interval", "1s")),
                router_port=int(outputs["router"]["port"]),
                prefect_port=int(outputs["prefect"]["port"]),
                prefect_home=Path(outputs["prefect"]["home"]),
                prefect_enabled=prefect_enabled,
                service_port_start=int(outputs["services"]["port_start"]),
                service_port_end=int(outputs["services"]["port_end"]),
                stable_replicas=int(outputs["services"].get("stable_replicas", 2)),
                canary_replicas=int(outputs["services"].get("canary_replicas", 2)),
                gitops_remote=Path(outputs["gitops"]["remote"]),
                gitops_workdir=Path(outputs["gitops"]["workdir"]),
                gitops_branch=str(outputs["gitops"]["branch"]),
                gitops_path=str(outputs["gitops"]["path"]),
                images_dir=Path(outputs["images"]["dir"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"the environment's Terraform outputs lack {exc}: run inferops provision again"
            ) from None

    @property
    def scrape_interval_s(self) -> float:
        """Prometheus' scrape interval in seconds (from e.g. "1s" or "500ms")."""
        text = self.scrape_interval
        if text.endswith("ms"):
            return float(text[:-2]) / 1000
        return float(text.rstrip("s"))

    @property
    def router_url(self) -> str:
        """Where clients send requests (nginx)."""
        return f"http://127.0.0.1:{self.router_port}"

    @property
    def prometheus_url(self) -> str:
        """The Prometheus HTTP API."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def prefect_api_url(self) -> str:
        """The Prefect server's API."""
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def redis_url(self) -> str:
        """The Redis the service uses."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def dump(self, path: Path) -> None:
        """Write the layout as JSON (what the agent reads)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> LocalLayout:
        """Read a layout written by ``dump``."""
        data: dict[str, Any] = json.loads(path.read_text())
        paths = {
            "state_dir",
            "project_root",
            "config_path",
            "prefect_home",
            "gitops_remote",
            "gitops_workdir",
            "images_dir",
        }
        fields: dict[str, Any] = {k: Path(v) if k in paths else v for k, v in data.items()}
        return cls(**fields)
