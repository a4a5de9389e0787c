"""Reference outputs of Pillow's resize and convert("L"), for ImagingResizeTests.

Run with Debian 12's python3-pil (Pillow 9.4.0) and python3-numpy:  /usr/bin/python3 make_resize_fixtures.py
Pillow's 8-bit resampling (coefficients, fixed point, pass order) is unchanged from 7.x to 11.x.
"""
import numpy as np
from PIL import Image

rng = np.random.default_rng(1234)
src = Image.fromarray(rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8), "RGB")
src.save("resize_source.png")
src.convert("L").save("gray_L.png")
filters = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
sizes = [(11, 9), (50, 40), (23, 7), (8, 17), (5, 3)]
for name, f in filters.items():
    for w, h in sizes:
        src.resize((w, h), resample=f).save(f"resize_{name}_{w}x{h}.png")
        src.convert("L").resize((w, h), resample=f).save(f"resize_L_{name}_{w}x{h}.png")
