"""A notebook-style tour of percept from Python, small enough to run in a minute or two.

    pip install ./python && python python/examples/demo_fit.py [out_dir]

A simulated subject sees photos and drawn shapes; a ridge decoder learns to predict the TAESD
latent z of each stimulus from early visual voxels; the held-out photos are reconstructed from
their voxels alone and scored.
"""

import sys
import time
from pathlib import Path

import numpy as np

import percept


def bar(stage, done, total):
    """A progress line redrawn in place (any callable(stage, done, total) will do); a stage's
    end comes as done == total > 0."""
    end = "\n" if total and done >= total else "\r"
    print(f"  {stage:<12} {done:>5}/{total or '?':<5}", end=end, flush=True)


t0 = time.time()
out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_fit_out")
out.mkdir(parents=True, exist_ok=True)

# 1. A small simulated subject: 64 px stimuli, 1,500 early and 500 higher visual voxels.
s = percept.simulate(seed=2023, size=64, early=1500, higher=500, test_photos=8, crops=6,
                     shapes=120, letters=80, test_repeats=3, progress=bar)
train, test = s["train"], s["test"]
print(f"subject: {len(train['shown'])} training trials, {len(test['shown'])} test trials, "
      f"regions {s['regions']}")

# 2. Targets: TAESD latents of what each training trial showed, (n, 4, 8, 8).
z_stimuli = percept.encode(train["images"], progress=bar)
z = z_stimuli[train["shown"]]

# 3. Fit early visual -> z (ridge, alpha by 5-fold cross-validation).
x = train["voxels"]["early_visual"]
dec = percept.fit(x, z, alphas=np.logspace(0, 5, 6), cv=5, progress=bar)
print(f"decoder: {dec}; alpha {dec.alpha:g}; mean CV r {dec.cv_r.mean():.3f}")
dec.save(out / "z.safetensors", force=True)

# 4. Reconstruct each test photo from its voxels averaged over repeats.
shown = test["shown"]
ids = sorted(set(shown.tolist()))
xt = np.stack([test["voxels"]["early_visual"][shown == k].mean(axis=0) for k in ids])
recon = percept.reconstruct(percept.Decoder.load(out / "z.safetensors"), xt, progress=bar)
truth = test["images"][ids]

# 5. Score them (PixCorr, SSIM, two-way identification) and save a grid: originals above.
scores = percept.evaluate(truth, recon)
print("scores: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))
gap = np.ones((truth.shape[1], 4, 3), np.float32)
row = lambda imgs: np.concatenate([np.concatenate([im, gap], axis=1) for im in imgs], axis=1)
grid = np.concatenate([row(truth), np.ones((4, row(truth).shape[1], 3), np.float32), row(recon)], axis=0)
percept.save_image(out / "grid.png", grid, force=True)
print(f"wrote {out / 'z.safetensors'} and {out / 'grid.png'} in {time.time() - t0:.0f} s")
