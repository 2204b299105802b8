#!/usr/bin/env python3
"""The analytic scaling model of docs/distributed.md, from `generative bench --distributed` lines.

Usage: scripts/scaling-model.py BENCH.jsonl...
The files hold the JSON lines of three runs on one machine (any order, one file or several):
  scripts/mpirun -np 2 generative bench --distributed --threads 1   (the allreduce line and 2 x 1)
  generative bench --distributed --threads 2                        (1 x 2)
  generative bench --distributed --threads 1                        (1 x 1: the compute per example)
Prints two markdown tables: this machine's 2 x 1 against 1 x 2, measured and predicted, and the
expected efficiency at 8, 64 and 512 ranks over 10 and 100 Gbit/s.

The model: a step is compute then a ring allreduce of the gradients, not overlapped (the toolkit
reduces after the backward pass). Compute per rank is (local batch) x (seconds per example on one
rank of one core, measured). A ring allreduce of S bytes on N ranks takes 2 (N - 1) steps of S / N
bytes: t = 2 (N - 1) (alpha + S / (N BW)), with alpha = 5 us per step. Efficiency is
compute / (compute + allreduce) at a fixed local batch (the global batch grows with N).
Standard library only: tooling, never needed to run the toolkit.
"""
import json
import sys

ALPHA = 5e-6


def load(paths):
    rows = [json.loads(line) for path in paths for line in open(path) if line.strip().startswith("{")]
    steps = {}
    bus = None
    for r in rows:
        if r.get("workload") == "allreduce":
            bus = r["bus_gb_per_s"] * 1e9
        elif r.get("phase") == "train-distributed":
            steps[(r["workload"], r["ranks"], r["threads"])] = r
    return steps, bus


def ring(bytes_, ranks, bandwidth):
    return 2 * (ranks - 1) * (ALPHA + bytes_ / (ranks * bandwidth)) if ranks > 1 else 0.0


def main(paths):
    steps, bus = load(paths)
    workloads = sorted({w for (w, _, _) in steps})
    print("| workload | batch | 1 x 2 ms/step | 2 x 1 ms/step | allreduce ms | MB/step | measured 1x2 / 2x1 | predicted 2 x 1 ms | predicted 1x2 / 2x1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in workloads:
        one, two, single = steps.get((w, 1, 2)), steps.get((w, 2, 1)), steps.get((w, 1, 1))
        if not (one and two and single):
            continue
        bytes_ = two["bytes_per_step"]
        predicted = single["ms_per_step"] / 2 + (ring(bytes_, 2, bus) * 1e3 if bus else 0)
        print(f"| {w} | {two['batch']} | {one['ms_per_step']:.1f} | {two['ms_per_step']:.1f} | {two['allreduce_ms']:.1f} | "
              f"{bytes_ / 1e6:.2f} | {one['ms_per_step'] / two['ms_per_step']:.2f} | {predicted:.1f} | "
              f"{one['ms_per_step'] / predicted:.2f} |")
    print()
    print("| workload | local batch | compute ms | ranks | global batch | 10 Gbit/s: allreduce ms, efficiency | 100 Gbit/s: allreduce ms, efficiency | local batch for 90% at 10 / 100 Gbit/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in workloads:
        single = steps.get((w, 1, 1))
        two = steps.get((w, 2, 1))
        if not single:
            continue
        batch = single["batch"]
        per_example = single["ms_per_step"] / 1e3 / batch
        bytes_ = two["bytes_per_step"] if two else 4 * single["parameters"]
        compute = per_example * batch
        for ranks in (8, 64, 512):
            cells = []
            need = []
            for gbit in (10, 100):
                t = ring(bytes_, ranks, gbit * 1e9 / 8)
                cells.append(f"{t * 1e3:.1f}, {compute / (compute + t):.0%}")
                need.append(f"{int(9 * t / per_example + 0.999)}")
            print(f"| {w} | {batch} | {compute * 1e3:.1f} | {ranks} | {ranks * batch} | {cells[0]} | {cells[1]} | {' / '.join(need)} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
