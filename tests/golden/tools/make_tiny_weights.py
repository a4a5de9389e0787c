"""Rebuilds (or checks) the tiny random weights of tests/golden: every pipeline case's `model/{text_encoder,unet,vae}`
and the text-tower fixture's `text_encoder/text_encoder`.

The recipe, recovered from the committed files (tests/golden/README.md says only "random (seeded), scaled so
activations stay O(1)"):
  * One `torch.manual_seed(seed)` per component, then one `torch.randn(shape)` per parameter, in the order of
    `model.named_parameters()` of the component built from its committed config:
      - nn.Embedding weights (CLIP token and position embeddings, the upscaler's class embedding): randn;
      - GroupNorm / LayerNorm weights: 1 + 0.1 * randn;
      - other weights (linear, conv): randn * fan_in ** -0.5, where fan_in is the size of one output row;
      - every bias: 0.05 * randn.
  * Seeds: the text tower of the pipeline cases 777 (all six cases share it), the text-tower fixture 9001, and for
    the k-th case of CASES (k = 1..6) the UNet 1000 k + 1 and the VAE 1000 k + 2.
  * Then a calibration that keeps the tiny models' activations O(1) (CALIBRATION_FILE, one entry per case):
      - UNet: every cross-attention output projection (`attn2.to_out.0.weight`) times one factor, which sets how much
        the prompt moves the UNet output; `conv_out` (weight and bias) times one factor, which makes the output's std
        about 1;
      - VAE: `quant_conv`'s posterior-mean rows (weight and bias) times one factor, so that the scaled latents' std is
        about 1; its log-variance rows' weights times one factor and their biases set near -4 (a posterior std of
        about 0.14, as in the real VAE); `decoder.conv_out`'s weight times one factor and its bias set, so that the
        decoded image sits in [-1, 1].
    The probes those factors were measured on are not recorded, so the factors are recorded instead: `--fit` derives
    them from the committed weights by least squares (float64) and writes CALIBRATION_FILE; the default mode and
    `--write` read it.

The single-file checkpoints (`<case>/single_file.safetensors`, `text_encoder/single_file.safetensors`) hold the same
values under ldm names (the text tower's q/k/v stacked into `in_proj_*`). `--write` rebuilds them from the fresh
weights: which component tensor fills which ldm tensor is found by matching the committed files' values (every tensor
is its own random draw). What the components do not hold is kept as committed: the ldm schedule buffers, and the unused
24th text block, `text_projection` and `logit_scale`, whose draw is not recoverable (no loader reads their values).

What reproduces exactly: every tensor outside the calibration, bit for bit (the draw and the scaling rules above are
exact in float32). The calibrated tensors come out within a few units in the last place of the committed ones: they
were scaled in more than one rounding step, which one recorded factor cannot replay. Neither the weights' use nor any
golden output depends on that (the pipeline fixtures are regenerated from whatever weights `model/` holds, by
make_pipeline_cases.py).

Modes:
  (default) rebuild every component in memory and compare it with the committed file: exact tensors, and the largest
            distance in units in the last place (ulp) of each calibrated tensor. Exit code 1 when an uncalibrated
            tensor differs or a calibrated one is more than MAX_CALIBRATED_ULP away.
            It also rebuilds every single-file checkpoint from the committed components and compares it with the
            committed file (it must be identical).
  --write   write the weight files and single-file checkpoints anew (configs, tokenizers and ldm configs are kept;
            rerun make_pipeline_cases.py --write and make_text_encoder_case.py --write afterwards).
  --fit     derive the calibration factors from the committed weights and write CALIBRATION_FILE.

Run: REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_tiny_weights.py [--write | --fit]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: F401,E402  (puts the pinned sources first on sys.path)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402

GOLDEN = golden_io.GOLDEN
CASES = ["txt2img_v", "txt2img_eps_dpmpp", "img2img", "inpaint", "depth2img", "upscale_x4"]
CALIBRATION_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_weights_calibration.json")
MAX_CALIBRATED_ULP = 4
PIPELINE_TEXT_SEED = 777
TEXT_FIXTURE_SEED = 9001
WEIGHT_FILES = {"text_encoder": "model.safetensors", "unet": "diffusion_pytorch_model.safetensors",
                "vae": "diffusion_pytorch_model.safetensors"}


def components():
    """(relative folder, kind, seed, case or None) of every component this tool rebuilds."""
    yield "text_encoder/text_encoder", "text_encoder", TEXT_FIXTURE_SEED, None
    for k, case in enumerate(CASES, start=1):
        yield f"{case}/model/text_encoder", "text_encoder", PIPELINE_TEXT_SEED, case
        yield f"{case}/model/unet", "unet", 1000 * k + 1, case
        yield f"{case}/model/vae", "vae", 1000 * k + 2, case


def build(kind, folder):
    """The component's module from its committed config (its initial values are all drawn over)."""
    if kind == "text_encoder":
        return transformers.CLIPTextModel(transformers.CLIPTextConfig.from_pretrained(folder))
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    cls = diffusers.UNet2DConditionModel if kind == "unet" else diffusers.AutoencoderKL
    return cls.from_config(config)


def draw(module, seed):
    """The seeded draw: one randn per parameter, in named_parameters order, scaled by the parameter's role."""
    torch.manual_seed(seed)
    weights = {}
    for module_name, owner in module.named_modules():
        for name, parameter in owner.named_parameters(recurse=False):
            key = f"{module_name}.{name}" if module_name else name
            r = torch.randn(parameter.shape)
            if isinstance(owner, torch.nn.Embedding):
                weights[key] = r
            elif isinstance(owner, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and name == "weight":
                weights[key] = 1 + 0.1 * r
            elif name == "weight":
                weights[key] = r * parameter[0].numel() ** -0.5
            else:
                weights[key] = 0.05 * r
    return weights


def calibrated_groups(kind, weights):
    """name -> [(tensor name, row slice)] of the tensors each calibration factor scales."""
    if kind == "unet":
        return {"cross_attention_out_scale": [(k, slice(None)) for k in weights if k.endswith("attn2.to_out.0.weight")],
                "conv_out_scale": [("conv_out.weight", slice(None)), ("conv_out.bias", slice(None))]}
    if kind == "vae":
        half = weights["quant_conv.bias"].shape[0] // 2
        return {"quant_conv_mean_scale": [("quant_conv.weight", slice(0, half)), ("quant_conv.bias", slice(0, half))],
                "quant_conv_logvar_scale": [("quant_conv.weight", slice(half, None))],
                "decoder_conv_out_scale": [("decoder.conv_out.weight", slice(None))]}
    return {}


def set_biases(kind, weights):
    """name -> (tensor name, row slice) of the biases the calibration sets outright."""
    if kind != "vae":
        return {}
    half = weights["quant_conv.bias"].shape[0] // 2
    return {"quant_conv_logvar_bias": ("quant_conv.bias", slice(half, None)),
            "decoder_conv_out_bias": ("decoder.conv_out.bias", slice(None))}


def calibrate(kind, weights, table):
    for name, parts in calibrated_groups(kind, weights).items():
        for key, rows in parts:
            weights[key][rows] = weights[key][rows] * table[name]
    for name, (key, rows) in set_biases(kind, weights).items():
        weights[key][rows] = torch.tensor(table[name], dtype=torch.float32)
    return weights


def fit(kind, drawn, committed):
    """The calibration entry that maps the drawn weights closest to the committed ones (float64 least squares)."""
    entry = {}
    for name, parts in calibrated_groups(kind, drawn).items():
        num = sum(float((drawn[k][r].double() * committed[k][r].double()).sum()) for k, r in parts)
        den = sum(float((drawn[k][r].double() ** 2).sum()) for k, r in parts)
        entry[name] = num / den
    for name, (key, rows) in set_biases(kind, drawn).items():
        entry[name] = [float(v) for v in committed[key][rows]]
    return entry


def single_file_map(single, parts):
    """ldm key -> [(component, key)] whose values, concatenated, are the ldm tensor (several for in_proj_*), found by
    matching values; ldm keys no component holds are absent."""
    by_value = {}
    for component, tensors in parts.items():
        for key, tensor in tensors.items():
            by_value.setdefault(tensor.contiguous().numpy().tobytes(), []).append((component, key))
    mapping = {}
    for key, tensor in single.items():
        whole = by_value.get(tensor.contiguous().numpy().tobytes())
        if whole:
            mapping[key] = whole[:1]
        elif key.endswith(("in_proj_weight", "in_proj_bias")):
            thirds = [by_value.get(t.contiguous().numpy().tobytes()) for t in tensor.chunk(3)]
            if all(thirds):
                mapping[key] = [t[0] for t in thirds]
    return mapping


def rebuild_single_file(single, mapping, parts):
    """The ldm checkpoint with every mapped tensor taken from `parts` (same shapes as `single`)."""
    out = {}
    for key, tensor in single.items():
        if key in mapping:
            pieces = [parts[c][k].reshape(-1) for c, k in mapping[key]]
            out[key] = torch.cat(pieces).reshape(tensor.shape).clone()
        else:
            out[key] = tensor
    return out


def single_files():
    """(relative path of the ldm checkpoint, {component: relative weight file}) of every single file."""
    yield "text_encoder/single_file.safetensors", {"text_encoder": "text_encoder/text_encoder/model.safetensors"}
    for case in CASES:
        yield f"{case}/single_file.safetensors", {
            kind: f"{case}/model/{kind}/{WEIGHT_FILES[kind]}" for kind in ("text_encoder", "unet", "vae")}


def ulp_distance(a, b):
    """Largest distance in float32 units in the last place (same-sign values; both tensors float32)."""
    ia = a.contiguous().numpy().view(np.int32).astype(np.int64)
    ib = b.contiguous().numpy().view(np.int32).astype(np.int64)
    return int(np.abs(ia - ib).max())


def compare(relative, kind, fresh, committed):
    """Prints one line per component; returns False when it breaks the reproduction promise above."""
    calibrated = {k for parts in calibrated_groups(kind, fresh).values() for k, _ in parts}
    calibrated |= {k for k, _ in set_biases(kind, fresh).values()}
    if set(fresh) != set(committed):
        print(f"  DIFFERS  {relative}: names {sorted(set(fresh) ^ set(committed))[:6]}")
        return False
    exact = [k for k in fresh if torch.equal(fresh[k], committed[k])]
    wrong = [k for k in fresh if k not in calibrated and k not in exact]
    worst = max((ulp_distance(fresh[k], committed[k]) for k in calibrated), default=0)
    ok = not wrong and worst <= MAX_CALIBRATED_ULP
    print(f"  {'ok     ' if ok else 'DIFFERS'}  {relative}: {len(exact)} of {len(fresh)} tensors identical; "
          f"{len(calibrated)} calibrated, within {worst} ulp (bound {MAX_CALIBRATED_ULP})"
          + (f"; uncalibrated tensors that differ: {wrong[:4]}" if wrong else ""))
    return ok


def single_file(relative, files, fresh_weights, write):
    """Rebuilds one ldm checkpoint: from the committed components (check: must equal the committed file, which proves
    the map complete) or, with write, from the fresh ones."""
    path = os.path.join(GOLDEN, relative)
    committed = load_file(path)
    parts = {kind: load_file(os.path.join(GOLDEN, f)) for kind, f in files.items()}
    mapping = single_file_map(committed, parts)
    if write:
        golden_io.save_tensors(path, rebuild_single_file(committed, mapping, {
            kind: fresh_weights[f] for kind, f in files.items()}))
        print(f"  wrote  {relative}")
        return True
    rebuilt = rebuild_single_file(committed, mapping, parts)
    same = all(torch.equal(rebuilt[k], committed[k]) for k in committed)
    print(f"  {'ok     ' if same else 'DIFFERS'}  {relative}: {len(mapping)} of {len(committed)} tensors from the "
          f"components, {len(committed) - len(mapping)} kept (schedule buffers, unused text block)")
    return same


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="overwrite the committed weight files")
    parser.add_argument("--fit", action="store_true", help="derive the calibration table from the committed weights")
    args = parser.parse_args()
    table = {}
    if not args.fit:
        with open(CALIBRATION_FILE, encoding="utf-8") as f:
            table = json.load(f)
    bad = 0
    fresh_weights = {}
    for relative, kind, seed, case in components():
        folder = os.path.join(GOLDEN, relative)
        path = os.path.join(folder, WEIGHT_FILES[kind])
        drawn = draw(build(kind, folder), seed)
        committed = load_file(path)
        if args.fit:
            if calibrated_groups(kind, drawn):
                table.setdefault(case, {})[kind] = fit(kind, drawn, committed)
            continue
        fresh = calibrate(kind, drawn, table.get(case, {}).get(kind, {}))
        fresh_weights[os.path.join(relative, WEIGHT_FILES[kind])] = fresh
        if args.write:
            golden_io.save_tensors(path, fresh)
            print(f"  wrote  {relative}/{WEIGHT_FILES[kind]}")
        else:
            bad += not compare(relative, kind, fresh, committed)
    if not args.fit:
        bad += sum(not single_file(relative, files, fresh_weights, args.write) for relative, files in single_files())
    if args.fit:
        golden_io.write_json(CALIBRATION_FILE, table)
        print(f"wrote {os.path.relpath(CALIBRATION_FILE, golden_io.REPO)}")
        return 0
    if not args.write:
        print("every component reproduces" if bad == 0 else f"{bad} component(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
