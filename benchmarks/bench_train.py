"""Training speed (images/second) of one specialist step on this machine.

    python benchmarks/bench_train.py [--size 128] [--batch-size 16] [--steps 6] [--threads N]

Times the real step of ``training.train_specialist`` (L1-only warm-up step and the full
L1 + PatchGAN step) for the from-scratch pix2pix U-Net and the pretrained-encoder U-Net,
on random data (decoding is not what is measured). Writes benchmarks/results/train_speed.json.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import discriminators
import specialists
from training.losses import gan_loss

ARCHS = {"unet (from scratch, ngf 64)": ("unet", {}), "unet_effnet_lite0 (pretrained)": (
    "unet_effnet_lite0", {"pretrained": False})}  # fmt: skip


def step_seconds(arch: str, kwargs: dict, size: int, batch: int, steps: int, gan: bool) -> float:
    generator = specialists.create_model(arch, **kwargs).train()
    discriminator = discriminators.create_model("patchgan").train()
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    l_norm = torch.rand(batch, 1, size, size) * 2 - 1
    ab = torch.rand(batch, 2, size, size) - 0.5
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        fake = generator(l_norm)
        loss = 100 * F.l1_loss(fake, ab)
        if gan:
            logits = discriminator(torch.cat((l_norm, l_norm)), torch.cat((fake.detach(), ab)))
            fake_logits, real_logits = logits.chunk(2)
            loss_d = 0.5 * (gan_loss(fake_logits, False) + gan_loss(real_logits, True))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss = loss + gan_loss(discriminator(l_norm, fake), True)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]  # median, first step is warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "train_speed.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "threads": args.threads,
        "size": args.size,
        "batch_size": args.batch_size,
        "load_average_before": os.getloadavg()[0],
        "images_per_s": {},
    }
    for label, (arch, kwargs) in ARCHS.items():
        for phase, gan in (("l1_only", False), ("l1_gan", True)):
            seconds = step_seconds(arch, kwargs, args.size, args.batch_size, args.steps, gan)
            results["images_per_s"][f"{label} / {phase}"] = round(args.batch_size / seconds, 2)
            print(f"{label:34s} {phase:8s} {args.batch_size / seconds:6.2f} images/s", flush=True)
    results["load_average_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
