#!/usr/bin/env python3
"""Converts a torchvision AlexNet or VGG19 state dict (.pth: your own trained weights) to
safetensors for percept's feature networks.

    pip install torch torchvision safetensors numpy
    python3 scripts/convert_torchvision.py --arch alexnet my_alexnet.pth weights/alexnet/model.safetensors
    python3 scripts/convert_torchvision.py --arch vgg19 vgg19.pth out.safetensors --dtype f32

Keys stay torchvision's (`features.0.weight`, `features.0.bias`, ..., `classifier.1.weight`,
`classifier.6.bias`; the numbers are indices into torchvision's nn.Sequential, so ReLU,
MaxPool and Dropout slots have none); layouts stay PyTorch's: conv weights [out, in, kh, kw],
linear weights [out, in] (classifier.0/1 take the 6x6 / 7x7 pooled features flattened in
C, H, W order). Accepted inputs: a plain state dict, a checkpoint holding one under
"state_dict" or "model", and keys prefixed "module." (DataParallel), which is stripped.

Checks before writing: the keys and shapes match torchvision's model exactly (strict
load_state_dict) and every value is finite in the output dtype. After writing: the file loads
back into torchvision's model, and on a deterministic random 224x224 input the logits of the
converted weights are compared with the original's (exact for f32; for f16 the relative error
is printed and must stay under --f16-tolerance).

No weights are downloaded: torchvision's model is built with weights=None.
"""
import argparse
import sys

import torch
from safetensors.torch import load_file, save_file

ARCHS = ("alexnet", "vgg19")


def read_state(path):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        for k in ("state_dict", "model"):
            if k in obj and isinstance(obj[k], dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict):
        sys.exit(f"{path}: not a state dict (got {type(obj).__name__})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items() if torch.is_tensor(v)}


def build(arch):
    import torchvision
    return getattr(torchvision.models, arch)(weights=None).eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="state dict .pth (torch.save(model.state_dict(), ...))")
    ap.add_argument("output", help="safetensors file to write")
    ap.add_argument("--arch", choices=ARCHS, required=True)
    ap.add_argument("--dtype", choices=("f16", "f32"), default="f16", help="stored dtype (default f16)")
    ap.add_argument("--f16-tolerance", type=float, default=2e-2,
                    help="max |logit diff| / max |logit| allowed for f16 (default 2e-2)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    state = read_state(args.input)
    model = build(args.arch)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        sys.exit(f"keys do not match torchvision's {args.arch}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            sys.exit(f"{k}: shape {tuple(state[k].shape)}, torchvision's {args.arch} has {tuple(v.shape)}")
    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    out = {}
    for k in expected:  # state-dict order
        t = state[k].detach().to(dtype).contiguous()
        if not torch.isfinite(t).all():
            sys.exit(f"{k}: not finite in {args.dtype} (values beyond +-65504?)")
        out[k] = t
    save_file(out, args.output, metadata={"arch": args.arch, "source": "torchvision layout", "dtype": args.dtype})

    # Load back and compare.
    back = load_file(args.output)
    ref = build(args.arch)
    ref.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    conv = build(args.arch)
    conv.load_state_dict({k: v.float() for k, v in back.items()}, strict=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        a, b = ref(x), conv(x)
    err = ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item()
    n = sum(v.numel() for v in out.values())
    print(f"{args.arch}: {len(out)} tensors, {n} values, {args.dtype} -> {args.output}; "
          f"logits max |diff| / max |logit| = {err:.2e}")
    if args.dtype == "f32" and err != 0:
        sys.exit("f32 round trip is not exact")
    if args.dtype == "f16" and err > args.f16_tolerance:
        sys.exit(f"f16 error {err:.2e} above --f16-tolerance {args.f16_tolerance}")


if __name__ == "__main__":
    main()
