"""What the deployment reads from the project: ``.chalice/config.json`` and the names derived from it.

Example:
    >>> cfg = ChaliceConfig({"app_name": "leanlake", "environment_variables": {"A": "1"},
    ...                      "stages": {"dev": {"environment_variables": {"LEANLAKE_QUEUE": "q"}}}})
    >>> cfg.stages, cfg.env("dev")["LEANLAKE_QUEUE"], cfg.queue("dev"), dead_letter_queue("q")
    (('dev',), 'q', 'q', 'q-dlq')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Stage environment variable naming the SQS queue the app consumes (sweep fan-out, S3 → SQS notifications).
QUEUE_ENV = "LEANLAKE_QUEUE"
#: Environment variable naming the CloudWatch namespace of leanlake's metrics (Powertools).
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"


def dead_letter_queue(queue: str) -> str:
    """The name of the dead-letter queue that goes with ``queue`` (one place for the convention)."""
    return f"{queue}-dlq"


@dataclass(frozen=True)
class ChaliceConfig:
    """The parts of ``.chalice/config.json`` the deployment needs (Chalice's own lookup order: stage, then top)."""

    data: dict[str, Any]

    @classmethod
    def load(cls, chalice_dir: str | Path = ".chalice") -> "ChaliceConfig":
        path = Path(chalice_dir) / "config.json"
        try:
            return cls(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no Chalice config (run from the project root)") from None

    @property
    def app_name(self) -> str:
        return self.data["app_name"]

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.data.get("stages", {}))

    def stage(self, name: str) -> dict[str, Any]:
        try:
            return self.data["stages"][name]
        except KeyError:
            raise KeyError(f"no stage {name!r} in .chalice/config.json (stages: {', '.join(self.stages)})") from None

    def setting(self, stage: str, key: str, default: Any = None) -> Any:
        """A stage-level setting, else the top-level one, else ``default``."""
        return self.stage(stage).get(key, self.data.get(key, default))

    def env(self, stage: str) -> dict[str, str]:
        """Environment variables of a stage: the top-level ones overlaid with the stage's."""
        return {**self.data.get("environment_variables", {}), **self.stage(stage).get("environment_variables", {})}

    def queue(self, stage: str) -> str | None:
        """The SQS queue the stage consumes, or None when it has none."""
        return self.env(stage).get(QUEUE_ENV) or None

    def function_prefix(self, stage: str) -> str:
        """Chalice names every Lambda function ``{app_name}-{stage}-{function}``."""
        return f"{self.app_name}-{stage}-"
