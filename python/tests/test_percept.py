"""percept from Python, checked against the `percept` command line on the same inputs.

The CLI binary is $PERCEPT_BIN, else $CARGO_TARGET_DIR/release/percept, else
<checkout>/target/release/percept (scripts/test-python.sh builds it).
"""

import csv
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import percept

ROOT = Path(__file__).resolve().parents[2]
# A small subject: 32 px stimuli (4x4x4 latents), a few hundred voxels, a few hundred trials.
SIM = dict(seed=7, size=32, early=300, higher=120, test_photos=4, crops=3, shapes=60, letters=40, test_repeats=2)
SIM_ARGS = ["--seed", "7", "--size", "32", "--early", "300", "--higher", "120", "--test-photos", "4",
            "--crops", "3", "--shapes", "60", "--letters", "40", "--test-repeats", "2"]
PIXEL = 1 / 255


def cli_binary():
    if os.environ.get("PERCEPT_BIN"):
        return Path(os.environ["PERCEPT_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "percept"


def run(*args, ok=True):
    exe = cli_binary()
    if not exe.exists():
        pytest.skip(f"the percept CLI is not built at {exe} (cargo build -p percept --release)")
    p = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    if ok:
        assert p.returncode == 0, f"percept {' '.join(map(str, args))}: {p.stderr}"
    return p


def cli_error(*args):
    p = run(*args, ok=False)
    assert p.returncode != 0
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), p.stderr
    return line[len("error: "):]


@pytest.fixture(scope="session")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("percept")


@pytest.fixture(scope="session")
def subject(tmp):
    """The same subject from the CLI (a folder) and from Python (arrays)."""
    folder = tmp / "subject"
    run("simulate", "--out", folder, *SIM_ARGS)
    return folder, percept.simulate(**SIM)


@pytest.fixture(scope="session")
def z_fit(tmp, subject):
    """The TAESD latents of the training trials' stimuli, and a z decoder fitted by the CLI."""
    folder, s = subject
    train = s["train"]
    z = percept.encode(train["images"])[train["shown"]]
    x = train["voxels"]["early_visual"]
    np.save(tmp / "x.npy", x)
    np.save(tmp / "z.npy", z)
    out = tmp / "z.safetensors"
    run("fit", "--voxels", tmp / "x.npy", "--targets", tmp / "z.npy", "--alphas", "1,100,10000",
        "--cv", "5", "--out", out, "--force")
    return x, z, out


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_simulate_matches_cli(subject):
    folder, s = subject
    for split in ["train", "test"]:
        for region, x in s[split]["voxels"].items():
            want = np.load(folder / f"{region}_{split}.npy")
            assert x.dtype == np.float32 and x.shape == want.shape
            np.testing.assert_array_equal(x, want)
        rows = read_rows(folder / f"{split}.csv")
        trials = s[split]["trials"]
        assert len(rows) == len(trials) == len(s[split]["shown"])
        for row, t in zip(rows, trials):
            assert row["image"] == t["image"] and row["source"] == t["source"] and row["how"] == t["how"]
            assert row["captions"].split("|") == [c.replace("|", "/").replace("\n", " ") for c in t["captions"]]
        # Images: the PNGs are the arrays rounded to 8 bits.
        images = s[split]["images"]
        for k in sorted(set(s[split]["shown"].tolist()))[:5]:
            png = percept.load_image(folder / trials[list(s[split]["shown"]).index(k)]["image"])
            np.testing.assert_allclose(png, images[k], atol=PIXEL / 2 + 1e-6)
    assert s["regions"]["early_visual"] == (0, 300)


def test_fit_matches_cli_byte_for_byte(z_fit):
    x, z, path = z_fit
    dec = percept.fit(x, z, alphas=[1, 100, 10000], cv=5)
    assert dec.to_bytes() == path.read_bytes()
    assert dec.target_shape == [4, 4, 4] and dec.target == "z" and dec.region == "early_visual"
    assert dec.voxels == x.shape[1]
    assert isinstance(dec.alpha, float) and dec.alpha in (1, 100, 10000)
    assert dec.cv_scores.shape == (3,) and dec.cv_r.shape == (4, 4, 4)
    assert dec.settings["cv"] == "5-fold"
    # float64, Fortran order and a flattened target with target_shape: the same decoder.
    same = percept.fit(np.asfortranarray(x.astype(np.float64)), z.reshape(len(z), -1),
                       alphas=[1, 100, 10000], cv=5, target_shape=(4, 4, 4))
    assert same.to_bytes() == path.read_bytes()


def test_fit_options_match_cli(tmp, z_fit):
    x, z, _ = z_fit
    out = tmp / "z_loo_rank.safetensors"
    run("fit", "--voxels", tmp / "x.npy", "--targets", tmp / "z.npy", "--alphas", "10,1000", "--cv", "loo",
        "--per-target", "--rank", "8", "--region", "v1", "--out", out, "--force")
    dec = percept.fit(x, z, alphas=[10, 1000], cv="loo", per_target=True, rank=8, region="v1")
    assert dec.to_bytes() == out.read_bytes()
    assert dec.rank == 8 and dec.region == "v1" and dec.alpha.shape == (64,)


def test_decode_and_save_match_cli(tmp, subject, z_fit):
    folder, s = subject
    x, z, path = z_fit
    loaded = percept.Decoder.load(path)
    assert loaded.alpha is None and loaded.settings["trials"] == str(len(x))
    xt = s["test"]["voxels"]["early_visual"]
    out = loaded.decode(xt)
    assert out.shape == (len(xt), 4, 4, 4) and out.dtype == np.float32
    assert loaded.decode(xt[0]).shape == (4, 4, 4)
    fitted = percept.fit(x, z, alphas=[1, 100, 10000], cv=5)
    np.testing.assert_array_equal(fitted.decode(xt), out)
    # save: the same bytes, and the CLI's refusal to overwrite.
    fitted.save(tmp / "saved.safetensors", force=True)
    assert (tmp / "saved.safetensors").read_bytes() == path.read_bytes()
    with pytest.raises(percept.PerceptError) as e:
        fitted.save(tmp / "saved.safetensors")
    assert str(e.value) == f"{tmp / 'saved.safetensors'} exists; pass --force to overwrite it"


def group_repeats(trials):
    """Trials grouped by image in first-seen order (as `percept reconstruct --stimuli` does)."""
    order, groups = [], {}
    for i, t in enumerate(trials):
        if t["image"] not in groups:
            order.append(t["image"])
            groups[t["image"]] = []
        groups[t["image"]].append(i)
    return order, [groups[k] for k in order]


def average_rows(x, groups):
    out = np.zeros((len(groups), x.shape[1]), np.float32)
    for g, rows in enumerate(groups):
        for r in rows:
            out[g] += x[r] / np.float32(len(rows))
    return out


def test_reconstruct_and_evaluate_match_cli(tmp, subject, z_fit):
    folder, s = subject
    _, _, path = z_fit
    out = tmp / "recon"
    run("reconstruct", "--voxels", folder / "early_visual_test.npy", "--decoder", path,
        "--stimuli", folder / "test.csv", "--out", out, "--force")
    names, groups = group_repeats(s["test"]["trials"])
    xt = average_rows(s["test"]["voxels"]["early_visual"], groups)
    images, z = percept.reconstruct(path, xt, return_latents=True)
    np.testing.assert_allclose(z, np.load(out / "z.npy"), rtol=1e-6, atol=1e-6)
    assert images.shape == (len(names), 32, 32, 3)
    pairs = read_rows(out / "pairs.csv")
    pngs = np.stack([percept.load_image(out / p["reconstruction"]) for p in pairs])
    np.testing.assert_allclose(images, pngs, atol=PIXEL / 2 + 1e-4)
    # The same images from a Decoder object.
    np.testing.assert_array_equal(percept.reconstruct(percept.Decoder.load(path), xt), images)

    run("eval", out, "--force")
    report = (out / "eval.md").read_text()
    originals = np.stack([percept.load_image(p["original"], size=32) for p in pairs])
    scores = percept.evaluate(originals, pngs)
    m = re.search(r"\| mean \| ([-\d.]+) \| ([-\d.]+) \| ([\d.]+)% \| ([\d.]+)% \|", report)
    assert m, report
    assert f"{scores['pixcorr']:.3f}" == m.group(1)
    assert f"{scores['ssim']:.3f}" == m.group(2)
    assert f"{100 * scores['two_way_pixel']:.1f}" == m.group(3)
    assert f"{100 * scores['two_way_latent']:.1f}" == m.group(4)
    assert scores["per_image"]["ssim"].shape == (len(pairs),)


def test_reconstruct_with_sd_matches_cli(tmp):
    """The second stage on the tiny SD fixture (random decoders: plumbing, not accuracy)."""
    rng = np.random.default_rng(1)
    n = 20
    x = rng.uniform(-0.5, 0.5, (n, 12)).astype(np.float32)
    dz = percept.fit(x, rng.uniform(-0.5, 0.5, (n, 4, 4, 4)).astype(np.float32))
    dc = percept.fit(x, rng.uniform(-0.5, 0.5, (n, 77, 32)), target="c", region="higher_visual")
    u = rng.uniform(-0.5, 0.5, (77, 32)).astype(np.float32)
    dz.save(tmp / "dz.safetensors", force=True)
    dc.save(tmp / "dc.safetensors", force=True)
    np.save(tmp / "x3.npy", x[:3])
    np.save(tmp / "u.npy", u)
    model = ROOT / "tests/fixtures/sd_tiny"
    out = tmp / "rec_sd"
    run("reconstruct", "--voxels", tmp / "x3.npy", "--decoder", tmp / "dz.safetensors", "--sd", model,
        "--decoder-c", tmp / "dc.safetensors", "--voxels-c", tmp / "x3.npy", "--uncond", tmp / "u.npy",
        "--sd-size", "64", "--steps", "4", "--samples", "2", "--out", out, "--force")
    images, sd_images, z = percept.reconstruct(dz, x[:3], sd=model, decoder_c=dc, voxels_c=x[:3], uncond=u,
                                               size=64, steps=4, samples=2, return_latents=True)
    assert images.shape == (3, 32, 32, 3) and sd_images.shape == (3, 2, 64, 64, 3)
    np.testing.assert_allclose(z, np.load(out / "z.npy"), rtol=1e-6, atol=1e-6)
    for i in range(3):
        np.testing.assert_allclose(images[i], percept.load_image(out / f"trial_{i:05}.png"), atol=PIXEL / 2 + 1e-4)
        for j in range(2):
            np.testing.assert_allclose(sd_images[i, j], percept.load_image(out / f"trial_{i:05}_sd{j}.png"), atol=PIXEL + 1e-4)
    assert not np.array_equal(sd_images[0, 0], sd_images[0, 1]), "two samples with different noise"
    with pytest.raises(ValueError, match="decoder_c and voxels_c"):
        percept.reconstruct(dz, x[:3], sd=model)


def test_taesd_encode_decode_match_cli(tmp, subject):
    folder, s = subject
    image = folder / s["test"]["trials"][0]["image"]
    run("encode", image, "--size", "32", "--out", tmp / "enc.npy", "--force")
    want = np.load(tmp / "enc.npy")
    img = percept.load_image(image, size=32)
    z = percept.encode(img)
    assert z.shape == (4, 4, 4)
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-5)
    # A batch (float64, Fortran order) gives the same latent for each image.
    batch = np.asfortranarray(np.stack([img, img[::-1]]).astype(np.float64))
    zb = percept.encode(batch)
    assert zb.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(zb[0], want, rtol=1e-4, atol=1e-4)

    run("decode", tmp / "enc.npy", "--out", tmp / "dec.png", "--force")
    back = percept.decode(want)
    assert back.shape == (32, 32, 3)
    np.testing.assert_allclose(back, percept.load_image(tmp / "dec.png"), atol=PIXEL / 2 + 1e-4)
    assert percept.decode(want[None]).shape == (1, 32, 32, 3)


def tiny_sd(tmp):
    """An SD-style folder around the tiny CLIP fixture, with a tokenizer of its own."""
    sd = tmp / "sd"
    fixture = ROOT / "tests/fixtures/clip_tiny"
    (sd / "text_encoder").mkdir(parents=True, exist_ok=True)
    (sd / "tokenizer").mkdir(exist_ok=True)
    for f in ["config.json", "model.safetensors"]:
        shutil.copy(fixture / f, sd / "text_encoder" / f)
    vocab = {"a</w>": 5, "c": 6, "t</w>": 7, "<|startoftext|>": 998, "<|endoftext|>": 999}
    (sd / "tokenizer/vocab.json").write_text(json.dumps(vocab))
    (sd / "tokenizer/merges.txt").write_text("#version: 0.2\n")
    return sd


def test_embed_text_matches_cli(tmp):
    sd = tiny_sd(tmp)
    run("embed-text", "a cat", "A CAT!", "--model", sd, "--out", tmp / "c.npy", "--force")
    want = np.load(tmp / "c.npy")
    c = percept.embed_text(["a cat", "A CAT!"], model=sd)
    assert c.shape == want.shape == (77, 32)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    many = percept.embed_text([["a cat", "A CAT!"], "a cat"], model=sd)
    assert many.shape == (2, 77, 32)
    np.testing.assert_allclose(many[0], want, rtol=1e-5, atol=1e-5)
    # The shipped tokenizer's ids do not fit the tiny model: the CLI's message.
    bad = ROOT / "weights/clip-tokenizer"
    msg = cli_error("embed-text", "a cat", "--model", sd, "--tokenizer", bad, "--out", tmp / "c2.npy", "--force")
    with pytest.raises(percept.PerceptError) as e:
        percept.embed_text("a cat", model=sd, tokenizer=bad)
    assert str(e.value) == msg and "token id 49406" in msg


def test_errors_name_the_problem(tmp, z_fit):
    x, z, path = z_fit
    # Library errors: the message the CLI prints.
    missing = tmp / "missing.safetensors"
    msg = cli_error("inspect", missing)
    with pytest.raises(percept.PerceptError) as e:
        percept.Decoder.load(missing)
    assert str(e.value) == msg and "missing.safetensors" in msg
    (tmp / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    msg = cli_error("inspect", tmp / "junk.safetensors")
    with pytest.raises(percept.PerceptError) as e:
        percept.Decoder.load(tmp / "junk.safetensors")
    assert str(e.value) == msg
    bad = x.copy()
    bad[2, 5] = np.nan
    np.save(tmp / "bad.npy", bad)
    msg = cli_error("fit", "--voxels", tmp / "bad.npy", "--targets", tmp / "z.npy", "--out", tmp / "bad.safetensors", "--force")
    with pytest.raises(percept.PerceptError) as e:
        percept.fit(bad, z)
    # The CLI may catch it while reading the .npy (naming the file); both name the voxel.
    assert "voxel 5 of trial 2 is NaN" in str(e.value) and "voxel 5 of trial 2 is NaN" in msg
    # Argument errors.
    with pytest.raises(ValueError, match=r"targets: 3 rows but \d+ trials"):
        percept.fit(x, z[:3])
    with pytest.raises(ValueError, match="target_shape"):
        percept.fit(x, z, target_shape=(5, 5))
    with pytest.raises(ValueError, match="cv"):
        percept.fit(x, z, cv="many")
    with pytest.raises(ValueError, match="target"):
        percept.fit(x, z, target="q")
    dec = percept.Decoder.load(path)
    with pytest.raises(ValueError, match=f"decodes {x.shape[1]} voxels"):
        dec.decode(x[:, :10])
    with pytest.raises(ValueError, match="multiples of 8"):
        percept.encode(np.zeros((1, 30, 30, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        percept.encode(np.zeros((30, 30), np.float32))
    with pytest.raises(ValueError, match="4 channels"):
        percept.decode(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        percept.evaluate(np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)))
    with pytest.raises(TypeError, match="array of numbers"):
        percept.encode("not an image")
    with pytest.raises(percept.PerceptError, match="test photos"):
        percept.simulate(test_photos=1000)
    with pytest.raises(percept.PerceptError, match="DNN share 1.5"):
        percept.simulate(higher_dnn_share=1.5)


def test_progress_and_threads(z_fit):
    x, z, _ = z_fit
    seen = []
    percept.fit(x, z, alphas=[1, 100], progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert seen and seen[0][0] == "fitting"
    assert any(stage == "fitting" and done == total for stage, done, total in seen)

    def boom(stage, done, total):
        raise KeyError("stop")

    with pytest.raises(KeyError):
        percept.fit(x, z, alphas=[1, 100], progress=boom)
    with pytest.raises(TypeError, match="callable"):
        percept.fit(x, z, progress=3)
    # The GIL is released while fitting: another thread runs meanwhile.
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=tick)
    t.start()
    percept.fit(x, z, alphas=list(np.logspace(-2, 4, 7)), cv=5)
    stop.set()
    t.join()
    assert len(ticks) > 1


def test_simulate_writes_the_cli_folder(tmp, subject):
    folder, s = subject
    out = tmp / "subject_py"
    again = percept.simulate(out=out, force=True, **SIM)
    np.testing.assert_array_equal(again["test"]["voxels"]["higher_visual"], s["test"]["voxels"]["higher_visual"])
    for f in ["settings.txt", "train.csv", "test.csv", "early_visual_train.npy", "higher_visual_test.npy"]:
        assert (out / f).read_bytes() == (folder / f).read_bytes(), f
    msg = cli_error("simulate", "--out", out, *SIM_ARGS)
    with pytest.raises(percept.PerceptError) as e:
        percept.simulate(out=out, **SIM)
    assert str(e.value) == msg and "pass --force" in msg
