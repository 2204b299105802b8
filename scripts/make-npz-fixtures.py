#!/usr/bin/env python3
"""Writes the small NumPy .npz fixtures of Tests/Fixtures/npz (read by Tests/GenFormatsTests/NPZTests.swift).

Run once with any Python that has NumPy (e.g. the PyTorch venv); the files are committed:

    python scripts/make-npz-fixtures.py [Tests/Fixtures/npz]

- stats-stored.npz:     np.savez            mu (4,) float64, sigma (4, 4) float64 (pytorch-fid's keys)
- stats-compressed.npz: np.savez_compressed the same two arrays (deflate)
- mixed-compressed.npz: np.savez_compressed a (2, 3) float32, b (5,) int64, c (3, 3) uint8 (more dtypes)
The values are exact in binary (k / 8), so the tests compare them bit for bit.
"""
import os
import sys

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "npz")
os.makedirs(out, exist_ok=True)

mu = np.arange(4, dtype=np.float64) / 8 - 0.25          # [-0.25, -0.125, 0, 0.125]
a = (np.arange(16, dtype=np.float64).reshape(4, 4) - 5) / 8
sigma = a @ a.T / 4                                       # symmetric positive semi-definite, exact in binary
np.savez(os.path.join(out, "stats-stored.npz"), mu=mu, sigma=sigma)
np.savez_compressed(os.path.join(out, "stats-compressed.npz"), mu=mu, sigma=sigma)
np.savez_compressed(os.path.join(out, "mixed-compressed.npz"),
                    a=(np.arange(6, dtype=np.float32) / 4).reshape(2, 3),
                    b=np.array([3, -1, 7, 0, 1 << 40], dtype=np.int64),
                    c=np.arange(9, dtype=np.uint8).reshape(3, 3) * 20)
print("numpy", np.__version__)
print("mu", mu.tolist())
print("sigma", sigma.tolist())
for name in sorted(os.listdir(out)):
    if name.endswith(".npz"):
        print(name, os.path.getsize(os.path.join(out, name)), "bytes")
