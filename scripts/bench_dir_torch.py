#!/usr/bin/env python3
"""PyTorch CPU time of one DIR loss-and-gradient iteration, the loop percept's bench-dir times:
TAESD's decoder on latents (B, 4, s/8, s/8) -> s px images -> resized to 224 (the triangle
matrix of tests/fixtures/make_grad.py) -> EfficientNet-Lite2 (real weights) at five layers ->
the normalised feature loss -> backward to the latent.

    python3 scripts/bench_dir_torch.py                # 2 threads, batch 10, 128 px, 5 iterations

Prints seconds per iteration and per image per iteration (after one warm-up iteration).
"""
import argparse
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import make_grad  # noqa: E402  (the TAESD decoder, the resize matrix, the feature taps)

LAYERS = ["_blocks.1", "_blocks.4", "_blocks.9", "_blocks.15", "_blocks.20"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from efficientnet_lite_pytorch import EfficientNet
    from safetensors.torch import load_file
    net = EfficientNet.from_name("efficientnet-lite2", image_size=None).eval()
    w = load_file(os.path.join(ROOT, "weights", "efficientnet-lite2", "model.safetensors"))
    net.load_state_dict({k: v.float() for k, v in w.items()}, strict=False)
    for p in net.parameters():
        p.requires_grad_(False)
    dec = make_grad.taesd_decoder()
    for p in dec.parameters():
        p.requires_grad_(False)
    make_grad.LAYERS = LAYERS
    r = make_grad.triangle_matrix(args.size, 224)
    resize = lambda img: torch.einsum("oh,bchw,pw->bcop", r, img, r)
    gen = torch.Generator().manual_seed(0)
    s = args.size // 8
    with torch.no_grad():
        targets = make_grad.features(net, resize(dec(torch.randn(args.batch, 4, s, s, generator=gen))))
    inv = torch.stack([1.0 / (targets[n] ** 2).sum(1) for n in LAYERS])
    wts = inv / inv.sum(0, keepdim=True)
    z = torch.randn(args.batch, 4, s, s, generator=gen)

    def step():
        x = z.clone().requires_grad_(True)
        f = make_grad.features(net, resize(dec(x)))
        loss = sum(wts[i] * ((f[n] - targets[n]) ** 2).sum(1) for i, n in enumerate(LAYERS))
        loss.sum().backward()
        return x.grad

    load0 = os.getloadavg()
    step()
    t = time.perf_counter()
    for _ in range(args.iters):
        step()
    dt = (time.perf_counter() - t) / args.iters
    print(f"torch {torch.__version__} CPU, {args.threads} threads, batch {args.batch}, {args.size} px -> 224, "
          f"EfficientNet-Lite2 at {len(LAYERS)} layers: {dt:.2f} s per iteration, {dt / args.batch:.3f} s per image per iteration; "
          f"load average {load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
