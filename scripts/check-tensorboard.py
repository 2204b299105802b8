"""Reads a run's TensorBoard event files back with TensorBoard's own reader and checks them against
the run's metrics.jsonl: every step line's scalars appear as `train/NAME` at its step, and every
epoch line's loss means as `epoch/NAME`, with the same values (to float32).

    python scripts/check-tensorboard.py RUN_FOLDER

Tooling only (scripts/check-tensorboard sets up the package); exits non-zero on any mismatch.
"""
import json
import sys

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(run):
    acc = EventAccumulator(f"{run}/tensorboard", size_guidance={"scalars": 0})
    acc.Reload()
    got = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    expected = {}
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            row = json.loads(line)
            if row.get("kind") == "step":
                for name, value in row.items():
                    if name not in ("kind", "step", "epoch", "wall_time"):
                        expected.setdefault(f"train/{name}", {})[row["step"]] = value
            else:
                losses = {k: v for k, v in row.items() if k not in ("kind", "step", "epoch", "images_per_s", "seconds")}
                for name, value in losses.items():
                    expected.setdefault(f"epoch/{name}", {})[row["step"]] = value
    problems = []
    if set(expected) - set(got):
        problems.append(f"tags missing from the event file: {sorted(set(expected) - set(got))}")
    count = 0
    for tag, points in expected.items():
        for step, value in points.items():
            stored = got.get(tag, {}).get(step)
            if stored is None or np.float32(value) != np.float32(stored):
                problems.append(f"{tag} at step {step}: metrics.jsonl {value}, event file {stored}")
            count += 1
    if problems or count == 0:
        print("\n".join(problems) or "no scalars to compare", file=sys.stderr)
        sys.exit(1)
    print(f"tensorboard read {count} scalars under {len(expected)} tags, all equal to metrics.jsonl")


if __name__ == "__main__":
    main(sys.argv[1])
