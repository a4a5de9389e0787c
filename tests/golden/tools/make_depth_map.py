"""Fixtures for Get-SDDepthMap (issue 15): the depth map of an image at its own size, made by the reference code.

Reference stack (see ../../../../shared/reference-stack/README.md): Debian's python3-torch 1.13, transformers at
5728b5ad (v4.40 branch point). Needs the tiny DPT-Hybrid of ../depth_estimator (tools/make_dpt_hybrid.py). Run from
the repository root:

    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_depth_map.py

For each of ../depth_estimator/input{0,1,2}.png (96x60, 41x73, 200x150) it runs transformers' own
DepthEstimationPipeline (what pipeline("depth-estimation") builds) on the tiny model and its processor, and stores in
tests/golden/depth_map/io.safetensors:
  predicted_depthN    the pipeline's predicted_depth, [1, 64, 64]
  depthN              that prediction resized to the image, as the pipeline's postprocess does it
                      (interpolate bicubic, align_corners=False), [1, H, W] float32
  pipeline_depth8_N   the pipeline's own "depth" image, uint8 (stored as int32): trunc(depth * 255 / max(depth))
  depth16_rawN        the same formula at 16 bits: trunc(depth * 65535 / max(depth)), int32 (what Get-SDDepthMap gives
                      without -Normalize). Bicubic overshoot below 0 is clipped to 0 first (numpy's cast of a negative
                      float to an unsigned type is undefined; the pipeline's 8-bit image wraps there).
  depth16_normalizedN MiDaS' write_depth at bits=2 (isl-org/MiDaS utils.py): trunc(65535 * (d - min) / (max - min)),
                      int32 (what Get-SDDepthMap -Normalize gives); a constant map is all zeros there.
case.json: the input sizes, the tolerances (float32 vs a float64 run of the same pipeline, x50, floor 1e-5 x max|x|),
and how many pixels the 8-bit pipeline image wrapped at negative overshoot (those are left out of its comparison).
"""
import json
import os
import sys

sys.path.insert(0, "/work/shared/reference-stack")
import refenv  # noqa: E402,F401  (puts the reference sources on the path)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
import types  # noqa: E402

import transformers  # noqa: E402
from transformers import DPTForDepthEstimation, DPTImageProcessor  # noqa: E402

# transformers.pipelines' __init__ imports every task's tokenizers (BertTokenizerFast needs the tokenizers package,
# which this stack lacks); the depth-estimation module itself needs none, so it is imported without that __init__.
_pipelines = types.ModuleType("transformers.pipelines")
_pipelines.__path__ = [os.path.join(os.path.dirname(transformers.__file__), "pipelines")]
sys.modules["transformers.pipelines"] = _pipelines
from transformers.pipelines.depth_estimation import DepthEstimationPipeline  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SOURCE = os.path.join(ROOT, "tests", "golden", "depth_estimator")
OUT = os.path.join(ROOT, "tests", "golden", "depth_map")


def tolerance(x32, x64):
    diff = (x32.double() - x64).abs().max().item()
    return max(50 * diff, 1e-5 * max(1.0, x32.abs().max().item())), diff


def run(pipe, image):
    """The pipeline's outputs and the resized prediction its postprocess makes (the same interpolate call)."""
    out = pipe(image)
    predicted = out["predicted_depth"]  # [1, h, w]
    resized = torch.nn.functional.interpolate(predicted.unsqueeze(1), size=image.size[::-1], mode="bicubic",
                                              align_corners=False)[:, 0]  # [1, H, W]
    return out, predicted, resized


def raw16(depth):
    d = depth.double().numpy()
    return np.clip(d * 65535 / np.max(d), 0, None).astype("uint16").astype("int32")


def midas16(depth):
    d = depth.double().numpy()
    lo, hi = d.min(), d.max()
    out = 65535 * (d - lo) / (hi - lo) if hi - lo > np.finfo("float").eps else np.zeros(d.shape)
    return out.astype("uint16").astype("int32")


def main():
    os.makedirs(OUT, exist_ok=True)
    processor = DPTImageProcessor.from_pretrained(os.path.join(SOURCE, "feature_extractor"))
    model = DPTForDepthEstimation.from_pretrained(os.path.join(SOURCE, "depth_estimator")).eval()
    model64 = DPTForDepthEstimation.from_pretrained(os.path.join(SOURCE, "depth_estimator")).double().eval()
    pipe = DepthEstimationPipeline(model=model, image_processor=processor, framework="pt", device="cpu")

    io, tolerances, inputs, wrapped = {}, {}, [], {}
    for n in range(3):
        image = Image.open(os.path.join(SOURCE, f"input{n}.png")).convert("RGB")
        inputs.append({"file": f"input{n}.png", "width": image.size[0], "height": image.size[1]})
        with torch.no_grad():
            out, predicted, resized = run(pipe, image)
            pixels64 = processor(images=image, return_tensors="pt").pixel_values.double()
            predicted64 = model64(pixel_values=pixels64).predicted_depth
            resized64 = torch.nn.functional.interpolate(predicted64.unsqueeze(1), size=image.size[::-1], mode="bicubic",
                                                        align_corners=False)[:, 0]
        io[f"predicted_depth{n}"] = predicted.float()
        io[f"depth{n}"] = resized.float()
        depth8 = np.asarray(out["depth"], dtype=np.int32)
        io[f"pipeline_depth8_{n}"] = torch.from_numpy(depth8).unsqueeze(0)
        io[f"depth16_raw{n}"] = torch.from_numpy(raw16(resized[0])).unsqueeze(0)
        io[f"depth16_normalized{n}"] = torch.from_numpy(midas16(resized[0])).unsqueeze(0)
        wrapped[f"pipeline_depth8_{n}"] = int((resized < 0).sum().item())
        for name, x32, x64 in (("predicted_depth", predicted, predicted64), ("depth", resized, resized64)):
            tol, diff = tolerance(x32, x64)
            tolerances[f"{name}{n}"] = {"max_abs": tol, "fp64_vs_fp32_max_abs": diff}
        print(n, image.size, "min", resized.min().item(), "max", resized.max().item(), "negative", wrapped[f"pipeline_depth8_{n}"])
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "io.safetensors"), metadata={"format": "pt"})
    case = {
        "generator": "tests/golden/tools/make_depth_map.py",
        "reference": "transformers 5728b5ad DepthEstimationPipeline; MiDaS utils.write_depth (bits=2) formula",
        "model": "../depth_estimator (depth_estimator/, feature_extractor/)",
        "inputs": inputs,
        "tolerances": tolerances,
        "negative_overshoot_pixels": wrapped,
    }
    with open(os.path.join(OUT, "case.json"), "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
