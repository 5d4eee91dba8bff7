"""Runs the pipeline benchmark for two git revisions back to back on this machine and prints both results
and their differences as one JSON object, so a claimed speed-up is shown from the same run.

    python bench/compare.py --base REV [--head REV] [-- benchmark options, e.g. --users 10000]

The base revision is checked out into a temporary git worktree and imported from there (PYTHONPATH);
``--head`` defaults to the working tree as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = (
    ("steady", "records_per_s_per_worker"),
    ("steady", "db_queries_per_batch"),
    ("steady", "graph_requests_per_cycle"),
    ("changes", "starface_writes_per_s"),
    ("changes", "applied"),
    ("changes", "apply_queue_peak"),
    ("changes", "duplicate_writes"),
    ("latency_ms", "teams_to_starface", "p95"),
    ("latency_ms", "starface_to_teams", "p95"),
    ("latency_ms", "starface_to_teams_under_load", "p95"),
    ("changes", "seconds_to_apply_all"),
    ("changes", "worker_cpu_ms_per_change"),
    ("changes", "pbx_peak_in_flight"),
    ("steady", "records_per_cpu_s"),
    ("steady_workers", "records_per_worker_cpu_s"),
    ("steady_workers", "worker_cpu_ms_per_tenant_cycle"),
    ("setup", "directory_sync_s"),
)


def run_bench(tree: Path, options: list[str], results: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    print(f"[compare] benchmark in {tree}", file=sys.stderr, flush=True)
    completed = subprocess.run(
        [sys.executable, str(tree / "bench" / "pipeline.py"), "--results-dir", str(results), *options],
        cwd=tree, env=env, stdout=subprocess.PIPE, check=True,
    )
    return json.loads(completed.stdout)


def pick(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = result
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--head", default="", help="git revision (default: the working tree)")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options passed to bench/pipeline.py")
    args = parser.parse_args()
    options = [o for o in args.options if o != "--"]
    with tempfile.TemporaryDirectory(prefix="tc-compare-") as scratch:
        trees: dict[str, Path] = {}
        for name, revision in (("base", args.base), ("head", args.head)):
            if not revision:
                trees[name] = ROOT
                continue
            trees[name] = Path(scratch) / name
            subprocess.run(["git", "worktree", "add", "--detach", str(trees[name]), revision], cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)
        try:
            results = {name: run_bench(tree, options, Path(scratch) / f"results-{name}")
                       for name, tree in trees.items()}
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    figures = {
        ".".join(path): {"base": pick(results["base"], path), "head": pick(results["head"], path)}
        for path in FIGURES
    }
    print(json.dumps({"base": args.base, "head": args.head or "working tree", "figures": figures,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
