"""The whole pipeline at 1M to 20M rows: time, rows/s and peak RSS of each step
(issue #27 item 3, issue #30 item 4). Run through `benchmarks/scale.py --pipeline`.

What runs, per size, each step a process of its own, as a user runs it:
    data        `sr.data.raw_log(N, taste=...)`: a MovieLens-20M-shaped log
                (138,493 users, 26,744 items, string ids, a genres list, a
                timestamp, one continuous user feature with gaps) whose users
                prefer the items of their own group, split at random into
                train (99%) and valid (1%) parquet files of row groups of 1M
                rows. Not part of the user's pipeline; timed for reference.
    etl         `schemaretrieval etl --schema schemas/raw-log.yaml --train ...
                --valid ... --out DIR/etl` (NVTabular, CPU).
    train       `schemaretrieval train --data DIR/etl --out DIR/run`: the
                defaults (epochs, batch size and learning rate from the data,
                docs/defaults.md), streamed from parquet when the table's
                in-memory size is over the threshold; then full-catalog
                evaluation of the held-out 1% with and without each user's
                training items, and the serving export with exclusions.
    evaluate    `schemaretrieval evaluate --model DIR/run --data DIR/etl
                --exclude-seen --baseline popularity`.

Each CLI step writes a line ``step <name>: <time>, <rows/s>, peak RSS <GB>``
per stage (`sr.progress.Step`: the peak is the stage's own, the process's
VmHWM reset as it starts); the table shows them, and each process's peak:
the largest of its stages' and of ``getrusage`` of the child (which, as a
stage resets the high-water mark, sees only the peak since the last stage
began). The held-out recall the train step prints goes beside them.

Run
    python benchmarks/scale.py --pipeline 1M,5M,20M [--work DIR] [--taste 3.0]
        [--train-args "--epochs 3"] [--resume]

With --resume a step that finished in an earlier run in the same --work is
not run again (its figures are read back from <size>/<step>.json).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VALID_FRACTION = 0.01
ROW_GROUP_ROWS = 1_000_000
STEP_LINE = re.compile(r"^step (?P<name>[^:]+): (?P<time>\S+)(?:, (?P<rate>[\d,]+) rows/s)?, peak RSS (?P<gb>[\d.]+) GB$")
RECALL_LINE = re.compile(r"^(?P<name>two-tower(?:, seen excluded)?|popularity(?:, seen excluded)?)\s+"
                         r"(?P<r10>[\d.]+)\s+(?P<r100>[\d.]+)$")


def generate(rows: int, out: Path, taste: float, seed: int = 0) -> None:
    """Writes out/train.parquet and out/valid.parquet (runs in a child process)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import schemaretrieval as sr

    frame = sr.data.raw_log(rows, seed=seed, taste=taste)
    held = np.random.default_rng(seed).random(len(frame)) < VALID_FRACTION
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", frame[~held]), ("valid", frame[held])):
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, out / f"{name}.parquet", row_group_size=ROW_GROUP_ROWS)


def run_step(command: list[str], log_path: Path) -> dict:
    """Runs ``command``, its stdout and stderr into ``log_path``; wall seconds, the child's
    peak RSS and exit status, and the ``step`` and recall lines it wrote."""
    started = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(child.pid, 0)
    result = {"seconds": time.perf_counter() - started, "peak_gb": usage.ru_maxrss * 1024 / 1e9,
              "status": os.waitstatus_to_exitcode(status), "steps": {}, "recall": {}, "log": str(log_path)}
    for line in log_path.read_text(errors="replace").splitlines():
        match = STEP_LINE.match(line.strip())
        if match:
            result["steps"][match["name"]] = {"time": match["time"], "rows_per_s": match["rate"],
                                              "peak_gb": float(match["gb"])}
        match = RECALL_LINE.match(line.strip())
        if match:
            result["recall"][match["name"]] = (float(match["r10"]), float(match["r100"]))
    return result


def process_peak(result: dict) -> float:
    """A step's process peak (GB): the largest of its stages' and of the child's ``getrusage``."""
    return max([result["peak_gb"]] + [s["peak_gb"] for s in result["steps"].values()])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "schemaretrieval", *args]


def run_size(rows: int, work: Path, args) -> dict:
    base = work / f"{rows}"
    base.mkdir(parents=True, exist_ok=True)
    raw, etl, run = base / "raw", base / "etl", base / "run"
    results = {}
    plan = [
        ("data", [sys.executable, str(HERE / "scale.py"), "--generate", str(rows), "--generate-out", str(raw),
                  "--taste", str(args.taste)]),
        ("etl", cli("etl", "--schema", "schemas/raw-log.yaml", "--train", str(raw / "train.parquet"),
                    "--valid", str(raw / "valid.parquet"), "--out", str(etl))),
        ("train", cli("train", "--data", str(etl), "--out", str(run), *shlex.split(args.train_args))),
        ("evaluate", cli("evaluate", "--model", str(run), "--data", str(etl), "--exclude-seen",
                         "--baseline", "popularity")),
    ]
    for name, command in plan:
        done = base / f"{name}.json"
        if args.resume and done.is_file():
            results[name] = json.loads(done.read_text())
            print(f"  {rows:,} rows: {name}: done before ({done})", flush=True)
            continue
        print(f"  {rows:,} rows: {name}: {shlex.join(command[1:])}", flush=True)
        result = run_step(command, base / f"{name}.log")
        if not result["status"]:
            done.write_text(json.dumps(result, indent=2))
        results[name] = result
        stages = "; ".join(f"{stage} {s['time']}, {s['peak_gb']:.2f} GB" for stage, s in result["steps"].items())
        print(f"    {result['seconds']:.0f} s, process peak {process_peak(result):.2f} GB"
              + (f" ({stages})" if stages else "") + (f", EXIT {result['status']}" if result["status"] else ""),
              flush=True)
        if result["status"]:
            print(f"    see {result['log']}", flush=True)
            break
    (base / "results.json").write_text(json.dumps(results, indent=2))
    return results


def print_tables(all_results: dict) -> None:
    print("\n| rows | step | time | rows/s | peak RSS (stage) | peak RSS (process) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for rows, results in all_results.items():
        for name, result in results.items():
            stages = result["steps"] or {name: {"time": f"{result['seconds']:.0f}s", "rows_per_s": None,
                                                "peak_gb": result["peak_gb"]}}
            for stage, s in stages.items():
                rate = s["rows_per_s"] or "-"
                print(f"| {rows / 1e6:g}M | {name}: {stage} | {s['time']} | {rate} | {s['peak_gb']:.2f} GB "
                      f"| {process_peak(result):.2f} GB |")
        total = sum(r["seconds"] for n, r in results.items() if n != "data")
        print(f"| {rows / 1e6:g}M | etl + train + evaluate, wall | {total / 60:.1f} min | | | |")
    print("\n| rows | held out | recall@10 | recall@100 |")
    print("| --- | --- | --- | --- |")
    for rows, results in all_results.items():
        for name, (r10, r100) in results.get("train", {}).get("recall", {}).items():
            print(f"| {rows / 1e6:g}M | {name} | {r10:.4f} | {r100:.4f} |")


def run_pipeline(args) -> None:
    work = Path(args.work)
    print(f"pipeline in {work}; {os.cpu_count()} CPUs; taste {args.taste}; train args {args.train_args!r}", flush=True)
    all_results = {}
    for rows in args.pipeline:
        all_results[rows] = run_size(rows, work, args)
    print_tables(all_results)
