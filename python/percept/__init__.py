"""percept from Python: reconstruct seen images from fMRI voxels with the percept Rust library.

Arrays in and out are numpy arrays (float32 or float64, C or Fortran order in; float32 out).
Long calls release the GIL and take an optional ``progress(stage, done, total)`` callable
(``total`` is 0 while unknown). Library errors raise :class:`PerceptError` with the message
the ``percept`` command line prints; malformed arguments raise ``ValueError``/``TypeError``.

>>> import percept
>>> s = percept.simulate(size=64, early=500, higher=200, shapes=40, letters=40, crops=2)
>>> z = percept.encode(s["train"]["images"][s["train"]["shown"]])   # (n, 4, 8, 8)
>>> dec = percept.fit(s["train"]["voxels"]["early_visual"], z, cv=5)
>>> images = percept.reconstruct(dec, s["test"]["voxels"]["early_visual"])
"""

from ._native import (
    Decoder,
    PerceptError,
    decode,
    embed_text,
    encode,
    evaluate,
    fit,
    load_image,
    reconstruct,
    save_image,
    shipped,
    simulate,
)

__all__ = [
    "Decoder",
    "PerceptError",
    "decode",
    "embed_text",
    "encode",
    "evaluate",
    "fit",
    "load_image",
    "reconstruct",
    "save_image",
    "shipped",
    "simulate",
]
