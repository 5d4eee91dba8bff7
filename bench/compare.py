"""Runs the pipeline (or scale) benchmark for two git revisions back to back on this machine and prints
both results and their differences as one JSON object, so a claimed speed-up is shown from the same run.

    python bench/compare.py --base REV [--head REV] [-- benchmark options, e.g. --users 10000]
    python bench/compare.py --bench scale --base REV -- --configs 2000x25 --workers 1,2

The base revision is checked out into a temporary git worktree and imported from there (PYTHONPATH);
``--head`` defaults to the working tree as it is. A revision whose dependency locks differ from the
working tree's runs in a virtualenv of its own, installed from its own locks (as `make install` does), so
a change of dependencies is part of what is compared; the others run with this interpreter.
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
#: The hash-pinned locks `make install` installs, in its order (Makefile: LOCKS).
LOCKS = ("requirements-bootstrap.lock", "requirements-dev.lock")
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
    ("changes", "starface_requests_per_change"),
    ("steady", "records_per_cpu_s"),
    ("steady_workers", "records_per_worker_cpu_s"),
    ("steady_workers", "worker_cpu_ms_per_tenant_cycle"),
    ("steady_workers", "simulator_cpu_us_per_graph_request"),
    ("steady_workers", "worker_cpu_per_simulator_cpu"),
    ("setup", "directory_sync_s"),
)


#: Per configuration and worker count of bench/scale.py.
SCALE_FIGURES = ("worker_cpu_ms_per_tenant_cycle", "worker_cpu_us_per_user_cycle", "tenant_cycles_per_s",
                 "graph_requests_per_cycle", "simulator_cpu_us_per_graph_request",
                 "worker_cpu_per_simulator_cpu")


def locks_match(tree: Path) -> bool:
    """Whether ``tree`` locks the same dependencies as the working tree (whose .venv `make install` built)."""
    return all((tree / lock).read_bytes() == (ROOT / lock).read_bytes() for lock in LOCKS)


def python_for(tree: Path, venv: Path) -> str:
    """The interpreter for ``tree``'s benchmark: this one when the locks match, else a new virtualenv at
    ``venv`` with ``tree``'s own locks installed (a minute or so)."""
    if locks_match(tree):
        return sys.executable
    print(f"[compare] {tree} locks other dependencies: installing them into {venv}", file=sys.stderr,
          flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    for lock in LOCKS:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--require-hashes", "-r",
                        str(tree / lock)], check=True)
    return python


def run_bench(bench: str, tree: Path, python: str, options: list[str], results: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    print(f"[compare] {bench} benchmark in {tree} ({python})", file=sys.stderr, flush=True)
    completed = subprocess.run(
        [python, str(tree / "bench" / f"{bench}.py"), "--results-dir", str(results), *options],
        cwd=tree, env=env, stdout=subprocess.PIPE, check=True,
    )
    return json.loads(completed.stdout)


def pick(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = result
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def scale_figures(result: dict[str, Any]) -> dict[str, Any]:
    """The scale benchmark's figures keyed "TENANTSxUSERS.wWORKERS.figure" (and the statement counts)."""
    figures: dict[str, Any] = {}
    for config in result.get("configs", []):
        name = f"{config['tenants']}x{config['users_per_tenant']}"
        figures[f"{name}.poll_statements_per_tenant_cycle"] = config.get("poll_statements_per_tenant_cycle")
        for run in config.get("runs", []):
            for figure in SCALE_FIGURES:
                figures[f"{name}.w{run['workers']}.{figure}"] = run.get(figure)
            figures[f"{name}.w{run['workers']}.poll_lag_s.p95"] = pick(run, ("poll_lag_s", "p95"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--head", default="", help="git revision (default: the working tree)")
    parser.add_argument("--bench", choices=("pipeline", "scale"), default="pipeline",
                        help="which benchmark to run for both (default pipeline)")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options passed to the benchmark")
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
            pythons = {name: python_for(tree, Path(scratch) / f"venv-{name}") for name, tree in trees.items()}
            results = {name: run_bench(args.bench, tree, pythons[name], options,
                                       Path(scratch) / f"results-{name}")
                       for name, tree in trees.items()}
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    if args.bench == "scale":
        base, head = scale_figures(results["base"]), scale_figures(results["head"])
        figures = {key: {"base": base.get(key), "head": head.get(key)} for key in {**base, **head}}
    else:
        figures = {
            ".".join(path): {"base": pick(results["base"], path), "head": pick(results["head"], path)}
            for path in FIGURES
        }
    print(json.dumps({"bench": args.bench, "base": args.base, "head": args.head or "working tree",
                      "figures": figures,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
