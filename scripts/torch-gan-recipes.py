#!/usr/bin/env python3
"""Trains issue 6's GAN recipes in PyTorch, as a control for the toolkit's own runs.

Tooling only (the toolkit never runs Python): it answers whether a FID gap between two GAN
variants comes from the recipe or from the engine, by training the same recipe with the
PyTorch twins of scripts/torch_reference/models.py and writing 10,000 samples that
`generative eval` scores beside the toolkit's.

    .venv-torch/bin/python scripts/torch-gan-recipes.py sngan --out /tmp/torch-sngan.npy

Recipes (batch 64, data scaled to [-1, 1], seed 0; PyTorch's default initialisation, or with
--init dcgan Radford et al.'s, as the toolkit's default: convolution weights (spectrally
normalised ones included) from N(0, 0.02), BatchNorm scales from N(1, 0.02) and shifts 0):
  dcgan    DCGANGenerator + DCGANDiscriminator, BCE non-saturating loss, Adam 2e-4 (0.5, 0.999),
           one D step then one G step on the same fake batch (the PyTorch DCGAN of the README's tables)
  dcgan-nobn  the same with the BatchNorm of the discriminator removed (WGANCritic's shape, no biases)
  sngan    DCGANGenerator + WGANCritic with torch.nn.utils.spectral_norm on every convolution,
           hinge loss, Adam 2e-4 (0.5, 0.999), one D step then one G step on the same fake batch
  wgan-gp  DCGANGenerator + WGANCritic, gradient penalty 10 on random interpolates,
           Adam 1e-4 (0.0, 0.9), 5 critic steps (each on a fresh real batch and fresh noise)
The samples are the raw generator's, in eval mode, (G(z) + 1) / 2 clamped to [0, 1], as uint8.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_reference.data import DEFAULT_TRAIN_IMAGES, batches, load_images, to_uint8  # noqa: E402
from torch_reference.models import DCGANDiscriminator, DCGANGenerator, WGANCritic, gradient_penalty  # noqa: E402


def critic(recipe):
    if recipe == "dcgan":
        return DCGANDiscriminator()
    if recipe == "dcgan-nobn":
        d = DCGANDiscriminator()
        d.net[3] = nn.Identity()
        return d
    c = WGANCritic()
    if recipe == "sngan":
        for i in (0, 2, 4):
            c.net[i] = nn.utils.spectral_norm(c.net[i])
    return c


def dcgan_init(module):
    """Radford et al.'s initialisation, as the toolkit's `--init-scheme dcgan`: convolution weights from
    N(0, 0.02), BatchNorm scales from N(1, 0.02) and shifts 0; convolution biases keep their values."""
    for name, p in module.named_parameters():
        if p.dim() == 4 and (name.endswith("weight") or name.endswith("weight_orig")):
            nn.init.normal_(p, 0.0, 0.02)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", choices=["dcgan", "dcgan-nobn", "sngan", "wgan-gp"])
    p.add_argument("--out", required=True, help="samples .npy (N x 28 x 28 uint8)")
    p.add_argument("--steps", type=int, default=4690, help="generator steps (5 epochs of 938 batches)")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", choices=["pytorch", "dcgan"], default="pytorch")
    p.add_argument("--data", default=DEFAULT_TRAIN_IMAGES)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = load_images(a.data)
    feed = batches(data, 64, torch.Generator().manual_seed(a.seed))
    g, d = DCGANGenerator(), critic(a.recipe)
    if a.init == "dcgan":
        dcgan_init(g)
        dcgan_init(d)
    lr, betas = ((1e-4, (0.0, 0.9)) if a.recipe == "wgan-gp" else (2e-4, (0.5, 0.999)))
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=betas)
    start = time.time()
    for step in range(1, a.steps + 1):
        if a.recipe == "wgan-gp":
            for _ in range(5):
                real = next(feed)
                with torch.no_grad():
                    fake = g(torch.randn(len(real), 100))
                gp, _ = gradient_penalty(d, real, fake, torch.rand(len(real), 1, 1, 1))
                loss_d = d(fake).mean() - d(real).mean() + 10 * gp
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
            loss_g = -d(g(torch.randn(64, 100))).mean()
        else:
            real = next(feed)
            fake = g(torch.randn(len(real), 100))
            s_real, s_fake = d(real), d(fake.detach())
            if a.recipe == "sngan":
                loss_d = F.relu(1 - s_real).mean() + F.relu(1 + s_fake).mean()
            else:
                loss_d = (F.binary_cross_entropy_with_logits(s_real, torch.ones_like(s_real))
                          + F.binary_cross_entropy_with_logits(s_fake, torch.zeros_like(s_fake)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            s = d(fake)
            loss_g = -s.mean() if a.recipe == "sngan" else F.binary_cross_entropy_with_logits(s, torch.ones_like(s))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if step % 100 == 0 or step == a.steps:
            print(f"step {step}/{a.steps} loss_d {loss_d.item():.4f} loss_g {loss_g.item():.4f} "
                  f"{time.time() - start:.0f} s", flush=True)
    g.eval()
    out = []
    with torch.no_grad():
        for i in range(0, a.count, 500):
            x = g(torch.randn(min(500, a.count - i), 100))
            out.append(to_uint8((x + 1) / 2))
    np.save(a.out, np.concatenate(out))
    print(f"wrote {a.out}: {a.count} samples, training {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
