"""PyTorch twins of the toolkit's reference models (tooling only: the toolkit never runs Python).

Each module has exactly the state_dict names that the toolkit's safetensors loader reads, so a file
written from one of these is what a PyTorch user hands over, and what the parity fixtures hold.

    MLPVAE              784-400-(20, 20) encoder, 20-400-784 decoder with Bernoulli logits
    DCGANGenerator      z [B,100] -> [B,1,28,28] in [-1, 1]: transposed convolutions and BatchNorm
    DCGANDiscriminator  [B,1,28,28] -> [B] logits, BatchNorm on its middle layer
    WGANCritic          [B,1,28,28] -> [B] scores, no normalisation (for the gradient penalty)
    UNet                the DDPM noise predictor: [B,C,28,28], t [B] (int), y [B] -> [B,C,28,28]
    Classifier          the evaluator's CNN: 128 penultimate features (FID) and 10 logits (IS)
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLPVAE(nn.Module):
    """Kingma & Welling's MLP VAE; `decode` returns logits of Bernoulli pixels, [B,784]."""

    def __init__(self, pixels=784, hidden=400, latent=20):
        super().__init__()
        self.fc1 = nn.Linear(pixels, hidden)
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, pixels)
        self.z_dim = latent

    def encode(self, x):
        hidden = F.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc_mu(hidden), self.fc_logvar(hidden)

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def negative_elbo(self, x, eps=None):
        """(BCE-with-logits summed + KL summed) / batch, with the reparameterised z = mu + sigma eps."""
        mu, logvar = self.encode(x)
        if eps is None:
            eps = torch.randn_like(mu)
        logits = self.decode(mu + (0.5 * logvar).exp() * eps)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x.reshape(x.shape[0], -1), reduction="sum")
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum()
        return (reconstruction + kl) / x.shape[0], (mu, logvar, logits)


def _generator_layers(z_dim, width):
    up = lambda cin, cout, k, s, p: nn.ConvTranspose2d(cin, cout, k, s, p, bias=False)
    return [up(z_dim, 4 * width, 7, 1, 0), nn.BatchNorm2d(4 * width), nn.ReLU(inplace=True),  # 1 -> 7
            up(4 * width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),  # 7 -> 14
            up(2 * width, 1, 4, 2, 1), nn.Tanh()]  # 14 -> 28


class DCGANGenerator(nn.Module):
    """Radford et al.'s generator at 28x28: parameters `net.{0,1,3,4,6}.*`."""

    def __init__(self, z_dim=100, width=64):
        super().__init__()
        self.net = nn.Sequential(*_generator_layers(z_dim, width))
        self.z_dim = z_dim

    def forward(self, z):
        return self.net(z.reshape(z.shape[0], self.z_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """28 -> 14 -> 7 -> 1 logit; parameters `net.{0,2,3,5}.*` (BatchNorm at net.3)."""

    def __init__(self, width=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 1, 7, 1, 0, bias=False))

    def forward(self, x):
        return self.net(x).flatten()


class WGANCritic(nn.Module):
    """The DCGAN discriminator's shape with biases and without BatchNorm: `net.{0,2,4}.*`."""

    def __init__(self, width=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 1, 7, 1, 0))

    def forward(self, x):
        return self.net(x).flatten()


def gradient_penalty(critic, real, fake, alpha):
    """Gulrajani et al.'s penalty: mean of (||d critic / d x_hat||_2 - 1)^2, x_hat = alpha real + (1 - alpha) fake.

    Returns the penalty and d(sum of critic(x_hat)) / d x_hat, built with create_graph so the penalty
    can be differentiated again.
    """
    x_hat = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    (slope,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = slope.reshape(slope.shape[0], -1).norm(dim=1)
    return (norms - 1).square().mean(), slope


def sinusoidal_embedding(t, dim, dtype=torch.float32):
    """[B] timesteps -> [B, dim]: sines then cosines of t exp(-ln(10000) i / half), i < half = dim / 2."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=dtype) / half)
    angles = t.to(dtype)[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added between, and a 1x1 skip when widths differ."""

    def __init__(self, cin, cout, tdim, groups=8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x))) + self.temb(F.silu(temb)).unsqueeze(-1).unsqueeze(-1)
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SelfAttention(nn.Module):
    """Single-head attention over the pixels, with a residual connection."""

    def __init__(self, ch, groups=8):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(dim=1)
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # [b, query, key]
        attended = (v @ weights.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj(attended)


class UNet(nn.Module):
    """28 -> 14 -> 7 and back, attention at 7x7, skips by concatenation.

    `class_emb` has num_classes + 1 rows: the last one is the null label of classifier-free guidance.
    Parameter names: time_mlp.{0,2}, class_emb, conv_in, down.I.J, mid1, mid_attn, mid2, up.I.J,
    norm_out, conv_out; down.I and up.I are lists of [ResBlock, SelfAttention?], [Conv2d] (downsample)
    or [Upsample, Conv2d].
    """

    def __init__(self, in_ch=1, ch=64, mult=(1, 2, 2), num_res=2, num_classes=0, groups=8):
        super().__init__()
        tdim, deepest = 4 * ch, len(mult) - 1
        self.ch = ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.class_emb = nn.Embedding(num_classes + 1, tdim) if num_classes else None
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)

        def block(cin, cout, level):
            layers = [ResBlock(cin, cout, tdim, groups)]
            if level == deepest:
                layers.append(SelfAttention(cout, groups))
            return nn.ModuleList(layers)

        self.down, skips, width = nn.ModuleList(), [ch], ch
        for level, m in enumerate(mult):
            for _ in range(num_res):
                self.down.append(block(width, ch * m, level))
                width = ch * m
                skips.append(width)
            if level < deepest:
                self.down.append(nn.ModuleList([nn.Conv2d(width, width, 3, stride=2, padding=1)]))
                skips.append(width)
        self.mid1 = ResBlock(width, width, tdim, groups)
        self.mid_attn = SelfAttention(width, groups)
        self.mid2 = ResBlock(width, width, tdim, groups)
        self.up = nn.ModuleList()
        for level in range(deepest, -1, -1):
            for _ in range(num_res + 1):
                self.up.append(block(width + skips.pop(), ch * mult[level], level))
                width = ch * mult[level]
            if level > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(width, width, 3, padding=1)]))
        self.norm_out = nn.GroupNorm(groups, width)
        self.conv_out = nn.Conv2d(width, in_ch, 3, padding=1)

    @staticmethod
    def _run(layers, h, temb):
        if isinstance(layers[0], ResBlock):
            h = layers[0](h, temb)
            return layers[1](h) if len(layers) > 1 else h
        for layer in layers:
            h = layer(h)
        return h

    def forward(self, x, t, y=None):
        temb = self.time_mlp(sinusoidal_embedding(t, self.ch, self.conv_in.weight.dtype))
        if self.class_emb is not None:
            temb = temb + self.class_emb(y)
        h = self.conv_in(x)
        skips = [h]
        for layers in self.down:
            h = self._run(layers, h, temb)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for layers in self.up:
            if isinstance(layers[0], ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(layers, h, temb)
        return self.conv_out(F.silu(self.norm_out(h)))


def linear_schedule(steps=1000, beta_start=1e-4, beta_end=0.02, dtype=torch.float32):
    """DDPM's linear betas; returns (betas, alphas, cumulative products of alphas), each [steps]."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=dtype)
    alphas = 1 - betas
    return betas, alphas, torch.cumprod(alphas, dim=0)


def noise_prediction_loss(model, x0, abar, y=None, generator=None):
    """DDPM's simple loss: MSE between eps and model(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, y)."""
    t = torch.randint(0, abar.shape[0], (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    a = abar[t].reshape(-1, 1, 1, 1)
    return F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, y), eps)


class Classifier(nn.Module):
    """Three conv-ReLU-maxpool stages (28 -> 14 -> 7 -> 3), fc1 to 128 features, fc2 to 10 logits."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc1 = nn.Linear(128 * 3 * 3, 128)
        self.fc2 = nn.Linear(128, 10)

    def features(self, x):
        for conv in (self.conv1, self.conv2, self.conv3):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x):
        return self.fc2(self.features(x))
