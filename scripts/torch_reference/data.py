"""Fashion-MNIST for the PyTorch tooling: IDX files (gzipped or not) and endless shuffled batches."""
import gzip

import numpy as np
import torch

DEFAULT_TRAIN_IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def load_idx_images(path):
    """An IDX3 image file -> uint8 array [N, rows, cols]."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if int.from_bytes(data[0:4], "big") != 0x00000803:
        raise SystemExit(f"{path}: not an IDX3 image file")
    n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def load_images(path, low=-1.0, high=1.0):
    """IDX images scaled to [low, high], float32 [N, 1, rows, cols]."""
    x = torch.from_numpy(load_idx_images(path).astype(np.float32) / 255.0).unsqueeze(1)
    return low + (high - low) * x


def batches(data, batch, generator):
    """Endless shuffled batches, the last one of each epoch short (as the toolkit's loader)."""
    while True:
        order = torch.randperm(len(data), generator=generator)
        for i in range(0, len(data), batch):
            yield data[order[i:i + batch]]


def to_uint8(images01):
    """Images in [0, 1], [N, 1, H, W] -> uint8 [N, H, W] (round(255 x), clamped), as `generative eval` reads .npy."""
    return images01.clamp(0, 1).mul(255).round().to(torch.uint8).squeeze(1).numpy()
