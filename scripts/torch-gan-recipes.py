#!/usr/bin/env python3
"""Trains the toolkit's GAN recipes in PyTorch, as a control for the toolkit's own runs, and writes
the parity fixtures of the standard-CNN networks.

Tooling only (the toolkit never runs Python): it answers whether a FID gap between two GAN
variants comes from the recipe or from the engine, by training the same recipe with PyTorch twins
of the toolkit's networks (same parameter names) and writing 10,000 samples that `generative eval`
scores beside the toolkit's.

    .venv-torch/bin/python scripts/torch-gan-recipes.py sngan --out /tmp/torch-sngan.npy
    .venv-torch/bin/python scripts/torch-gan-recipes.py fixtures --out Tests/Fixtures/gan

Recipes (batch 64, data scaled to [-1, 1], seed 0). The defaults are the toolkit's (`generative
train RECIPE`): Radford et al.'s initialisation (--init dcgan: convolution weights, spectrally
normalised ones included, from N(0, 0.02), the standard-CNN networks' linear weights too,
BatchNorm scales from N(1, 0.02) and shifts 0; --init pytorch keeps each layer's default), and the
networks below (--generator dcgan|sn-cnn|resnet, --critic reference|sn-cnn|resnet pick others;
the ResNets are Miyato et al.'s appendix networks adapted to 28x28, width 128):
  dcgan    DCGANGenerator + DCGANDiscriminator, BCE non-saturating loss, Adam 2e-4 (0.5, 0.999),
           one D step then one G step on the same fake batch
  dcgan-nobn  the same with the BatchNorm of the discriminator removed (WGANCritic's shape, no biases)
  sngan    DCGANGenerator + WGANCritic with torch.nn.utils.spectral_norm on every layer, hinge loss,
           Adam 2e-4 (0.5, 0.999), one D step then one G step on the same fake batch;
           --generator sn-cnn --critic sn-cnn: Miyato et al.'s standard CNN (2018, Table 3, adapted
           to 28x28; latent 128), spectral_norm on every critic layer
  wgan-gp  DCGANGenerator + WGANCritic (or the standard CNN, without spectral norm), gradient
           penalty 10 on random interpolates, Adam 1e-4 (0.0, 0.9), 5 critic steps (each on a fresh
           real batch and noise)
The samples are the raw generator's, in eval mode, (G(z) + 1) / 2 clamped to [0, 1], as uint8.

The README's earlier PyTorch rows were run with `--init pytorch` (then the default).
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


class StandardCNNCritic(nn.Module):
    """Miyato et al.'s standard-CNN critic for 28x28x1: 3x3/1 ch, 4x4/2 ch, 3x3/1 2ch, 4x4/2 2ch,
    3x3/1 4ch, 4x4/2 4ch, 3x3/1 8ch (padding 1; 28 -> 14 -> 7 -> 3), LeakyReLU 0.1, linear to one
    score; spectral_norm on every layer unless spectral_norm=False. The toolkit's StandardCNNCritic."""

    names = ["c0_0", "c0_1", "c1_0", "c1_1", "c2_0", "c2_1", "c3_0"]

    def __init__(self, ch=64, spectral_norm=True):
        super().__init__()
        wrap = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
        widths = [ch, ch, 2 * ch, 2 * ch, 4 * ch, 4 * ch, 8 * ch]
        inputs = 1
        for i, (name, width) in enumerate(zip(self.names, widths)):
            down = i % 2 == 1
            setattr(self, name, wrap(nn.Conv2d(inputs, width, 4 if down else 3, 2 if down else 1, 1)))
            inputs = width
        self.l4 = wrap(nn.Linear(inputs * 9, 1))

    def forward(self, x):
        h = x
        for name in self.names:
            h = F.leaky_relu(getattr(self, name)(h), 0.1)
        return self.l4(h.flatten(1)).view(-1)


class StandardCNNGenerator(nn.Module):
    """Miyato et al.'s standard-CNN generator adapted to 28x28x1: linear z -> 4ch x 7 x 7, BatchNorm,
    ReLU; two 4x4 stride-2 transposed convolutions (2ch, ch) with BatchNorm and ReLU; a 3x3
    convolution to one channel and tanh. The toolkit's StandardCNNGenerator."""

    def __init__(self, z_dim=128, ch=64):
        super().__init__()
        self.width = 4 * ch
        self.l0 = nn.Linear(z_dim, 4 * ch * 49)
        self.bn0 = nn.BatchNorm2d(4 * ch)
        self.dc1 = nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1)
        self.bn1 = nn.BatchNorm2d(2 * ch)
        self.dc2 = nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1)
        self.bn2 = nn.BatchNorm2d(ch)
        self.c3 = nn.Conv2d(ch, 1, 3, 1, 1)

    def forward(self, z):
        h = F.relu(self.bn0(self.l0(z).view(z.shape[0], self.width, 7, 7)))
        h = F.relu(self.bn1(self.dc1(h)))
        h = F.relu(self.bn2(self.dc2(h)))
        return torch.tanh(self.c3(h))


class ResNetCriticBlock(nn.Module):
    """A residual block of the ResNet critic (the toolkit's ResNetCriticBlock): the first block is
    conv3x3, ReLU, conv3x3, avg-pool 2 with shortcut avg-pool then conv1x1; the others ReLU, conv3x3,
    ReLU, conv3x3 (avg-pool when down) with shortcut conv1x1 (then avg-pool) or the identity."""

    def __init__(self, inputs, outputs, first, down, wrap):
        super().__init__()
        self.first, self.down = first, down
        self.conv1 = wrap(nn.Conv2d(inputs, outputs, 3, 1, 1))
        self.conv2 = wrap(nn.Conv2d(outputs, outputs, 3, 1, 1))
        self.shortcut = wrap(nn.Conv2d(inputs, outputs, 1)) if down or inputs != outputs else None

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.shortcut is not None:
            s = self.shortcut(F.avg_pool2d(x, 2)) if self.first else self.shortcut(x)
            if self.down and not self.first:
                s = F.avg_pool2d(s, 2)
        return h + s


class ResNetCritic(nn.Module):
    """Miyato et al.'s ResNet critic adapted to 28x28x1 (the toolkit's ResNetCritic): blocks down to
    14 and 7, two more at 7x7, ReLU, sum over positions, linear to one score."""

    def __init__(self, width=128, spectral_norm=True):
        super().__init__()
        wrap = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
        self.block1 = ResNetCriticBlock(1, width, True, True, wrap)
        self.block2 = ResNetCriticBlock(width, width, False, True, wrap)
        self.block3 = ResNetCriticBlock(width, width, False, False, wrap)
        self.block4 = ResNetCriticBlock(width, width, False, False, wrap)
        self.l5 = wrap(nn.Linear(width, 1))

    def forward(self, x):
        h = self.block4(self.block3(self.block2(self.block1(x))))
        return self.l5(F.relu(h).sum(dim=(2, 3))).view(-1)


class ResNetGeneratorBlock(nn.Module):
    """BatchNorm, ReLU, nearest 2x upsampling, conv3x3, BatchNorm, ReLU, conv3x3; shortcut upsampling
    then conv1x1 (the toolkit's ResNetGeneratorBlock)."""

    def __init__(self, inputs, outputs):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inputs)
        self.conv1 = nn.Conv2d(inputs, outputs, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1)
        self.shortcut = nn.Conv2d(inputs, outputs, 1)

    def forward(self, x):
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResNetGenerator(nn.Module):
    """Miyato et al.'s ResNet generator adapted to 28x28x1 (the toolkit's ResNetGenerator): linear to
    width x 7 x 7, two upsampling blocks, BatchNorm, ReLU, conv3x3 to one channel, tanh."""

    def __init__(self, z_dim=128, width=128):
        super().__init__()
        self.width = width
        self.l0 = nn.Linear(z_dim, width * 49)
        self.block1 = ResNetGeneratorBlock(width, width)
        self.block2 = ResNetGeneratorBlock(width, width)
        self.bn = nn.BatchNorm2d(width)
        self.c3 = nn.Conv2d(width, 1, 3, 1, 1)

    def forward(self, z):
        h = self.l0(z).view(z.shape[0], self.width, 7, 7)
        return torch.tanh(self.c3(F.relu(self.bn(self.block2(self.block1(h))))))


def default_networks(recipe):
    """The toolkit's default (generator, critic) of a recipe: the reference networks."""
    return ("dcgan", "reference")


def generator(name, z_dim):
    if name == "resnet":
        return ResNetGenerator(z_dim)
    return StandardCNNGenerator(z_dim) if name == "sn-cnn" else DCGANGenerator()


def critic(recipe, name="reference"):
    if recipe == "dcgan":
        return DCGANDiscriminator()
    if recipe == "dcgan-nobn":
        d = DCGANDiscriminator()
        d.net[3] = nn.Identity()
        return d
    if name == "sn-cnn":
        return StandardCNNCritic(spectral_norm=recipe == "sngan")
    if name == "resnet":
        return ResNetCritic(spectral_norm=recipe == "sngan")
    c = WGANCritic()
    if recipe == "sngan":
        for i in (0, 2, 4):
            c.net[i] = nn.utils.spectral_norm(c.net[i])
    return c


def dcgan_init(module):
    """Radford et al.'s initialisation, as the toolkit's `--init-scheme dcgan`: convolution weights from
    N(0, 0.02) (the standard-CNN and ResNet networks' linear weights too), BatchNorm scales from N(1, 0.02) and
    shifts 0; biases keep their values."""
    own = (StandardCNNGenerator, StandardCNNCritic, ResNetGenerator, ResNetCritic)
    ranks = (2, 4) if isinstance(module, own) else (4,)
    for name, p in module.named_parameters():
        if p.dim() in ranks and (name.endswith("weight") or name.endswith("weight_orig")):
            nn.init.normal_(p, 0.0, 0.02)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def hinge_d(s_real, s_fake):
    return F.relu(1 - s_real).mean() + F.relu(1 + s_fake).mean()


def fixtures(out, seed=0, batch=4, z_dim=16, ch=8):
    """Parity fixtures of the standard-CNN (width ch) and ResNet (width 2 ch) networks with latent
    z_dim, in Tests/Fixtures/gan, for NAME in sncnn and resnet: NAME_g / NAME_d_sn / NAME_d .params
    (state_dicts after Radford et al.'s initialisation, biases from N(0, 0.1)), NAME.io with the
    inputs (z, real, alpha; images NCHW) and PyTorch's answers:
      fake                  G(z) in training mode (batch statistics)
      bn.running_mean/var   G's first BatchNorm after that forward
      power.LAYER.weight_u/v the spectrally normalised critic's u and v after one training-mode forward
      s_real, s_fake        its scores afterwards (eval mode: no further power iteration)
      loss_d, grad_d.*      the hinge loss and its gradients for the critic's parameters
      loss_g, grad_g.*      -mean critic(G(z)) and its gradients for the generator's parameters
      gp, grad_x_hat, loss_gp, grad_gp.*  WGAN-GP on the critic without spectral norm: the penalty,
                            d critic / d x_hat, the critic loss with penalty weight 10, and its
                            gradients (second order through the penalty)."""
    import json
    os.makedirs(out, exist_ok=True)
    cases = {"sncnn": (lambda: StandardCNNGenerator(z_dim, ch), lambda sn: StandardCNNCritic(ch, spectral_norm=sn), "bn0"),
             "resnet": (lambda: ResNetGenerator(z_dim, 2 * ch), lambda sn: ResNetCritic(2 * ch, spectral_norm=sn), "block1.bn1")}
    for i, (name, (make_g, make_d, first_bn)) in enumerate(cases.items()):
        fixture_case(out, name, make_g, make_d, first_bn, seed + i, batch, z_dim)
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "numpy": np.__version__, "seed": seed, "batch": batch,
                   "z_dim": z_dim, "channels": ch}, f, indent=1)
        f.write("\n")
    print(f"wrote the standard-CNN and ResNet fixtures to {out}")


def fixture_case(out, name, make_g, make_d, first_bn, seed, batch, z_dim):
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    g, d_sn, d = make_g(), make_d(True), make_d(False)
    for m in (g, d_sn, d):
        dcgan_init(m)
        with torch.no_grad():  # biases away from PyTorch's tiny defaults, so that they matter
            for n, p in m.named_parameters():
                if n.endswith("bias"):
                    p.normal_(0.0, 0.1)

    def state(m):
        return {k: v.detach().clone().contiguous() for k, v in m.state_dict().items()}
    save_file(state(g), os.path.join(out, f"{name}_g.params.safetensors"))
    save_file(state(d_sn), os.path.join(out, f"{name}_d_sn.params.safetensors"))
    save_file(state(d), os.path.join(out, f"{name}_d.params.safetensors"))

    def grads(prefix, loss, module):
        params = list(module.named_parameters())
        for (n, _), grad in zip(params, torch.autograd.grad(loss, [p for _, p in params])):
            io[prefix + n] = grad
    io = {}
    z = torch.randn(batch, z_dim)
    real = torch.rand(batch, 1, 28, 28) * 2 - 1
    alpha = torch.rand(batch, 1, 1, 1)
    io.update(z=z, real=real, alpha=alpha)
    g.train()
    fake = g(z)
    bn = g.get_submodule(first_bn)
    io.update({"fake": fake.detach().clone(), "bn.running_mean": bn.running_mean.clone(), "bn.running_var": bn.running_var.clone()})
    d_sn.train()
    with torch.no_grad():
        d_sn(real)
    for k, v in d_sn.state_dict().items():
        if k.endswith("weight_u") or k.endswith("weight_v"):
            io["power." + k] = v.clone()
    d_sn.eval()
    s_real, s_fake = d_sn(real), d_sn(fake.detach())
    loss_d = hinge_d(s_real, s_fake)
    grads("grad_d.", loss_d, d_sn)
    io.update(s_real=s_real.detach(), s_fake=s_fake.detach(), loss_d=loss_d.detach().reshape(1))
    loss_g = -d_sn(fake).mean()
    grads("grad_g.", loss_g, g)
    io["loss_g"] = loss_g.detach().reshape(1)
    gp, slope = gradient_penalty(d, real, fake.detach(), alpha)
    loss_gp = d(fake.detach()).mean() - d(real).mean() + 10 * gp
    grads("grad_gp.", loss_gp, d)
    io.update(gp=gp.detach().reshape(1), grad_x_hat=slope.detach(), loss_gp=loss_gp.detach().reshape(1))
    save_file({k: v.detach().contiguous() for k, v in io.items()}, os.path.join(out, f"{name}.io.safetensors"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", choices=["dcgan", "dcgan-nobn", "sngan", "wgan-gp", "fixtures"])
    p.add_argument("--out", required=True, help="samples .npy (N x 28 x 28 uint8); for fixtures, the folder")
    p.add_argument("--steps", type=int, default=4690, help="generator steps (5 epochs of 938 batches)")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", choices=["pytorch", "dcgan"], default="dcgan")
    p.add_argument("--generator", choices=["dcgan", "sn-cnn", "resnet"], help="default: the toolkit's for the recipe")
    p.add_argument("--critic", choices=["reference", "sn-cnn", "resnet"], help="default: the toolkit's for the recipe")
    p.add_argument("--lr", type=float, help="default: 1e-4 for wgan-gp, else 2e-4 (both networks)")
    p.add_argument("--data", default=DEFAULT_TRAIN_IMAGES)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.recipe == "fixtures":
        fixtures(a.out, seed=a.seed)
        return
    torch.manual_seed(a.seed)
    data = load_images(a.data)
    feed = batches(data, 64, torch.Generator().manual_seed(a.seed))
    g_name, d_name = default_networks(a.recipe)
    g_name, d_name = a.generator or g_name, a.critic or d_name
    z_dim = 100 if g_name == "dcgan" else 128
    g, d = generator(g_name, z_dim), critic(a.recipe, d_name)
    if a.init == "dcgan":
        dcgan_init(g)
        dcgan_init(d)
    lr, betas = ((1e-4, (0.0, 0.9)) if a.recipe == "wgan-gp" else (2e-4, (0.5, 0.999)))
    lr = a.lr or lr
    print(f"{a.recipe}: generator {g_name} (z {z_dim}), critic {d_name}, init {a.init}, Adam {lr} {betas}", flush=True)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=betas)
    start = time.time()
    for step in range(1, a.steps + 1):
        if a.recipe == "wgan-gp":
            for _ in range(5):
                real = next(feed)
                with torch.no_grad():
                    fake = g(torch.randn(len(real), z_dim))
                gp, _ = gradient_penalty(d, real, fake, torch.rand(len(real), 1, 1, 1))
                loss_d = d(fake).mean() - d(real).mean() + 10 * gp
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
            loss_g = -d(g(torch.randn(64, z_dim))).mean()
        else:
            real = next(feed)
            fake = g(torch.randn(len(real), z_dim))
            s_real, s_fake = d(real), d(fake.detach())
            if a.recipe == "sngan":
                loss_d = hinge_d(s_real, s_fake)
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
            x = g(torch.randn(min(500, a.count - i), z_dim))
            out.append(to_uint8((x + 1) / 2))
    np.save(a.out, np.concatenate(out))
    print(f"wrote {a.out}: {a.count} samples, training {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
