"""Writes Tests/Fixtures/tensorboard: an event file made by TensorBoard's own writer, with scalars
the toolkit's reader (GenFormats' TFEventFile) must read back exactly, and the values as JSON.

    .venv-tensorboard/bin/python scripts/make-tensorboard-fixture.py

Tooling only: scripts/requirements-tensorboard.txt pins the version.
"""
import json
import os

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

folder = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "tensorboard")
for name in os.listdir(folder):
    os.remove(os.path.join(folder, name))
writer = EventFileWriter(folder, filename_suffix=".fixture")
expected = []
for step in (0, 1, 50, 1000, 123456789):
    values = {"train/loss": 1.0 / (step + 3), "train/lr": 2e-4, "epoch/loss_d": -0.5 * step}
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values.items()])
    wall = 1796600000.25 + step
    writer.add_event(event_pb2.Event(wall_time=wall, step=step, summary=summary))
    expected.append({"step": step, "wall_time": wall, "scalars": [[t, v] for t, v in values.items()]})
writer.close()
(name,) = [n for n in os.listdir(folder) if n.startswith("events.out.tfevents.")]
os.rename(os.path.join(folder, name), os.path.join(folder, "events.out.tfevents.fixture"))
with open(os.path.join(folder, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
print(f"wrote {folder}")
