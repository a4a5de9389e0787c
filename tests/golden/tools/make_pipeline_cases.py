"""Regenerates (or checks) the six pipeline cases of tests/golden by running diffusers itself.

What it does, per case folder (txt2img_v, txt2img_eps_dpmpp, img2img, inpaint, depth2img, upscale_x4):
  1. loads `<case>/model/` with the diffusers pipeline class that case.json names (diffusers 0.29.2, transformers at
     the v4.40 branch point, Debian's PyTorch 1.13 on the CPU: the reference stack of /work/shared/reference-stack);
  2. runs case.json's `call` with `torch.Generator('cpu').manual_seed(seed)` and the case's input PNGs;
  3. records every intermediate under the names of tests/golden/README.md ("io.safetensors tensor names") by wrapping
     the pipeline's own pieces (tokenizer, encode_prompt, randn_tensor, scheduler.set_timesteps / scale_model_input /
     step / add_noise, unet.forward, vae.encode / decode, the image processor, prepare_mask_latents,
     prepare_depth_map, the upscaler's low_res_scheduler), and nothing else.

Modes:
  --check (default): compares each recorded tensor with the stored io.safetensors, against case.json's tolerances
                     (inputs, ids, noise and timesteps exactly), and prints the worst ratio per case. Exit code 1 when
                     a tensor differs beyond its tolerance or is missing.
  --write          : writes io.safetensors and expected.png anew (the weights, case.json, inputs and the single-file
                     checkpoints are kept: they are this generator's inputs).

The tiny random weights in `<case>/model/` were made once, seeded and calibrated so activations stay O(1)
(tests/golden/README.md); this tool regenerates everything downstream of them, so a change of the reference stack or of
a pipeline call can be re-run, and a fixture can be shown to be diffusers' output.

Run: REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_pipeline_cases.py [--write] [case ...]
"""
import argparse
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

golden_io.pin_blas_kernels()  # the fixtures' BLAS kernels: with them every recorded tensor matches bit for bit
sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: F401,E402  (puts the pinned sources first on sys.path)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers.utils import torch_utils  # noqa: E402

sys.path.insert(0, os.path.join(golden_io.REPO, "bench", "DeviceCheck"))
import diffusers_golden  # noqa: E402  (call_arguments: the call the GPU device check makes too)

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CASES = ["txt2img_v", "txt2img_eps_dpmpp", "img2img", "inpaint", "depth2img", "upscale_x4"]


class Recorder:
    """Collects named tensors; `stepNN_` names count scheduler.step calls (two per step for Heun/KDPM2)."""

    def __init__(self):
        self.tensors = {}
        self.step = 0
        self.noise = 0
        self.encodes = 0
        self.loop_timesteps = []

    def put(self, name, tensor):
        self.tensors[name] = tensor.detach().clone().cpu().contiguous() if torch.is_tensor(tensor) else torch.tensor(tensor)

    def prefix(self):
        return f"step{self.step:02d}_"


def wrap(obj, name, before=None, after=None):
    """Replaces obj.name by a function that calls before(*args, **kw), the original, then after(result, *args, **kw)."""
    original = getattr(obj, name)

    # functools.wraps keeps the signature visible: pipelines inspect scheduler.step's parameters to decide whether to
    # pass `generator` and `eta`, and a bare (*args, **kwargs) would silently change which RNG the step draws from.
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if before:
            before(*args, **kwargs)
        result = original(*args, **kwargs)
        if after:
            after(result, *args, **kwargs)
        return result

    setattr(obj, name, wrapper)


def instrument(pipe, rec):
    """Wraps the pipeline's pieces so every intermediate of the README's table is recorded."""
    original_randn = torch_utils.randn_tensor

    def randn(*args, **kwargs):
        out = original_randn(*args, **kwargs)
        rec.put(f"noise{rec.noise:02d}", out)
        rec.noise += 1
        return out

    diffusers_golden.replace_randn_tensor(original_randn, randn)

    def encoded(result, *args, **kwargs):
        prompt_embeds, negative = result[0], result[1]
        rec.put("prompt_embeds", prompt_embeds)
        if negative is not None:
            rec.put("negative_prompt_embeds", negative)

    wrap(pipe, "encode_prompt", after=encoded)
    tokenizer_call = pipe.tokenizer.__class__.__call__

    def tokenize(self, text, *args, **kwargs):
        out = tokenizer_call(self, text, *args, **kwargs)
        if kwargs.get("padding") == "max_length" and "input_ids" in out and torch.is_tensor(out.input_ids):
            key = "input_ids" if "input_ids" not in rec.tensors else "uncond_input_ids"
            rec.put(key, out.input_ids)
        return out

    pipe.tokenizer.__class__.__call__ = tokenize
    instrument_scheduler(pipe.scheduler, rec)
    instrument_unet(pipe.unet, rec)
    instrument_vae(pipe.vae, rec)
    instrument_task(pipe, rec)


def instrument_scheduler(scheduler, rec):
    def timesteps_set(result, *args, **kwargs):
        rec.put("scheduler_timesteps_full", scheduler.timesteps)
        if getattr(scheduler, "sigmas", None) is not None and torch.is_tensor(scheduler.sigmas):
            rec.put("scheduler_sigmas_full", scheduler.sigmas)
        rec.put("init_noise_sigma", torch.tensor(float(scheduler.init_noise_sigma), dtype=torch.float32))

    def step_before(model_output, timestep, sample, *args, **kwargs):
        if rec.step == 0:
            rec.put("initial_latents", sample)
        rec.loop_timesteps.append(timestep)
        rec.put(rec.prefix() + "noise_pred", model_output)
        rec.put(rec.prefix() + "sample_in", sample)

    def step_after(result, *args, **kwargs):
        latents = result[0] if isinstance(result, tuple) else result.prev_sample
        rec.put(rec.prefix() + "latents", latents)
        rec.put("final_latents", latents)
        rec.step += 1

    def noised(result, original, noise, timesteps):
        rec.put("add_noise_original", original)
        rec.put("add_noise_noise", noise)
        rec.put("add_noise_timestep", timesteps)
        rec.put("add_noise_output", result)

    wrap(scheduler, "set_timesteps", after=timesteps_set)
    wrap(scheduler, "step", before=step_before, after=step_after)
    wrap(scheduler, "add_noise", after=noised)


def instrument_unet(unet, rec):
    def before(sample, timestep, encoder_hidden_states, *args, **kwargs):
        rec.put(rec.prefix() + "unet_input", sample)
        rec.put(rec.prefix() + "timestep", timestep if torch.is_tensor(timestep) else torch.tensor(timestep))
        if kwargs.get("class_labels") is not None:
            rec.put(rec.prefix() + "class_labels", kwargs["class_labels"])

    def after(result, *args, **kwargs):
        rec.put(rec.prefix() + "unet_output", result[0] if isinstance(result, tuple) else result.sample)

    wrap(unet, "forward", before=before, after=after)


def instrument_vae(vae, rec):
    def encode_before(x, *args, **kwargs):
        rec.put(f"vae_encode{rec.encodes}_input", x)

    def encode_after(result, *args, **kwargs):
        dist = result[0] if isinstance(result, tuple) else result.latent_dist
        rec.put(f"vae_encode{rec.encodes}_posterior_mean", dist.mean)
        rec.put(f"vae_encode{rec.encodes}_posterior_std", dist.std)
        rec.encodes += 1

    def decode_before(z, *args, **kwargs):
        rec.put("vae_decode_input", z)

    def decode_after(result, *args, **kwargs):
        rec.put("vae_decode_output", result[0] if isinstance(result, tuple) else result.sample)

    wrap(vae, "encode", before=encode_before, after=encode_after)
    wrap(vae, "decode", before=decode_before, after=decode_after)


def instrument_task(pipe, rec):
    """The per-task intermediates: preprocessed image, mask / depth conditioning, the upscaler's low-res noise."""
    processor = getattr(pipe, "image_processor", None)
    if processor is not None:
        wrap(processor, "preprocess", after=lambda result, *a, **k: rec.tensors.setdefault("image_preprocess0_output", result.detach().clone()))
    if hasattr(pipe, "prepare_mask_latents"):
        def mask_before(mask, masked_image, *args, **kwargs):
            rec.put("mask_preprocessed", mask)
            rec.put("masked_image", masked_image)

        def mask_after(result, *args, **kwargs):
            rec.put("mask_latents", result[0])
            rec.put("masked_image_latents", result[1])

        wrap(pipe, "prepare_mask_latents", before=mask_before, after=mask_after)
    if hasattr(pipe, "prepare_depth_map"):
        def depth_before(image, depth_map, *args, **kwargs):
            if depth_map is not None:
                rec.put("input_depth_map", depth_map)

        wrap(pipe, "prepare_depth_map", before=depth_before, after=lambda r, *a, **k: rec.put("depth_map_processed", r))
    if hasattr(pipe, "low_res_scheduler"):
        def lowres(result, original, noise, timesteps):
            rec.put("lowres_add_noise_input", original)
            rec.put("lowres_noise", noise)
            rec.put("noise_level", timesteps)
            rec.put("lowres_noised_image", result)

        wrap(pipe.low_res_scheduler, "add_noise", after=lowres)


def run_case(name, model_folder=None):
    """Runs one case; `model_folder` loads the same weights from elsewhere (e.g. saved as pickled .bin files)."""
    folder = os.path.join(GOLDEN, name)
    case = json.load(open(os.path.join(folder, "case.json")))
    optional = {"depth_estimator": None, "feature_extractor": None} if "Depth" in case["pipeline"] else {"safety_checker": None}
    pipe = getattr(diffusers, case["pipeline"]).from_pretrained(model_folder or os.path.join(folder, "model"), **optional)
    pipe.set_progress_bar_config(disable=True)
    rec = Recorder()
    instrument(pipe, rec)
    kwargs = diffusers_golden.call_arguments(folder, case)
    if "image" in kwargs:
        rec.put("input_image_uint8", torch.from_numpy(np.array(kwargs["image"])))
    if "mask_image" in kwargs:
        rec.put("input_mask_uint8", torch.from_numpy(np.array(kwargs["mask_image"])))
    generator = torch.Generator("cpu").manual_seed(case["seed"])
    with torch.no_grad():
        out = pipe(**kwargs, generator=generator, output_type="np")
    image = out.images[0]
    rec.put("image_float", torch.from_numpy(image.copy()))
    rec.put("image_uint8", torch.from_numpy((image * 255).round().astype(np.uint8)))
    rec.put("timesteps", torch.stack([torch.as_tensor(t) for t in rec.loop_timesteps]))
    return case, rec.tensors


def check(name, case, tensors):
    stored = load_file(os.path.join(GOLDEN, name, "io.safetensors"))
    tolerances = case.get("tolerances", {})
    worst, worst_name, failures, compared = 0.0, "", [], 0
    for key, expected in stored.items():
        if key not in tensors:
            if key.startswith(("noise", "timesteps")) or key in ("image_float",):
                continue
            failures.append(f"{key}: not recorded")
            continue
        actual = tensors[key]
        if tuple(actual.shape) != tuple(expected.shape):
            actual = actual.reshape(expected.shape) if actual.numel() == expected.numel() else actual
        if tuple(actual.shape) != tuple(expected.shape):
            failures.append(f"{key}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}")
            continue
        diff = (actual.double() - expected.double()).abs().max().item() if expected.numel() else 0.0
        tolerance = tolerances.get(key, {}).get("max_abs", 0.0)
        compared += 1
        if diff > tolerance:
            failures.append(f"{key}: {diff:.3g} > {tolerance:.3g}")
        elif tolerance > 0 and diff / tolerance > worst:
            worst, worst_name = diff / tolerance, key
    print(f"{name}: {compared} tensors compared, worst diff/tolerance {worst:.3f} ({worst_name}), {len(failures)} failure(s)")
    for f in failures:
        print("   ", f)
    return not failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("cases", nargs="*", default=CASES)
    args = parser.parse_args()
    ok = True
    for name in args.cases:
        case, tensors = run_case(name)
        if args.write:
            save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(GOLDEN, name, "io.safetensors"),
                      metadata={"format": "pt"})
            Image.fromarray(tensors["image_uint8"].numpy()).save(os.path.join(GOLDEN, name, "expected.png"))
            print(f"{name}: wrote {len(tensors)} tensors")
        else:
            ok &= check(name, case, tensors)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
