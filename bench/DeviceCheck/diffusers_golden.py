"""The reference for the device check's reduced-precision parity: how far diffusers' own image moves from its float32
image when the same golden case runs in float16 (or bfloat16) on the same device.

For each of the six golden pipeline cases (tests/golden/<case>: model/, case.json, input PNGs) it runs diffusers'
pipeline class that case.json names twice on --device, with the case's call and torch.Generator('cpu').manual_seed
(seed) each time: once in float32, once with torch_dtype=--dtype. It writes both 8-bit images as PNG under --images
(<case>.float32.png, <case>.<dtype>.png) and, in the JSON of --out, the largest and the mean absolute difference
between them in 8-bit levels. The noise is drawn in float32 in both runs (draw_noise_in_float32 says why).

The runner's reduced-precision golden check (GoldenParity.cs, --reference) then holds the engine to the reference's own
loss instead of a number picked by hand: the engine's float16 image may move from its float32 image by at most twice
what diffusers' does, plus a little (ReferenceBound in GoldenParity.cs), and it reports how far the engine's float16
image is from diffusers' float16 image.

Imports: diffusers, transformers and huggingface_hub from PYTHONPATH (the bundle's src/ on the GPU machine: the
reference stack's versions, see prepare-bundle.sh), torch, numpy and Pillow from the machine; with REF_SRC set, the
reference stack of /work/shared/reference-stack instead.
Run: python3 diffusers_golden.py --golden tests/golden --device cuda --dtype float16 --images DIR --out FILE
"""
import argparse
import json
import os
import sys
import time

if os.environ.get("REF_SRC"):
    sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
    import refenv  # noqa: F401  (puts the pinned sources first on sys.path)
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bundled_reference  # noqa: E402

    bundled_reference.prepare()
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import diffusers  # noqa: E402

CASES = ["txt2img_v", "txt2img_eps_dpmpp", "img2img", "inpaint", "depth2img", "upscale_x4"]


def log(message):
    print(message, file=sys.stderr, flush=True)


def draw_noise_in_float32():
    """diffusers' randn_tensor draws CPU noise in the pipeline's dtype, and PyTorch's CPU normal kernel gives other
    numbers in float16/bfloat16 than in float32: diffusers' half-precision image of a seed is then another picture, not
    the float32 one rounded. The engine draws every noise in float32 (as AUTOMATIC1111 does), so a seed paints the same
    picture in every precision. To measure precision alone, the reference draws in float32 too and casts, everywhere
    diffusers calls randn_tensor (pipelines, the VAE's posterior sample).
    Called after each pipeline is loaded: diffusers imports its pipeline modules lazily."""
    from diffusers.utils import torch_utils
    original = getattr(torch_utils, "randn_tensor_drawn_in_dtype", torch_utils.randn_tensor)
    torch_utils.randn_tensor_drawn_in_dtype = original

    def randn_float32(shape, generator=None, device=None, dtype=None, layout=None):
        noise = original(shape, generator=generator, device=device, dtype=torch.float32, layout=layout)
        return noise if dtype is None else noise.to(dtype)

    replace_randn_tensor(original, randn_float32)


def replace_randn_tensor(original, replacement):
    """Puts replacement in place of diffusers' randn_tensor in every module that imported it (each pipeline module
    holds its own reference, so patching torch_utils alone would miss them)."""
    for module in list(sys.modules.values()):
        if module is not None and getattr(module, "randn_tensor", None) is original:
            module.randn_tensor = replacement


def call_arguments(folder, case):
    """case.json's call with its input images: what tests/golden/tools/make_pipeline_cases.py passes too."""
    kwargs = {k: v for k, v in case["call"].items() if k not in ("lowres_height", "lowres_width")}
    if case["pipeline"] != "StableDiffusionPipeline":
        kwargs.pop("height", None)
        kwargs.pop("width", None)
        kwargs["image"] = Image.open(os.path.join(folder, "input_image.png")).convert("RGB")
    if os.path.exists(os.path.join(folder, "input_mask.png")):
        kwargs["mask_image"] = Image.open(os.path.join(folder, "input_mask.png")).convert("L")
    if os.path.exists(os.path.join(folder, "input_depth.png")):
        depth = np.array(Image.open(os.path.join(folder, "input_depth.png"))).astype(np.float32)
        kwargs["depth_map"] = torch.from_numpy(depth)[None]
    return kwargs


def run(folder, case, device, dtype):
    """One image of the case, as 8-bit RGB [H, W, 3], and whether diffusers' float output was finite."""
    optional = {"depth_estimator": None, "feature_extractor": None} if "Depth" in case["pipeline"] else {"safety_checker": None}
    pipe = getattr(diffusers, case["pipeline"]).from_pretrained(os.path.join(folder, "model"), torch_dtype=dtype,
                                                                low_cpu_mem_usage=False, **optional)  # no accelerate
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    draw_noise_in_float32()
    kwargs = call_arguments(folder, case)
    if "depth_map" in kwargs:
        kwargs["depth_map"] = kwargs["depth_map"].to(device)
    generator = torch.Generator("cpu").manual_seed(case["seed"])  # the CPU generator on every device, as the engine
    with torch.no_grad():
        image = pipe(**kwargs, generator=generator, output_type="np").images[0]
    finite = bool(np.isfinite(image).all())
    return (np.nan_to_num(image).clip(0, 1) * 255).round().astype(np.uint8), finite


def measure_case(golden, name, device, dtype):
    """The case run in float32 and in dtype on device: ({max_levels, mean_levels, finite}, float32 image, dtype image)."""
    folder = os.path.join(golden, name)
    case = json.load(open(os.path.join(folder, "case.json")))
    full, full_finite = run(folder, case, device, torch.float32)
    reduced, reduced_finite = run(folder, case, device, dtype)
    difference = np.abs(full.astype(np.int32) - reduced.astype(np.int32))
    entry = {"max_levels": int(difference.max()), "mean_levels": float(difference.mean()),
             "finite": full_finite and reduced_finite}
    return entry, full, reduced


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--golden", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--images", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("cases", nargs="*", default=CASES)
    args = parser.parse_args()
    if args.device.startswith("cuda"):  # float32 means float32, as the runner's golden check sets it
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.images, exist_ok=True)
    results = {"device": args.device, "dtype": args.dtype, "torch": torch.__version__,
               "diffusers": diffusers.__version__,
               "images": os.path.abspath(args.images), "cases": {}}
    for name in args.cases:
        start = time.perf_counter()
        entry, full, reduced = measure_case(args.golden, name, args.device, getattr(torch, args.dtype))
        entry["seconds"] = time.perf_counter() - start
        Image.fromarray(full).save(os.path.join(args.images, f"{name}.float32.png"))
        Image.fromarray(reduced).save(os.path.join(args.images, f"{name}.{args.dtype}.png"))
        results["cases"][name] = entry
        log(f"{name}: diffusers {args.dtype} vs float32 max {entry['max_levels']} levels, "
            f"mean {entry['mean_levels']:.2f}{'' if entry['finite'] else ' (not finite)'}")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    log(f"diffusers golden: {len(results['cases'])} cases")


if __name__ == "__main__":
    main()
