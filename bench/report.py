"""Writing the results: the JSON file and the latency plot (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

from bench.harness import percentiles  # noqa: E402

#: The round's targets (issue 14), compared in the JSON so a reader sees what held.
TARGETS = {
    "records_per_worker_cpu_s": 50_000,
    "teams_to_starface_p95_ms": 1_500,
    "starface_to_teams_p95_ms": 500,
    "starface_to_teams_under_load_p95_ms": 300,
    "burst_seconds": 20.0,
    "burst_changes_per_s": 100.0,
}


def targets_met(result: dict[str, Any]) -> dict[str, bool | None]:
    steady, latency, changes = result["steady"], result["latency_ms"], result["changes"]

    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def at_least(value: float | None, limit: float) -> bool | None:
        return None if value is None else value >= limit

    under_load = latency.get("starface_to_teams_under_load", {}).get("p95")
    return {
        "records_per_worker_cpu_s": at_least(result.get("steady_workers", {}).get("records_per_worker_cpu_s"),
                                             TARGETS["records_per_worker_cpu_s"]),
        "teams_to_starface_p95": at_most(latency["teams_to_starface"]["p95"],
                                         TARGETS["teams_to_starface_p95_ms"]),
        "starface_to_teams_p95": at_most(latency["starface_to_teams"]["p95"],
                                         TARGETS["starface_to_teams_p95_ms"]),
        "starface_to_teams_under_load_p95": at_most(under_load,
                                                    TARGETS["starface_to_teams_under_load_p95_ms"]),
        "burst_applied_in_time": at_most(changes.get("seconds_to_apply_all"), TARGETS["burst_seconds"])
        if changes.get("complete") else False,
        "burst_changes_per_s": at_least(changes.get("starface_writes_per_s"), TARGETS["burst_changes_per_s"]),
        "graph_requests_per_cycle": (steady["graph_requests_per_cycle"]
                                     == steady["expected_requests_per_cycle"]),
        "no_duplicate_writes": changes["duplicate_writes"] == 0,
    }


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")


def _panel(axis: Any, values_ms: list[float], title: str, target_ms: float, color: str) -> None:
    if not values_ms:
        axis.set_title(f"{title}: no samples")
        return
    ordered = sorted(values_ms)
    marks = percentiles(ordered)
    p50, p95 = marks["p50"], marks["p95"]
    axis.hist(ordered, bins=30, color=color, alpha=0.55, label=f"samples (n={len(ordered)})")
    axis.set_xlabel("latency (ms)")
    axis.set_ylabel("samples")
    cdf = axis.twinx()
    cdf.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], color="black", linewidth=1.2,
             label="CDF")
    cdf.set_ylim(0, 1.02)
    cdf.set_ylabel("fraction of samples")
    for value, name, style in ((p50, "p50", "--"), (p95, "p95", "-")):
        axis.axvline(value, color="tab:red", linestyle=style, linewidth=1.2, label=f"{name} {value:.0f} ms")
    axis.axvline(target_ms, color="tab:green", linestyle=":", linewidth=1.5,
                 label=f"target p95 <= {target_ms:.0f} ms")
    axis.set_title(title)
    handles, labels = axis.get_legend_handles_labels()
    more, more_labels = cdf.get_legend_handles_labels()
    axis.legend(handles + more, labels + more_labels, loc="center right", fontsize=8)


def plot_latency(teams_to_starface_ms: list[float], starface_to_teams_ms: list[float], subtitle: str,
                 path: Path) -> None:
    """Histogram and CDF per direction, with p50/p95 and the target marked."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    _panel(left, teams_to_starface_ms, "Teams -> STARFACE (DND visible on the PBX)",
           TARGETS["teams_to_starface_p95_ms"], "tab:blue")
    _panel(right, starface_to_teams_ms, "STARFACE -> Teams (setPresence at Graph)",
           TARGETS["starface_to_teams_p95_ms"], "tab:orange")
    figure.suptitle(f"TeamsConnect pipeline latency at 2 s cadence - {subtitle}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
