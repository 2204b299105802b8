#!/usr/bin/env python3
"""The PyTorch twin of the toolkit's normalising flows (RealNVP and Glow), with the toolkit's
parameter names, for parity: it writes the flow fixtures and measures a toolkit checkpoint's
bits/dim exactly as `generative eval CHECKPOINT --likelihood` does.

    scripts/torch-env                                                    # once: .venv-torch, pinned versions
    .venv-torch/bin/python scripts/torch-realnvp.py fixtures --out Tests/Fixtures/flows
    .venv-torch/bin/python scripts/torch-realnvp.py likelihood runs/realnvp/checkpoint.safetensors --count 1000
    .venv-torch/bin/python scripts/torch-realnvp.py train --minutes 60 --samples-out runs/peers/realnvp.npy

Tooling only: the toolkit never runs Python. Layout: PyTorch's NCHW inside, with the toolkit's
conventions where they show: squeeze puts pixel (2h + dy, 2w + dx, c) in channel (2 dy + dx) C + c;
latents are the factored-out parts, then the last scale's, each flattened in (h, w, c) order; the
checkerboard conditions on pixels with (h + w) even (odd when reversed).
"""
import argparse
import gzip
import json
import math
import os
import sys

import numpy as np
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file


def squeeze(x):
    n, c, h, w = x.shape
    x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x):
    n, c4, h, w = x.shape
    c = c4 // 4
    x = x.view(n, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c, 2 * h, 2 * w)


def per_image_sum(x):
    return x.reshape(x.shape[0], -1).sum(1)


class Block(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(ch)
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.relu(self.norm1(x)))
        return x + self.conv2(F.relu(self.norm2(h)))


class CouplingNetwork(nn.Module):
    def __init__(self, cin, mid, cout, blocks):
        super().__init__()
        self.in_conv = nn.Conv2d(cin, mid, 3, padding=1)
        self.blocks = nn.ModuleList([Block(mid) for _ in range(blocks)])
        self.out_norm = nn.BatchNorm2d(mid)
        self.out_conv = nn.Conv2d(mid, 2 * cout, 3, padding=1)

    def forward(self, x):
        h = self.in_conv(x)
        for block in self.blocks:
            h = block(h)
        return self.out_conv(F.relu(self.out_norm(h))).chunk(2, dim=1)


class Coupling(nn.Module):
    def __init__(self, channels, mid, blocks, mask, reversed_, kind):
        super().__init__()
        self.mask, self.reversed, self.kind = mask, reversed_, kind
        changed = channels if mask == "checkerboard" else channels // 2
        self.net = CouplingNetwork(changed, mid, changed, blocks)
        if kind == "affine":
            self.scale = nn.Parameter(torch.ones(changed))

    def checkerboard(self, x):
        h, w = x.shape[2], x.shape[3]
        parity = 1 if self.reversed else 0
        idx = torch.arange(h).view(h, 1) + torch.arange(w).view(1, w)
        return ((idx % 2) == parity).to(x.dtype).view(1, 1, h, w)

    def params(self, cond):
        raw, t = self.net(cond)
        if self.kind != "affine":
            return None, t
        return torch.tanh(raw) * self.scale.view(1, -1, 1, 1), t

    def forward(self, x):
        if self.mask == "checkerboard":
            b = self.checkerboard(x)
            s, t = self.params(x * b)
            if s is None:
                return x + t * (1 - b), torch.zeros(x.shape[0], dtype=x.dtype)
            s = s * (1 - b)
            return x * s.exp() + t * (1 - b), per_image_sum(s)
        a, c = x.chunk(2, dim=1)
        keep, change = (c, a) if self.reversed else (a, c)
        s, t = self.params(keep)
        change = change + t if s is None else change * s.exp() + t
        y = torch.cat([change, keep] if self.reversed else [keep, change], dim=1)
        return y, torch.zeros(x.shape[0], dtype=x.dtype) if s is None else per_image_sum(s)

    def inverse(self, y):
        if self.mask == "checkerboard":
            b = self.checkerboard(y)
            s, t = self.params(y * b)
            if s is None:
                return y - t * (1 - b)
            return (y - t * (1 - b)) * (-s * (1 - b)).exp()
        a, c = y.chunk(2, dim=1)
        keep, change = (c, a) if self.reversed else (a, c)
        s, t = self.params(keep)
        change = change - t if s is None else (change - t) * (-s).exp()
        return torch.cat([change, keep] if self.reversed else [keep, change], dim=1)


class ActNorm(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(0.0))

    def forward(self, x):
        if self.training and self.initialized.item() == 0:
            with torch.no_grad():
                mean = x.mean(dim=(0, 2, 3))
                std = (x.var(dim=(0, 2, 3), unbiased=False) + 1e-12).sqrt()
                self.bias.copy_(-mean)
                self.log_scale.copy_(-(std + 1e-6).log())
                self.initialized.fill_(1)
        y = (x + self.bias.view(1, -1, 1, 1)) * self.log_scale.exp().view(1, -1, 1, 1)
        return y, self.log_scale.sum() * x.shape[2] * x.shape[3] * torch.ones(x.shape[0], dtype=x.dtype)

    def inverse(self, y):
        return y * (-self.log_scale).exp().view(1, -1, 1, 1) - self.bias.view(1, -1, 1, 1)


class InvertibleConvolution(nn.Module):
    def __init__(self, channels):
        super().__init__()
        c = channels
        self.lower = nn.Parameter(torch.zeros(c, c))
        self.upper = nn.Parameter(torch.zeros(c, c))
        self.log_s = nn.Parameter(torch.zeros(c))
        self.register_buffer("permutation", torch.eye(c))
        self.register_buffer("sign_s", torch.ones(c))

    def weight(self):
        c = self.lower.shape[0]
        eye = torch.eye(c, dtype=self.lower.dtype)
        lower = self.lower * torch.tril(torch.ones_like(self.lower), -1) + eye
        upper = self.upper * torch.triu(torch.ones_like(self.upper), 1) + torch.diag(self.sign_s * self.log_s.exp())
        return self.permutation @ lower @ upper

    def forward(self, x):
        c = x.shape[1]
        y = F.conv2d(x, self.weight().view(c, c, 1, 1))
        return y, self.log_s.sum() * x.shape[2] * x.shape[3] * torch.ones(x.shape[0], dtype=x.dtype)

    def inverse(self, y):
        c = y.shape[1]
        return F.conv2d(y, torch.linalg.inv(self.weight().double()).to(y.dtype).view(c, c, 1, 1))

    def initialize(self, generator):
        """The toolkit's initialisation: a random rotation, LU-decomposed with partial pivoting."""
        c = self.lower.shape[0]
        q, _ = np.linalg.qr(torch.randn(c, c, generator=generator, dtype=torch.float64).numpy())
        p, lower, upper = scipy.linalg.lu(q)
        with torch.no_grad():
            self.permutation.copy_(torch.from_numpy(p))
            self.lower.copy_(torch.from_numpy(np.tril(lower, -1)))
            self.upper.copy_(torch.from_numpy(np.triu(upper, 1)))
            self.log_s.copy_(torch.from_numpy(np.log(np.abs(np.diag(upper)))))
            self.sign_s.copy_(torch.from_numpy(np.sign(np.diag(upper))))


class Flow(nn.Module):
    """The toolkit's NormalizingFlow: `layers.I` in data-to-latent order, the same plan of squeezes and splits."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        h, w, c = config["imageShape"]
        layers, plan = [], []
        mid0 = config["channels"]

        def add(layer):
            plan.append(("layer", len(layers)))
            layers.append(layer)

        for scale in range(config["scales"]):
            last = scale == config["scales"] - 1
            mid = mid0 << scale
            if config["architecture"] == "realnvp":
                for i in range(4 if last else 3):
                    add(Coupling(c, mid, config["blocks"], "checkerboard", i % 2 == 1, config["coupling"]))
                if not last:
                    plan.append(("squeeze",))
                    c *= 4
                    for i in range(3):
                        add(Coupling(c, 2 * mid, config["blocks"], "channel", i % 2 == 1, config["coupling"]))
                    plan.append(("factor",))
                    c //= 2
            else:
                plan.append(("squeeze",))
                c *= 4
                for _ in range(config["steps"]):
                    add(ActNorm(c))
                    add(InvertibleConvolution(c))
                    add(Coupling(c, mid, config["blocks"], "channel", False, config["coupling"]))
                if not last:
                    plan.append(("factor",))
                    c //= 2
        self.layers = nn.ModuleList(layers)
        self.plan = plan

    def forward(self, x):
        """x (N, C, H, W) pre-processed -> z (N, D) and each layer's log-determinant."""
        h, outs, log_dets = x, [], []
        for step in self.plan:
            if step[0] == "layer":
                h, ld = self.layers[step[1]](h)
                log_dets.append(ld)
            elif step[0] == "squeeze":
                h = squeeze(h)
            else:
                kept = h.shape[1] // 2
                outs.append(h[:, kept:].permute(0, 2, 3, 1).reshape(h.shape[0], -1))
                h = h[:, :kept]
        outs.append(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1))
        return torch.cat(outs, dim=1), log_dets

    def parts(self):
        """The shapes (C, H, W) of the latent's parts, in order."""
        h, w, c = self.config["imageShape"]
        shapes = []
        for step in self.plan:
            if step[0] == "squeeze":
                h, w, c = h // 2, w // 2, c * 4
            elif step[0] == "factor":
                shapes.append((c - c // 2, h, w))
                c //= 2
        return shapes + [(c, h, w)]

    def inverse(self, z):
        """z (N, D) -> pre-processed data (N, C, H, W)."""
        n, parts, offset = z.shape[0], [], 0
        for c, h, w in self.parts():
            parts.append(z[:, offset: offset + c * h * w].reshape(n, h, w, c).permute(0, 3, 1, 2))
            offset += c * h * w
        x = parts.pop()
        for step in reversed(self.plan):
            if step[0] == "layer":
                x = self.layers[step[1]].inverse(x)
            elif step[0] == "squeeze":
                x = unsqueeze(x)
            else:
                x = torch.cat([x, parts.pop()], dim=1)
        return x


def bits_per_dim(flow, images, uniform, alpha):
    """images, uniform (N, H, W, C) channels-last as the toolkit takes them; returns bits (N), z, log-dets."""
    y = (torch.round(images * 255) + uniform) / 256
    p = alpha + (1 - 2 * alpha) * y
    x0 = (p.log() - torch.log1p(-p)).permute(0, 3, 1, 2)
    logit_log_det = per_image_sum(math.log(1 - 2 * alpha) - p.log() - torch.log1p(-p))
    z, log_dets = flow(x0)
    d = z.shape[1]
    log_density = -0.5 * (z ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi) + logit_log_det + sum(log_dets)
    bits = (-log_density + d * math.log(256)) / (d * math.log(2))
    return bits, z, log_dets


# ---------------------------------------------------------------- the toolkit's random streams

MASK64 = (1 << 64) - 1


def splitmix(seed, n):
    """RandomGenerator.mix: the n-th draw of the counter-based SplitMix64 stream of `seed` (vectorised over n)."""
    n = np.asarray(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (n + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def dequantisation_noise(seed, start, count, dims):
    """Dequantization.dequantize(_:startIndex:seed:)'s U[0, 1) noise: image i reads RandomGenerator(seed ^ 0xDE0A7715, counter: i * dims)."""
    s = (seed ^ 0xDE0A7715) & MASK64
    counters = (np.arange(start, start + count, dtype=np.uint64)[:, None] * np.uint64(dims)) + np.arange(dims, dtype=np.uint64)[None, :]
    return ((splitmix(s, counters) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).astype(np.float32)


# ---------------------------------------------------------------- commands

def load_checkpoint(path, prefix):
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
        tensors = {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    return json.loads(metadata["flow_config"]), tensors


def read_idx_images(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    count, rows, cols = (int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols, 1)
    return torch.from_numpy(pixels.astype(np.float32) / 255)


def likelihood(args):
    config, state = load_checkpoint(args.checkpoint, "model.")
    flow = Flow(config)
    flow.load_state_dict(state, strict=True)
    flow.eval()
    images = read_idx_images(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))[: args.count]
    d = images[0].numel()
    bits = []
    with torch.no_grad():
        for start in range(0, len(images), args.batch_size):
            batch = images[start: start + args.batch_size]
            noise = torch.from_numpy(dequantisation_noise(args.seed, start, len(batch), d)).view(batch.shape)
            bits.append(bits_per_dim(flow, batch, noise, config["alpha"])[0].double())
    bits = torch.cat(bits)
    se = bits.std(unbiased=True).item() / math.sqrt(len(bits)) if len(bits) > 1 else 0.0
    print(json.dumps({"checkpoint": args.checkpoint, "count": len(bits), "bits_per_dim": bits.mean().item(),
                      "bits_per_dim_se": se, "torch": torch.__version__}))


def images_from_latents(flow, z, alpha):
    """As the toolkit: y = (sigmoid(x0) - alpha) / (1 - 2 alpha), then the bin centre k / 255, clamped."""
    y = (torch.sigmoid(flow.inverse(z)) - alpha) / (1 - 2 * alpha)
    return ((y * 256 - 0.5) / 255).clamp(0, 1).permute(0, 2, 3, 1)


def train(args):
    """The toolkit's recipe (`generative train realnvp` with its defaults) in PyTorch, for --minutes of wall time."""
    import time
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    config = {"architecture": args.flow, "scales": 2, "channels": args.channels, "blocks": args.blocks, "steps": args.flow_steps,
              "coupling": "affine", "alpha": 0.05, "imageShape": [28, 28, 1]}
    flow = Flow(config)
    for layer in flow.layers:
        if isinstance(layer, Coupling):
            nn.init.zeros_(layer.net.out_conv.weight)
            nn.init.zeros_(layer.net.out_conv.bias)
        if isinstance(layer, InvertibleConvolution):
            layer.initialize(g)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3, weight_decay=5e-5)
    images = read_idx_images(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    start, step = time.time(), 0
    while time.time() - start < args.minutes * 60:
        order = torch.randperm(len(images), generator=g)
        for first in range(0, len(order) - args.batch_size + 1, args.batch_size):
            if time.time() - start >= args.minutes * 60:
                break
            batch = images[order[first: first + args.batch_size]]
            flow.train()
            loss = bits_per_dim(flow, batch, torch.rand(batch.shape, generator=g), 0.05)[0].mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step} bits/dim {loss.item():.3f} {time.time() - start:.0f} s", file=sys.stderr)
    flow.eval()
    test = read_idx_images(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))[:1000]
    with torch.no_grad():
        noise = torch.from_numpy(dequantisation_noise(0, 0, len(test), 784)).view(test.shape)
        bits = bits_per_dim(flow, test, noise, 0.05)[0].double()
        samples = torch.cat([images_from_latents(flow, torch.randn(500, 784, generator=g) * args.temperature, 0.05)
                             for _ in range(args.samples // 500)])
    np.save(args.samples_out, samples[..., 0].numpy().astype(np.float32))
    print(json.dumps({"steps": step, "seconds": time.time() - start, "bits_per_dim": bits.mean().item(),
                      "bits_per_dim_se": bits.std().item() / math.sqrt(len(bits)), "samples": args.samples_out,
                      "temperature": args.temperature, "torch": torch.__version__, "threads": args.threads}))


def fixture_case(name, config, seed, batch):
    """Random weights (identity layers moved away from the identity), inputs and answers in float32 and float64."""
    g = torch.Generator().manual_seed(seed)
    flow = Flow(config)
    with torch.no_grad():
        for key, p in list(flow.named_parameters()) + list(flow.named_buffers()):
            if key.endswith("num_batches_tracked") or key.endswith("permutation") or key.endswith("sign_s"):
                continue
            if key.endswith("running_var"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif key.endswith("initialized"):
                p.fill_(1)
            else:
                p.add_((torch.rand(p.shape, generator=g) - 0.5) * 0.1)
        for layer in flow.layers:
            if isinstance(layer, InvertibleConvolution):
                c = layer.lower.shape[0]
                perm = torch.randperm(c, generator=g)
                layer.permutation.copy_(torch.eye(c)[perm])
                layer.sign_s.copy_(torch.where(torch.rand(c, generator=g) < 0.5, -1.0, 1.0))
    flow.eval()
    h, w, c = config["imageShape"]
    images = torch.randint(0, 256, (batch, h, w, c), generator=g).float() / 255
    uniform = torch.rand((batch, h, w, c), generator=g)
    answers = {}
    for dtype in (torch.float32, torch.float64):
        twin = Flow(config).to(dtype)
        twin.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in flow.state_dict().items()})
        twin.eval()
        bits, z, log_dets = bits_per_dim(twin, images.to(dtype), uniform.to(dtype), config["alpha"])
        loss = bits.mean()
        names = [k for k, _ in twin.named_parameters()]
        grads = torch.autograd.grad(loss, [p for _, p in twin.named_parameters()])
        answers[dtype] = {"bits": bits, "z": z, "log_dets": torch.stack(log_dets, dim=1),
                          **{"grad." + n: gr for n, gr in zip(names, grads)}}
    worst = max(((answers[torch.float32][k].double() - v).abs().max() / v.abs().max().clamp_min(1e-30)).item()
                for k, v in answers[torch.float64].items())
    print(f"{name}: float32 within {worst:.1e} of float64 (relative to each answer's largest magnitude)", file=sys.stderr)
    if worst > 1e-5:
        raise SystemExit(f"{name}: ill-conditioned draw (float32 off by {worst:.1e})")
    io = {"images": images, "uniform": uniform, **{k: v.contiguous() for k, v in answers[torch.float32].items()}}
    params = {k: v.contiguous() for k, v in flow.state_dict().items()}
    return params, io


def fixtures(args):
    os.makedirs(args.out, exist_ok=True)
    base = {"scales": 2, "channels": 4, "blocks": 1, "steps": 2, "alpha": 0.05, "imageShape": [8, 8, 1]}
    cases = {"realnvp": {**base, "architecture": "realnvp", "coupling": "affine"},
             "glow": {**base, "architecture": "glow", "coupling": "affine"},
             "glow_additive": {**base, "architecture": "glow", "coupling": "additive", "steps": 1}}
    for i, (name, config) in enumerate(cases.items()):
        params, io = fixture_case(name, config, args.seed + i, args.batch)
        save_file(params, os.path.join(args.out, f"{name}.params.safetensors"), metadata={"flow_config": json.dumps(config)})
        save_file(io, os.path.join(args.out, f"{name}.io.safetensors"))
    with open(os.path.join(args.out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "numpy": np.__version__, "seed": args.seed, "batch": args.batch}, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fixtures", help="write the flow parity fixtures")
    f.add_argument("--out", default="Tests/Fixtures/flows")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--batch", type=int, default=3)
    lk = sub.add_parser("likelihood", help="bits/dim of a toolkit checkpoint on the test split, as `generative eval --likelihood`")
    lk.add_argument("checkpoint")
    lk.add_argument("--count", type=int, default=1000)
    lk.add_argument("--seed", type=int, default=0)
    lk.add_argument("--batch-size", type=int, default=250)
    lk.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    t = sub.add_parser("train", help="the toolkit's default recipe in PyTorch for --minutes; test bits/dim and samples")
    t.add_argument("--minutes", type=float, default=60)
    t.add_argument("--flow", default="realnvp", choices=["realnvp", "glow"])
    t.add_argument("--channels", type=int, default=32)
    t.add_argument("--blocks", type=int, default=2)
    t.add_argument("--flow-steps", type=int, default=4)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--temperature", type=float, default=1.0)
    t.add_argument("--samples", type=int, default=10000)
    t.add_argument("--samples-out", default="runs/peers/realnvp.npy")
    t.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float32)
    {"fixtures": fixtures, "likelihood": likelihood, "train": train}[args.command](args)


if __name__ == "__main__":
    main()
