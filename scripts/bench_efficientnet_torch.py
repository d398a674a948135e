#!/usr/bin/env python3
"""PyTorch CPU throughput of EfficientNet-Lite0 (reference model, f32 compute, weights from
weights/efficientnet-lite0), for comparison with percept's WGSL implementation.

    python3 scripts/bench_efficientnet_torch.py                 # 2 threads, batch 8, 224, 10 batches
    python3 scripts/bench_efficientnet_torch.py --threads 1 --iters 5

Prints images/second over the timed batches (after 2 warm-up batches) and the load average
before and after, since the number means little on a busy machine.
"""
import argparse
import os
import time

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name("efficientnet-lite0", image_size=args.size).eval()
    w = load_file(os.path.join(ROOT, "weights", "efficientnet-lite0", "model.safetensors"))
    model.load_state_dict({k: v.float() for k, v in w.items()}, strict=False)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    load0 = os.getloadavg()
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        t = time.perf_counter()
        for _ in range(args.iters):
            model(x)
        dt = time.perf_counter() - t
    n = args.batch * args.iters
    print(f"efficientnet-lite0 torch {torch.__version__} CPU, {args.threads} threads, batch {args.batch}, "
          f"{args.size}x{args.size}: {n / dt:.1f} images/s ({dt / args.iters * 1000:.0f} ms/batch); "
          f"load average {load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
