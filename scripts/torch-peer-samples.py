#!/usr/bin/env python3
"""Trains the PyTorch reference VAE or DDPM and writes 10,000 samples for `generative eval`.

Tooling only (the toolkit never runs Python): these are the PyTorch peers of the README's quality
tables, trained on this kind of machine with the twins of scripts/torch_reference/models.py, so that
the toolkit's numbers are read beside PyTorch's on the same evaluator. The DCGAN peer is
`scripts/torch-gan-recipes.py dcgan`.

    .venv-torch/bin/python scripts/torch-peer-samples.py vae --out runs/peers/vae.npy
    .venv-torch/bin/python scripts/torch-peer-samples.py ddpm --out runs/peers/ddpm.npy
    scripts/generative eval runs/peers/vae.npy

Recipes (seed 0, 2 threads, the training split):
  vae   MLPVAE, Adam 1e-3, batch 128, 10 epochs, data in [0, 1]; samples are the sigmoid of the
        decoder's logits at z ~ N(0, I) (Bernoulli means, not draws)
  ddpm  UNet(ch=32), unconditional, Adam 2e-4, batch 64, data in [-1, 1], t uniform in 0..999,
        linear betas 1e-4..0.02, noise-prediction MSE, EMA 0.999 with warm-up min(0.999, (1 + n) / (10 + n)),
        trained for --minutes of wall-clock time (30 by default); samples from the EMA weights by
        DDIM-20 (t = 950, 900, ..., 0, eta 0), x0 clipped to [-1, 1] at each step, batch 500
Output: N x 28 x 28 uint8 .npy (round(255 x) of values in [0, 1]).
"""
import argparse
import copy
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_reference.data import DEFAULT_TRAIN_IMAGES, batches, load_images, to_uint8  # noqa: E402
from torch_reference.models import MLPVAE, UNet, linear_schedule, noise_prediction_loss  # noqa: E402


def log(message):
    print(message, file=sys.stderr, flush=True)


def train_vae(args, data):
    model = MLPVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    feed = batches(data, 128, torch.Generator().manual_seed(args.seed))
    steps_per_epoch = (len(data) + 127) // 128
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for _ in range(steps_per_epoch):
            x = next(feed)
            loss, _ = model.negative_elbo(x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        log(f"epoch {epoch}/{args.epochs}: loss per image {total / len(data):.1f}, {time.time() - start:.0f} s")
    with torch.no_grad():
        return [torch.sigmoid(model.decode(torch.randn(n, model.z_dim))).reshape(n, 1, 28, 28)
                for n in chunks(args.count, 1000)]


def train_ddpm(args, data):
    model = UNet(ch=32)
    ema = copy.deepcopy(model).eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    _, _, abar = linear_schedule()
    feed = batches(data, 64, torch.Generator().manual_seed(args.seed))
    start, step = time.time(), 0
    while time.time() - start < 60 * args.minutes:
        loss = noise_prediction_loss(model, next(feed), abar)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.mul_(decay).add_(p, alpha=1 - decay)
        step += 1
        if step % 100 == 0:
            log(f"step {step}: loss {loss.item():.4f}, {time.time() - start:.0f} s of {60 * args.minutes} s")
    log(f"trained {step} steps in {time.time() - start:.0f} s; sampling {args.count} images by DDIM-20")
    times = list(range(950, -1, -50))
    out = []
    with torch.no_grad():
        for n in chunks(args.count, 500):
            x = torch.randn(n, 1, 28, 28)
            for i, t in enumerate(times):
                eps = ema(x, torch.full((n,), t))
                x0 = ((x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1, 1)
                previous = abar[times[i + 1]] if i + 1 < len(times) else torch.tensor(1.0)
                x = previous.sqrt() * x0 + (1 - previous).sqrt() * eps
            out.append((x + 1) / 2)
            log(f"sampled {sum(len(o) for o in out)}/{args.count}")
    return out


def chunks(count, size):
    return [min(size, count - i) for i in range(0, count, size)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["vae", "ddpm"])
    parser.add_argument("--out", required=True, help="samples .npy (N x 28 x 28 uint8)")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10, help="vae only")
    parser.add_argument("--minutes", type=float, default=30.0, help="ddpm only: wall-clock training time")
    parser.add_argument("--data", default=DEFAULT_TRAIN_IMAGES)
    args = parser.parse_args()
    if not args.out.endswith(".npy"):
        parser.error("--out must name a .npy file")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    low = 0.0 if args.model == "vae" else -1.0
    data = load_images(args.data, low=low)
    images = (train_vae if args.model == "vae" else train_ddpm)(args, data)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.save(args.out, np.concatenate([to_uint8(x) for x in images]))
    log(f"wrote {args.out}: {args.count} samples")


if __name__ == "__main__":
    main()
