#!/usr/bin/env python3
"""Writes the parity fixtures: PyTorch's answers for the toolkit's reference models.

    scripts/torch-env                                            # once: .venv-torch with the pinned versions
    .venv-torch/bin/python scripts/make-fixtures.py --out Tests/Fixtures          # the repository's draw
    .venv-torch/bin/python scripts/make-fixtures.py --out /tmp/draw2 --seed 7 --batch 5
    FIXTURES_DIR=/tmp/draw2 scripts/test                         # another draw, same tests

Tooling only: the toolkit never runs Python. Pinned versions: scripts/requirements-torch.txt; the
versions that wrote a draw are in its versions.json. Tests/Fixtures/README.md lists every file,
tensor name and convention.

Each case draws parameters and inputs from one seeded generator, then computes its answers twice:
in float32 (what is written) and in float64 from the same draw. A draw whose float32 answers differ
from float64 by more than 1e-5 of their largest magnitude is ill-conditioned (no float32 engine could
match it tightly); the case is drawn again from the generator's next numbers, up to --redraws times,
and the script exits non-zero if it never passes. The report of each check goes to stderr.
"""
import argparse
import copy
import json
import os
import sys

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference.models import (Classifier, DCGANDiscriminator, DCGANGenerator, MLPVAE, UNet,  # noqa: E402
                                    WGANCritic, gradient_penalty, linear_schedule)

RELATIVE_TOLERANCE = 1e-5
UNET_WIDTH, NULL_LABEL, TIMESTEPS = 32, 10, 1000


class IllConditioned(Exception):
    pass


def as_dtype(value, dtype):
    """A float tensor or module converted to dtype (integer tensors and other values unchanged)."""
    if isinstance(value, torch.nn.Module):
        return copy.deepcopy(value).to(dtype)
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


def check_conditioning(case, answers32, answers64):
    """Raises IllConditioned unless every float32 answer is within 1e-5 of its float64 twin's largest magnitude."""
    worst = 0.0
    for name, a32 in answers32.items():
        a64 = answers64[name]
        if not a32.is_floating_point():
            continue
        scale = a64.abs().max().item()
        error = (a32.double() - a64.double()).abs().max().item()
        relative = error / scale if scale > 0 else error
        worst = max(worst, relative)
        if relative > RELATIVE_TOLERANCE:
            raise IllConditioned(f"{case}: {name} differs from float64 by {relative:.2e} of its largest value")
    print(f"  {case}: float32 within {worst:.1e} of float64 (bound {RELATIVE_TOLERANCE:.0e})", file=sys.stderr)


def conditioned_draw(case, draw, compute, redraws):
    """Draws (models, inputs) until compute's float32 and float64 answers agree; returns them and the float32 answers."""
    for attempt in range(redraws + 1):
        models, inputs = draw()
        fresh = lambda dtype: ({k: as_dtype(m, dtype) for k, m in models.items()},
                               {k: as_dtype(v, dtype) for k, v in inputs.items()})
        answers32 = compute(*fresh(torch.float32))
        try:
            check_conditioning(case, answers32, compute(*fresh(torch.float64)))
            return models, inputs, answers32
        except IllConditioned as refusal:
            print(f"  refused draw {attempt + 1}: {refusal}", file=sys.stderr)
    sys.exit(f"make-fixtures: {case}: no well-conditioned draw in {redraws + 1} tries; try another --seed")


def state_of(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def gradients(model, prefix):
    return {prefix + k: p.grad.detach().clone() for k, p in model.named_parameters()}


def write(out, name, tensors, notes):
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(out, f"{name}.safetensors"), metadata=notes or None)


def random_running_statistics(model, g):
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.copy_(0.1 * torch.randn(layer.running_mean.shape, generator=g))
            layer.running_var.copy_(0.5 + torch.rand(layer.running_var.shape, generator=g))


# ---------------------------------------------------------------- cases

def vae_case(out, images, g, redraws):
    def draw():
        return {"vae": MLPVAE()}, {"x": torch.rand(images, 1, 28, 28, generator=g),
                                   "eps": torch.randn(images, 20, generator=g)}

    def compute(models, inputs):
        vae = models["vae"]
        loss, (mu, logvar, logits) = vae.negative_elbo(inputs["x"], inputs["eps"])
        loss.backward()
        return dict(mu=mu, logvar=logvar, logits=logits, loss=loss.reshape(1), **gradients(vae, "grad."))

    models, inputs, answers = conditioned_draw("vae", draw, compute, redraws)
    write(out, "vae.params", state_of(models["vae"]), {})
    write(out, "vae.io", {**inputs, **answers}, {"loss": "(BCE-with-logits sum + KL sum) / batch"})


def dcgan_case(out, images, g, redraws):
    def draw():
        generator, discriminator = DCGANGenerator(), DCGANDiscriminator()
        random_running_statistics(generator, g)
        random_running_statistics(discriminator, g)
        return ({"g": generator, "d": discriminator},
                {"x": 2 * torch.rand(images, 1, 28, 28, generator=g) - 1,
                 "z": torch.randn(images, 100, generator=g)})

    def compute(models, inputs):
        generator, discriminator = models["g"], models["d"]
        x, z = inputs["x"], inputs["z"]
        generator.eval()
        with torch.no_grad():
            fake_eval = generator(z)
        generator.train()
        fake = generator(z)
        running = {"bn_after." + k: v.detach().clone() for k, v in generator.state_dict().items()
                   if k.endswith(("running_mean", "running_var"))}
        ones, zeros = torch.ones(images, dtype=x.dtype), torch.zeros(images, dtype=x.dtype)
        d_real, d_fake = discriminator(x), discriminator(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(d_real, ones) + F.binary_cross_entropy_with_logits(d_fake, zeros)
        loss_d.backward()
        grad_d = gradients(discriminator, "grad_d.")
        discriminator.zero_grad(set_to_none=True)
        loss_g = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
        loss_g.backward()
        return dict(fake=fake, fake_eval=fake_eval, d_real=d_real, d_fake=d_fake, loss_d=loss_d.reshape(1),
                    loss_g=loss_g.reshape(1), **grad_d, **gradients(generator, "grad_g."), **running)

    models, inputs, answers = conditioned_draw("dcgan", draw, compute, redraws)
    write(out, "dcgan_g.params", state_of(models["g"]), {})
    write(out, "dcgan_d.params", state_of(models["d"]), {})
    write(out, "dcgan.io", {**inputs, **answers},
          {"mode": "train-mode BatchNorm (batch statistics) except fake_eval (running statistics)",
           "loss_g": "non-saturating: BCE(D(G(z)), 1)",
           "bn_after": "generator running statistics after one train-mode forward (momentum 0.1, unbiased variance)"})


def wgan_gp_case(out, batch, g, redraws):
    def draw():
        return {"critic": WGANCritic()}, {"real": 2 * torch.rand(batch, 1, 28, 28, generator=g) - 1,
                                          "fake": 2 * torch.rand(batch, 1, 28, 28, generator=g) - 1,
                                          "alpha": torch.rand(batch, 1, 1, 1, generator=g)}

    def compute(models, inputs):
        critic = models["critic"]
        gp, slope = gradient_penalty(critic, inputs["real"], inputs["fake"], inputs["alpha"])
        loss = critic(inputs["fake"]).mean() - critic(inputs["real"]).mean() + 10 * gp
        loss.backward()
        return dict(gp=gp.reshape(1), grad_x_hat=slope, loss=loss.reshape(1), **gradients(critic, "grad."))

    models, inputs, answers = conditioned_draw("wgan_gp", draw, compute, redraws)
    write(out, "wgan_critic.params", state_of(models["critic"]), {})
    write(out, "wgan_gp.io", {**inputs, **answers}, {"loss": "critic(fake).mean() - critic(real).mean() + 10 * gp"})


def unet_case(out, batch, g, redraws):
    def draw():
        t = torch.randint(0, TIMESTEPS, (batch,), generator=g)
        t[0], t[-1] = 0, TIMESTEPS - 1  # both ends of the schedule
        y = torch.randint(0, NULL_LABEL + 1, (batch,), generator=g)
        y[-1] = NULL_LABEL
        return ({"unet": UNet(ch=UNET_WIDTH, num_classes=10)},
                {"x0": 2 * torch.rand(batch, 1, 28, 28, generator=g) - 1, "t": t, "y": y,
                 "eps": torch.randn(batch, 1, 28, 28, generator=g)})

    def compute(models, inputs):
        unet = models["unet"]
        _, _, abar = linear_schedule(TIMESTEPS, dtype=inputs["x0"].dtype)
        a = abar[inputs["t"]].reshape(-1, 1, 1, 1)
        xt = a.sqrt() * inputs["x0"] + (1 - a).sqrt() * inputs["eps"]
        eps_pred = unet(xt, inputs["t"], inputs["y"])
        loss = F.mse_loss(eps_pred, inputs["eps"])
        loss.backward()
        return dict(xt=xt, eps_pred=eps_pred, loss=loss.reshape(1), **gradients(unet, "grad."))

    models, inputs, answers = conditioned_draw("unet", draw, compute, redraws)
    write(out, "unet.params", state_of(models["unet"]), {})
    write(out, "unet.io", {**inputs, **answers}, {"loss": "mean squared error over all elements"})
    return models["unet"]


def classifier_case(out, images, g, redraws):
    def draw():
        return {"classifier": Classifier()}, {"x": 2 * torch.rand(images, 1, 28, 28, generator=g) - 1}

    def compute(models, inputs):
        with torch.no_grad():
            features = models["classifier"].features(inputs["x"])
            return dict(features=features, logits=models["classifier"].fc2(features))

    models, inputs, answers = conditioned_draw("classifier", draw, compute, redraws)
    write(out, "classifier.params", state_of(models["classifier"]), {})
    write(out, "classifier.io", {**inputs, **answers}, {})


def samplers_case(out, unet, g, redraws, ddim_steps=10):
    """DDIM (eta 0) with and without classifier-free guidance, and DDPM's ancestral sampler, in eval mode."""
    labels = torch.tensor([3, 7])

    def draw():
        return {"unet": unet}, {"xT": torch.randn(2, 1, 28, 28, generator=g),
                                "ddpm_z": torch.randn(TIMESTEPS, 2, 1, 28, 28, generator=g)}

    def compute(models, inputs):
        net = models["unet"].eval()
        betas, alphas, abar = linear_schedule(TIMESTEPS, dtype=inputs["xT"].dtype)
        null = torch.full((2,), NULL_LABEL)
        at = lambda t: torch.full((2,), t)
        stride = TIMESTEPS // ddim_steps

        def ddim(scale):
            x = inputs["xT"]
            for t in range(TIMESTEPS - stride, -1, -stride):  # 900, 800, ..., 0
                eps = net(x, at(t), labels)
                if scale is not None:
                    unconditional = net(x, at(t), null)
                    eps = unconditional + scale * (eps - unconditional)
                previous = abar[t - stride] if t >= stride else torch.ones((), dtype=x.dtype)
                x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
                x = previous.sqrt() * x0 + (1 - previous).sqrt() * eps
            return x

        def ddpm():
            x = inputs["xT"]
            for t in reversed(range(TIMESTEPS)):
                eps = net(x, at(t), labels)
                x = (x - betas[t] / (1 - abar[t]).sqrt() * eps) / alphas[t].sqrt()
                if t > 0:
                    posterior_variance = betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
                    x = x + posterior_variance.sqrt() * inputs["ddpm_z"][t]
            return x

        with torch.no_grad():
            return dict(ddim_x0=ddim(None), ddim_cfg_x0=ddim(3.0), ddpm_x0=ddpm())

    _, inputs, answers = conditioned_draw("samplers", draw, compute, redraws)
    write(out, "samplers.io", {"xT": inputs["xT"], "y": labels, "ddpm_z": inputs["ddpm_z"], **answers},
          {"schedule": "linear betas 1e-4..0.02, T=1000, t is 0-based",
           "ddim": "10 steps at t=900,800,...,0, eta=0, alpha_prev=1 after t=0, no clipping",
           "ddim_cfg": "eps = eps(x,t,null) + 3.0 * (eps(x,t,y) - eps(x,t,null)), null label 10",
           "ddpm": "t=999..0, sigma_t^2 = posterior variance, noise ddpm_z[t], none at t=0"})


OPTIMIZERS = {
    "sgd": (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), "lr 0.1, momentum 0.9, dampening 0, no nesterov"),
    "adam": (lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8),
             "lr 1e-2, betas (0.9, 0.999), eps 1e-8, bias-corrected"),
    "adamw": (lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
              "lr 1e-2, betas (0.9, 0.999), eps 1e-8, decoupled weight decay 0.1"),
    "rmsprop": (lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.99, eps=1e-8),
                "lr 1e-2, alpha 0.99, eps 1e-8 (added after the square root), no momentum"),
}


def optimizers_case(out, g, redraws, steps=3):
    """`steps` updates of each optimizer from the same start (w0 [16,8], b0 [8]) with given gradients."""
    def draw():
        inputs = {"w0": torch.randn(16, 8, generator=g), "b0": torch.randn(8, generator=g)}
        for i in range(1, steps + 1):
            inputs[f"grad_w{i}"], inputs[f"grad_b{i}"] = torch.randn(16, 8, generator=g), torch.randn(8, generator=g)
        return {}, inputs

    def compute(_, inputs):
        answers = {}
        for name, (make, _) in OPTIMIZERS.items():
            w, b = inputs["w0"].clone().requires_grad_(True), inputs["b0"].clone().requires_grad_(True)
            optimizer = make([w, b])
            for i in range(1, steps + 1):
                w.grad, b.grad = inputs[f"grad_w{i}"].clone(), inputs[f"grad_b{i}"].clone()
                optimizer.step()
                answers[f"{name}_w{i}"], answers[f"{name}_b{i}"] = w.detach().clone(), b.detach().clone()
        return answers

    _, inputs, answers = conditioned_draw("optimizers", draw, compute, redraws)
    write(out, "optimizers.io", {**inputs, **answers}, {name: note for name, (_, note) in OPTIMIZERS.items()})


def frechet_distance(a, b):
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 sqrt(S_a S_b)), float64, covariances with n - 1 (pytorch-fid's formula)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(root).all():
        offset = np.eye(s_a.shape[0]) * 1e-6
        root = scipy.linalg.sqrtm((s_a + offset) @ (s_b + offset))
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root))


def inception_score(probs, splits=10):
    """Mean over `splits` consecutive equal parts of exp(E[KL(p(y|x) || p(y))]), float64."""
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(0, keepdims=True)
        scores.append(np.exp((part * (np.log(part) - np.log(marginal))).sum(1).mean()))
    return float(np.mean(scores))


def metrics_case(out, g, redraws, count=2000, dim=64, images=1000):
    """FID and IS in float64 from float32 inputs; conditioning: the answers from the inputs before rounding to float32."""
    def draw():
        mixing = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim ** 0.5
        a = torch.randn(count, dim, generator=g, dtype=torch.float64) @ mixing
        shifted = mixing + 0.05 * torch.randn(dim, dim, generator=g, dtype=torch.float64)
        b = torch.randn(count, dim, generator=g, dtype=torch.float64) @ shifted + 0.1
        probs = torch.softmax(2 * torch.randn(images, 10, generator=g, dtype=torch.float64), dim=1)
        return {}, {"features_a": a, "features_b": b, "probs": probs}

    def compute(_, inputs):
        a, b, p = (inputs[k].double().numpy() for k in ("features_a", "features_b", "probs"))
        return {"fid": torch.tensor([frechet_distance(a, b)], dtype=torch.float64),
                "inception_score": torch.tensor([inception_score(p)], dtype=torch.float64)}

    for attempt in range(redraws + 1):
        _, exact = draw()
        rounded = {k: v.float() for k, v in exact.items()}
        answers = compute(None, rounded)
        try:
            check_conditioning("metrics", answers, compute(None, exact))
            break
        except IllConditioned as refusal:
            print(f"  refused draw {attempt + 1}: {refusal}", file=sys.stderr)
    else:
        sys.exit(f"make-fixtures: metrics: no well-conditioned draw in {redraws + 1} tries; try another --seed")
    write(out, "metrics.io", {**rounded, **answers},
          {"fid": "Frechet distance of float64 copies, covariance with n-1 (pytorch-fid's formula)",
           "inception_score": "mean over 10 consecutive equal splits of exp(E[KL(p(y|x) || p(y))])"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=4,
                        help="B for unet and wgan_gp; vae, dcgan and classifier use 2B images")
    parser.add_argument("--redraws", type=int, default=5, help="ill-conditioned draws to replace before giving up")
    args = parser.parse_args()
    if args.batch < 2:
        parser.error("--batch must be at least 2 (the unet case pins t = 0 and t = 999 on its first and last rows)")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(args.seed)
    print(f"make-fixtures: seed {args.seed}, batch {args.batch} -> {args.out}", file=sys.stderr)
    vae_case(args.out, 2 * args.batch, g, args.redraws)
    dcgan_case(args.out, 2 * args.batch, g, args.redraws)
    wgan_gp_case(args.out, args.batch, g, args.redraws)
    unet = unet_case(args.out, args.batch, g, args.redraws)
    classifier_case(args.out, 2 * args.batch, g, args.redraws)
    samplers_case(args.out, unet, g, args.redraws)
    optimizers_case(args.out, g, args.redraws)
    metrics_case(args.out, g, args.redraws)
    versions = {"torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                "seed": args.seed, "batch": args.batch}
    with open(os.path.join(args.out, "versions.json"), "w") as f:
        json.dump(versions, f)
    print(f"make-fixtures: wrote {args.out} ({versions})", file=sys.stderr)


if __name__ == "__main__":
    main()
