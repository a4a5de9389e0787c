"""Makes tests/golden/lora/: small rank-4 LoRA files for the golden tiny models, and diffusers' images with them merged.

What it does:
  1. builds LoRA tensors (rank 4, seeded) for the modules of the golden `txt2img_eps_dpmpp` model (UNet linear layers
     of every transformer, UNet convolutions: conv_in/conv_out, ResNet conv1/conv2/conv_shortcut, down/upsamplers; the
     text encoder's q/k/v/out_proj and fc1/fc2 in all 23 layers) and of the `inpaint` model (its 9-channel conv_in gets
     a LoRA made for a 4-channel model: down [4, 4, 3, 3]);
  2. writes them in the formats users meet (see ../lora/README.md): kohya/A1111 (`lora_unet_…`, `lora_te_…`, with and
     without `alpha`), LDM-named kohya (`lora_unet_input_blocks_…`, `lora_te_model_transformer_resblocks_…`; the LDM
     module names are found by matching the values of the golden `single_file.safetensors`, which the reference
     conversion made), diffusers/PEFT (`unet.….lora_A.weight`), the older diffusers names (`….processor.to_q_lora.down`,
     `….lora.down.weight`), and one LyCORIS conv layer with `lora_mid` (its expected delta computed here by einsum);
  3. merges W + multiplier × (alpha / rank) × up @ down into the modules in PyTorch (convolutions: up and down flattened,
     the product reshaped to the kernel; the inpainting conv_in's delta zero-padded from 4 to 9 input channels) and runs
     diffusers 0.29.2's pipeline on the merged weights for each case of CASES with the base case's call and seed;
  4. runs diffusers 0.29.2's own key conversion of a kohya file (loaders/lora_conversion_utils.py
     `_convert_non_diffusers_lora_to_diffusers`, then utils/state_dict_utils.py `convert_unet_state_dict_to_peft` for
     the UNet and `convert_state_dict_to_diffusers` + `convert_state_dict_to_peft` for the text encoder, the two steps
     `load_lora_weights` takes) and writes which module each kohya name lands on, for the C# key map to be compared with.

Run from the repository root: REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_lora_cases.py
(diffusers v0.29.2, transformers 5728b5ad, Debian's PyTorch 1.13, CPU float32; see /work/shared/reference-stack).
"""
import json
import os
import sys

sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: F401,E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers  # noqa: E402
from diffusers.utils.state_dict_utils import (  # noqa: E402
    convert_state_dict_to_diffusers, convert_state_dict_to_peft, convert_unet_state_dict_to_peft)

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(GOLDEN, "lora")
RANK = 4

# name -> (base case, [(lora file, te multiplier, unet multiplier)])
CASES = {
    "mult08": ("txt2img_eps_dpmpp", [("style_kohya.safetensors", 0.8, 0.8)]),
    "two_loras": ("txt2img_eps_dpmpp", [("style_kohya.safetensors", 0.8, 0.8), ("subject_peft.safetensors", 0.6, 0.6)]),
    "te_unet": ("txt2img_eps_dpmpp", [("style_kohya.safetensors", 0.5, 1.2)]),
    "inpaint_conv_in": ("inpaint", [("inpaint_kohya.safetensors", 1.0, 1.0)]),
}
STORED = ["prompt_embeds", "negative_prompt_embeds", "initial_latents", "final_latents", "image_uint8"]


def style_targets(unet, text_encoder):
    """Every Linear of the transformers, every 2-D convolution, and the text encoder's attention and MLP layers."""
    unet_names = [n for n, m in unet.named_modules()
                  if (isinstance(m, torch.nn.Linear) and ".attentions." in n)
                  or (isinstance(m, torch.nn.Conv2d) and "attentions" not in n)]
    te_names = [n for n, m in text_encoder.named_modules()
                if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")]
    return unet_names, te_names


def subject_targets(unet, text_encoder):
    """Attention projections only (what diffusers' own training script targets)."""
    unet_names = [n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear)
                  and n.split(".")[-1] in ("to_q", "to_k", "to_v", "0") and ".attn" in n]
    te_names = [n for n, m in text_encoder.named_modules()
                if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "out_proj")]
    return unet_names, te_names


def make_pair(module, generator, in_channels=None):
    """down [r, in(, kh, kw)], up [out, r(, 1, 1)] with a product of about 0.15 × the weight's spread."""
    weight = module.weight
    fan_in_channels = in_channels or weight.shape[1]
    kernel = tuple(weight.shape[2:])
    fan_in = fan_in_channels * int(np.prod(kernel)) if kernel else fan_in_channels
    down = torch.randn((RANK, fan_in_channels) + kernel, generator=generator) / fan_in ** 0.5
    up = torch.randn((weight.shape[0], RANK) + ((1, 1) if kernel else ()), generator=generator)
    up *= weight.std().item() * fan_in ** 0.5 * 0.15 / RANK ** 0.5
    return down.contiguous(), up.contiguous()


def delta_of(down, up, weight_shape):
    """up @ down as a weight update of weight_shape (zero-padded on the input channels where the weight is wider)."""
    product = (up.flatten(1) @ down.flatten(1)).reshape((up.shape[0], down.shape[1]) + tuple(down.shape[2:]))
    if product.shape[1] < weight_shape[1]:
        padded = torch.zeros(weight_shape, dtype=product.dtype)
        padded[:, :product.shape[1]] = product
        product = padded
    return product


def build(model_dir, targets, seed, in_channels_override=None):
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(model_dir, safety_checker=None)
    unet_names, te_names = targets(pipe.unet, pipe.text_encoder)
    generator = torch.Generator().manual_seed(seed)
    layers = {}
    for part, model, names in (("unet", pipe.unet, unet_names), ("te", pipe.text_encoder, te_names)):
        modules = dict(model.named_modules())
        for name in names:
            override = (in_channels_override or {}).get(name) if part == "unet" else None
            layers[(part, name)] = make_pair(modules[name], generator, override)
    return layers


def kohya_name(part, module):
    return ("lora_unet_" if part == "unet" else "lora_te_") + module.replace(".", "_")


def write_kohya(path, layers, alpha):
    tensors = {}
    for (part, module), (down, up) in layers.items():
        key = kohya_name(part, module)
        tensors[key + ".lora_down.weight"] = down
        tensors[key + ".lora_up.weight"] = up
        if alpha is not None:
            tensors[key + ".alpha"] = torch.tensor(float(alpha))
    save_file(tensors, path, metadata={"ss_network_dim": str(RANK), "ss_network_alpha": str(alpha)})
    return tensors


def write_peft(path, layers, old_names=False):
    tensors = {}
    for (part, module), (down, up) in layers.items():
        prefix = ("unet." if part == "unet" else "text_encoder.") + module
        if not old_names:
            tensors[prefix + ".lora_A.weight"], tensors[prefix + ".lora_B.weight"] = down, up
        elif part == "unet" and module.split(".")[-1] in ("to_q", "to_k", "to_v", "0"):
            # attention-processor names: attn1.processor.to_q_lora.down.weight, to_out.0 -> to_out_lora
            attn, leaf = module.rsplit(".", 1) if not module.endswith("to_out.0") else (module[:-len(".to_out.0")], "to_out")
            base = f"unet.{attn}.processor.{leaf}_lora"
            tensors[base + ".down.weight"], tensors[base + ".up.weight"] = down, up
        else:
            tensors[prefix + ".lora.down.weight"], tensors[prefix + ".lora.up.weight"] = down, up
    save_file(tensors, path, metadata={"format": "pt"})


def ldm_module_names(case):
    """diffusers module -> LDM module, found by equal weight values in the reference-made single-file checkpoint."""
    folder = os.path.join(GOLDEN, case)
    single = load_file(os.path.join(folder, "single_file.safetensors"))
    by_bytes = {}
    for key, value in single.items():
        if key.endswith(".weight") and value.dim() >= 2:
            by_bytes.setdefault(value.numpy().tobytes(), []).append(key)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(os.path.join(folder, "model"), safety_checker=None)
    names = {}
    for part, model, prefix, ldm_prefix in (("unet", pipe.unet, "", "model.diffusion_model."),
                                            ("te", pipe.text_encoder, "", "cond_stage_model.model.")):
        for name, module in model.named_modules():
            if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                continue
            found = [k for k in by_bytes.get(module.weight.detach().numpy().tobytes(), []) if k.startswith(ldm_prefix)]
            if len(found) == 1:
                # A1111 names text-encoder layers from cond_stage_model down: model.transformer.resblocks.N...
                names[(part, name)] = ("model." if part == "te" else "") + found[0][len(ldm_prefix):-len(".weight")]
    return names


def write_ldm(path, layers, alpha, ldm_names):
    """The same tensors under LDM names; q/k/v of the text encoder have no LDM module of their own (in_proj is fused),
    so they are left out here (the C# test compares what is present)."""
    tensors = {}
    for (part, module), (down, up) in layers.items():
        ldm = ldm_names.get((part, module))
        if ldm is None:
            continue
        key = ("lora_unet_" if part == "unet" else "lora_te_") + ldm.replace(".", "_")
        tensors[key + ".lora_down.weight"], tensors[key + ".lora_up.weight"] = down, up
        tensors[key + ".alpha"] = torch.tensor(float(alpha))
    save_file(tensors, path, metadata={"format": "pt"})
    return sorted(k[:-len(".lora_down.weight")] for k in tensors if k.endswith(".lora_down.weight"))


def merge(pipe, lora_files, layers_by_file):
    for file_name, te_mult, unet_mult in lora_files:
        layers, alpha = layers_by_file[file_name]
        for (part, module), (down, up) in layers.items():
            model = pipe.unet if part == "unet" else pipe.text_encoder
            target = dict(model.named_modules())[module]
            scale = (te_mult if part == "te" else unet_mult) * (alpha / RANK if alpha is not None else 1.0)
            with torch.no_grad():
                target.weight += scale * delta_of(down, up, target.weight.shape)


def run_case(name, layers_by_file):
    base, lora_files = CASES[name]
    folder = os.path.join(GOLDEN, base)
    case = json.load(open(os.path.join(folder, "case.json")))
    pipe_class = getattr(diffusers, case["pipeline"])
    pipe = pipe_class.from_pretrained(os.path.join(folder, "model"), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    merge(pipe, lora_files, layers_by_file)
    recorded = {}
    original_encode = pipe.encode_prompt

    def encode_prompt(*args, **kwargs):
        prompt_embeds, negative = original_encode(*args, **kwargs)
        recorded["prompt_embeds"], recorded["negative_prompt_embeds"] = prompt_embeds.clone(), negative.clone()
        return prompt_embeds, negative
    pipe.encode_prompt = encode_prompt
    original_prepare = pipe.prepare_latents

    def prepare_latents(*args, **kwargs):
        result = original_prepare(*args, **kwargs)
        recorded["initial_latents"] = (result[0] if isinstance(result, tuple) else result).clone()
        return result
    pipe.prepare_latents = prepare_latents
    kwargs = dict(case["call"])
    if case["pipeline"] != "StableDiffusionPipeline":
        kwargs.pop("height", None)
        kwargs.pop("width", None)
        kwargs["image"] = Image.open(os.path.join(folder, "input_image.png")).convert("RGB")
        kwargs["mask_image"] = Image.open(os.path.join(folder, "input_mask.png")).convert("L")
    generator = torch.Generator("cpu").manual_seed(case["seed"])
    with torch.no_grad():
        out = pipe(**kwargs, generator=generator, output_type="latent")
        latents = out.images
        recorded["final_latents"] = latents.clone()
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    image = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)[0]
    recorded["image_uint8"] = (image.numpy() * 255).round().astype(np.uint8)
    recorded["image_uint8"] = torch.from_numpy(recorded["image_uint8"])
    base_tolerances = case["tolerances"]
    entry = {
        "base_case": base, "pipeline": case["pipeline"], "call": case["call"], "seed": case["seed"],
        "loras": [{"file": f, "te": te, "unet": unet} for f, te, unet in lora_files],
        "tolerances": {k: {"max_abs": base_tolerances[k]["max_abs"], "from": f"{base}/case.json"} for k in STORED},
    }
    if case["pipeline"] == "StableDiffusionPipeline":
        entry["fp64_vs_fp32_max_abs"] = float64_twin(pipe, kwargs, recorded)
        for key, diff in entry["fp64_vs_fp32_max_abs"].items():
            # the golden rule (../README.md "Tolerances"): 50x this call's own float64 difference, floor 1e-5 x max(1, |x|max)
            own = max(50 * diff, 1e-5 * max(1.0, float(recorded[key].abs().max())))
            entry["tolerances"][key] = {"max_abs": float(f"{own:.3g}"), "from": "50 x fp64_vs_fp32_max_abs of this call"}
    # How far the LoRA moved the result from the base case (a test that ignored the LoRA would fail by this much).
    base_io = load_file(os.path.join(folder, "io.safetensors"))
    entry["distance_from_base"] = {k: float((recorded[k].double() - base_io[k].double()).abs().max()) for k in STORED
                                   if k in base_io and k not in ("initial_latents",)}
    return entry, recorded


def float64_twin(pipe, kwargs, recorded):
    """The same call in float64 from the same float32 noise: how far float32 rounding alone moves the result."""
    saved = dict(recorded)
    pipe.to(torch.float64)
    torch.set_default_dtype(torch.float64)
    try:
        with torch.no_grad():
            latents = pipe(**kwargs, latents=saved["initial_latents"].double(), output_type="latent").images
    finally:
        torch.set_default_dtype(torch.float32)
        pipe.to(torch.float32)
    twin = dict(recorded, final_latents=latents)
    recorded.update(saved)
    return {k: float((twin[k].double() - saved[k].double()).abs().max())
            for k in ("prompt_embeds", "negative_prompt_embeds", "final_latents")}


def kohya_cross_check(kohya_tensors, model_dir):
    """diffusers 0.29.2's conversion of the kohya file: kohya module name -> the module PEFT would wrap, and the
    converted names that are no module of the model (0.29.2 turns lora_unet_conv_in into `conv.in`: its '_' -> '.'
    rewrite has no rule putting conv_in / conv_out back, so PEFT would find no such layer)."""
    converted, alphas = _convert_non_diffusers_lora_to_diffusers(dict(kohya_tensors))
    unet = {k[len("unet."):]: v for k, v in converted.items() if k.startswith("unet.")}
    te = {k[len("text_encoder."):]: v for k, v in converted.items() if k.startswith("text_encoder.")}
    unet = convert_unet_state_dict_to_peft(unet)
    te = convert_state_dict_to_peft(convert_state_dict_to_diffusers(te))
    down_by_bytes = {}
    for prefix, sd in (("unet.", unet), ("text_encoder.", te)):
        for key, value in sd.items():
            if key.endswith(".lora_A.weight"):
                down_by_bytes[value.numpy().tobytes()] = prefix + key[:-len(".lora_A.weight")]
    mapping = {}
    for key, value in kohya_tensors.items():
        if key.endswith(".lora_down.weight"):
            mapping[key[:-len(".lora_down.weight")]] = down_by_bytes[value.numpy().tobytes()]
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(model_dir, safety_checker=None)
    modules = {"unet." + n for n, _ in pipe.unet.named_modules()} | {"text_encoder." + n for n, _ in pipe.text_encoder.named_modules()}
    missing = sorted(k for k, v in mapping.items() if v not in modules)
    return mapping, {k: float(v) for k, v in alphas.items()}, missing


def lora_mid_case():
    """One LyCORIS CP-decomposed conv layer: down [r, in, 1, 1], mid [r, r, 3, 3], up [out, r, 1, 1]."""
    generator = torch.Generator().manual_seed(77)
    down = torch.randn(RANK, 32, 1, 1, generator=generator) / 32 ** 0.5
    mid = torch.randn(RANK, RANK, 3, 3, generator=generator) / 6
    up = torch.randn(32, RANK, 1, 1, generator=generator) * 0.05
    delta = torch.einsum("nmkl,in,mj->ijkl", mid, up.flatten(1), down.flatten(1))
    key = "lora_unet_down_blocks_0_resnets_0_conv1"
    save_file({key + ".lora_down.weight": down, key + ".lora_mid.weight": mid, key + ".lora_up.weight": up,
               key + ".alpha": torch.tensor(2.0)}, os.path.join(OUT, "locon_mid.safetensors"), metadata={"format": "pt"})
    return {"expected_delta_locon_mid": (delta * 2.0 / RANK).contiguous()}


def main():
    os.makedirs(OUT, exist_ok=True)
    txt_model = os.path.join(GOLDEN, "txt2img_eps_dpmpp", "model")
    style = build(txt_model, style_targets, 2024)
    subject = build(txt_model, subject_targets, 2025)
    inpaint_model = os.path.join(GOLDEN, "inpaint", "model")
    inpaint = build(inpaint_model, style_targets, 2026, in_channels_override={"conv_in": 4})
    kohya_tensors = write_kohya(os.path.join(OUT, "style_kohya.safetensors"), style, alpha=2.0)
    write_peft(os.path.join(OUT, "subject_peft.safetensors"), subject)
    write_peft(os.path.join(OUT, "subject_old_diffusers.safetensors"), subject, old_names=True)
    write_kohya(os.path.join(OUT, "inpaint_kohya.safetensors"), inpaint, alpha=4.0)
    ldm_keys = write_ldm(os.path.join(OUT, "style_ldm.safetensors"), style, 2.0, ldm_module_names("txt2img_eps_dpmpp"))
    layers_by_file = {"style_kohya.safetensors": (style, 2.0), "subject_peft.safetensors": (subject, None),
                      "inpaint_kohya.safetensors": (inpaint, 4.0)}
    index = {"rank": RANK, "files": {
        "style_kohya.safetensors": {"format": "kohya", "alpha": 2.0, "base": "txt2img_eps_dpmpp", "layers": len(style)},
        "style_ldm.safetensors": {"format": "kohya (LDM names)", "alpha": 2.0, "base": "txt2img_eps_dpmpp", "layers": len(ldm_keys)},
        "subject_peft.safetensors": {"format": "peft", "alpha": None, "base": "txt2img_eps_dpmpp", "layers": len(subject)},
        "subject_old_diffusers.safetensors": {"format": "diffusers (old names)", "alpha": None, "base": "txt2img_eps_dpmpp", "layers": len(subject)},
        "inpaint_kohya.safetensors": {"format": "kohya", "alpha": 4.0, "base": "inpaint", "layers": len(inpaint)},
        "locon_mid.safetensors": {"format": "kohya (LyCORIS lora_mid)", "alpha": 2.0, "base": "txt2img_eps_dpmpp", "layers": 1},
    }, "cases": {}}
    tensors = lora_mid_case()
    for name in CASES:
        entry, recorded = run_case(name, layers_by_file)
        index["cases"][name] = entry
        for key, value in recorded.items():
            tensors[f"{name}/{key}"] = value.contiguous()
        Image.fromarray(recorded["image_uint8"].numpy()).save(os.path.join(OUT, f"{name}.png"))
        print(name, json.dumps(entry["distance_from_base"]))
    mapping, alphas, missing = kohya_cross_check(kohya_tensors, txt_model)
    index["diffusers_kohya_conversion"] = {"source": "diffusers v0.29.2 _convert_non_diffusers_lora_to_diffusers + "
                                           "convert_unet_state_dict_to_peft / convert_state_dict_to_peft",
                                           "file": "style_kohya.safetensors", "modules": mapping,
                                           "network_alphas": len(alphas), "not_in_model": missing}
    save_file(tensors, os.path.join(OUT, "io.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
