#!/usr/bin/env python3
"""Times the reference workloads in PyTorch, the peer of `generative bench` (tooling only).

    .venv-torch/bin/python scripts/torch-bench.py                        # every workload, a JSON line each
    .venv-torch/bin/python scripts/torch-bench.py --workload unet --phase train --threads 2

Each line: {"workload", "phase", "batch", "items_per_s", "ms_per_step", "framework"}, as
`generative bench` prints. A "train" step is forward, backward and an Adam update on one batch; a
"sample" step is one generation pass (for unet, one network evaluation per image, so items_per_s is
network evaluations per second). Each is timed after two warm-up steps, over at least --seconds and
three steps. scripts/bench-vs-pytorch runs this beside the toolkit.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference.models import (Classifier, DCGANDiscriminator, DCGANGenerator, MLPVAE, UNet,  # noqa: E402
                                    linear_schedule, noise_prediction_loss)


def seconds_per_step(step, seconds, warmup=2, minimum_steps=3):
    for _ in range(warmup):
        step()
    steps, start = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and steps >= minimum_steps:
            return elapsed / steps


def adam_step(optimizer, loss):
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def vae_workloads(batch):
    vae = MLPVAE()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    x = torch.rand(batch or 128, 1, 28, 28)
    draws = batch or 1024
    yield "vae", "train", len(x), lambda: adam_step(optimizer, vae.negative_elbo(x)[0])

    def sample():
        with torch.no_grad():
            torch.sigmoid(vae.decode(torch.randn(draws, vae.z_dim)))
    yield "vae", "sample", draws, sample


def dcgan_workloads(batch):
    generator, discriminator = DCGANGenerator(), DCGANDiscriminator()
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = 2 * torch.rand(batch or 64, 1, 28, 28) - 1
    ones, zeros = torch.ones(len(real)), torch.zeros(len(real))

    def train():
        fake = generator(torch.randn(len(real), 100))
        adam_step(opt_d, F.binary_cross_entropy_with_logits(discriminator(real), ones)
                  + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros))
        adam_step(opt_g, F.binary_cross_entropy_with_logits(discriminator(fake), ones))
    yield "dcgan", "train", len(real), train

    draws = batch or 1024

    def sample():
        generator.eval()
        with torch.no_grad():
            generator(torch.randn(draws, 100))
        generator.train()
    yield "dcgan", "sample", draws, sample


def unet_workloads(batch):
    unet = UNet(ch=32, num_classes=10)
    optimizer = torch.optim.Adam(unet.parameters(), lr=2e-4)
    _, _, abar = linear_schedule()
    x0 = torch.randn(batch or 64, 1, 28, 28)
    labels = torch.randint(0, 11, (len(x0),))
    yield "unet", "train", len(x0), lambda: adam_step(optimizer, noise_prediction_loss(unet, x0, abar, labels))

    xt = torch.randn(batch or 256, 1, 28, 28)
    t, y = torch.full((len(xt),), 500), torch.randint(0, 11, (len(xt),))

    def evaluate():
        with torch.no_grad():
            unet(xt, t, y)
    yield "unet", "sample", len(xt), evaluate


def classifier_workloads(batch):
    classifier = Classifier()
    x = torch.randn(batch or 1024, 1, 28, 28)

    def features():
        with torch.no_grad():
            classifier(x)
    yield "classifier", "sample", len(x), features


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["vae", "dcgan", "unet", "classifier"])
    parser.add_argument("--phase", choices=["train", "sample"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=0, help="overrides every workload's batch (0: their own)")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for family in (vae_workloads, dcgan_workloads, unet_workloads, classifier_workloads):
        for workload, phase, batch, step in family(args.batch_size):
            if (args.workload and workload != args.workload) or (args.phase and phase != args.phase):
                continue
            seconds = seconds_per_step(step, args.seconds)
            print(json.dumps({"workload": workload, "phase": phase, "batch": batch,
                              "items_per_s": round(batch / seconds, 2), "ms_per_step": round(seconds * 1e3, 3),
                              "framework": f"pytorch-{torch.__version__}"}), flush=True)


if __name__ == "__main__":
    main()
