"""Fixtures for the MiDaS DPT-Hybrid depth estimator (issue 15), made by the reference code itself.

Reference stack (see ../../../../shared/reference-stack/README.md): Debian's python3-torch 1.13, transformers at
5728b5ad (v4.40 branch point), diffusers v0.29.2. Run from the repository root:

    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_dpt_hybrid.py

Writes
  tests/golden/depth_estimator/     tiny random DPTForDepthEstimation(is_hybrid=True) in diffusers layout
                                    (depth_estimator/, feature_extractor/), three input PNGs, io.safetensors with the
                                    preprocessed pixels, every stage's hidden state and predicted_depth, case.json,
                                    single_file_depth_model.safetensors (the same weights under MiDaS/timm names,
                                    prefixed depth_model.model., as 512-depth-ema.ckpt stores them).
  tests/golden/depth2img_estimated/ one StableDiffusionDepth2ImgPipeline call with no depth map (the golden depth2img
                                    model + this estimator): model_index.json, io.safetensors, case.json, expected.png.
"""
import json
import os
import sys

sys.path.insert(0, "/work/shared/reference-stack")
import refenv  # noqa: E402,F401  (puts the reference sources on the path)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor  # noqa: E402
from transformers.models.dpt import convert_dpt_hybrid_to_pytorch as hf_convert  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
OUT = os.path.join(GOLDEN, "depth_estimator")
CASE = os.path.join(GOLDEN, "depth2img_estimated")
SEED = 1515

# Tiny DPT-Hybrid with the real structure: BiT bottleneck stages (GroupNorm(32), weight-standardised convs, SAME
# padding, stem 7x7/2 + maxpool 3x3/2), a ViT with CLS token and position embeddings, readout "project",
# reassemble factors [1, 1, 1, 0.5], fusion with residual conv units, head conv/x2/conv/ReLU/conv/ReLU.
CONFIG = dict(
    is_hybrid=True,
    hidden_size=128,  # head width 64 as in every timm ViT (a single file's config is read from its shapes)
    num_hidden_layers=4,
    num_attention_heads=2,
    intermediate_size=256,
    hidden_act="gelu",
    layer_norm_eps=1e-12,
    image_size=64,
    patch_size=16,
    qkv_bias=True,
    # DPT's rule [L/4-1, L/2-1, 3L/4-1, L-1] ([2, 5, 8, 11] for 12 layers); hybrid takes [2:] -> ViT layers 2 and 3
    backbone_out_indices=[0, 1, 2, 3],
    readout_type="project",
    reassemble_factors=[1, 1, 1, 0.5],
    neck_hidden_sizes=[128, 128, 64, 64],
    fusion_hidden_size=32,
    head_in_index=-1,
    use_batch_norm_in_fusion_residual=False,
    backbone_featmap_shape=[1, 256, 4, 4],
    neck_ignore_stages=[0, 1],
    backbone_config=dict(
        global_padding="same",
        layer_type="bottleneck",
        depths=[2, 1, 2],
        hidden_sizes=[128, 128, 256],
        embedding_size=32,
        num_groups=32,
        out_features=["stage1", "stage2", "stage3"],
        embedding_dynamic_padding=True,
    ),
)
# What stable-diffusion-2-depth's feature_extractor says, with the tiny model's image size.
PROCESSOR = dict(do_resize=True, size={"height": 64, "width": 64}, keep_aspect_ratio=False, ensure_multiple_of=1,
                 resample=3, do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5, 0.5, 0.5],
                 image_std=[0.5, 0.5, 0.5])
# A second processor (pixels only): keep_aspect_ratio and ensure_multiple_of, as MiDaS' own transforms do.
PROCESSOR_ASPECT = dict(PROCESSOR, size={"height": 96, "width": 96}, keep_aspect_ratio=True, ensure_multiple_of=32)
IMAGE_SIZES = [(96, 60), (41, 73), (200, 150)]  # (width, height): wide, odd tall, large downscale


def make_image(width, height, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([np.sin(x / (3 + c) + c) * np.cos(y / (5 - c)) for c in range(3)], axis=-1)
    disk = ((x - width * 0.6) ** 2 + (y - height * 0.4) ** 2 < (min(width, height) * 0.3) ** 2)[..., None]
    img = 127.5 + 80 * base + 40 * disk + rng.normal(0, 12, size=(height, width, 3))
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


def calibrate(model):
    """Random weights that keep activations O(1) everywhere and leave the ReLU head alive."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("position_embeddings") or name.endswith("cls_token"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif p.dim() >= 2:
                fan_in = p[0].numel() if "resize" not in name or p.dim() != 4 or p.shape[0] == p.shape[1] else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
            elif name.endswith("weight"):  # norms
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        # The last conv feeds a ReLU: a positive bias keeps most of the map above zero (some pixels still clip).
        model.head.head[4].bias.fill_(0.6)


def capture(model, pixel_values):
    """Runs the model with hooks; returns predicted_depth and every stage's hidden state by name."""
    states, hooks = {}, []

    def keep(name):
        def hook(_module, _inputs, output):
            states[name] = (output if torch.is_tensor(output) else output[0]).detach().clone()
        return hook

    bit = model.dpt.embeddings.backbone.bit
    hooks.append(bit.embedder.register_forward_hook(keep("bit_stem")))
    for i, stage in enumerate(bit.encoder.stages):
        hooks.append(stage.register_forward_hook(keep(f"bit_stage{i + 1}")))
    hooks.append(model.dpt.embeddings.register_forward_hook(keep("vit_embeddings")))
    for i, layer in enumerate(model.dpt.encoder.layer):
        hooks.append(layer.register_forward_hook(keep(f"vit_layer{i}")))
    hooks.append(model.dpt.layernorm.register_forward_hook(keep("vit_final_layernorm")))
    for i, conv in enumerate(model.neck.convs):
        hooks.append(conv.register_forward_hook(keep(f"neck_conv{i}")))
        hooks.append(conv.register_forward_pre_hook(lambda m, inp, i=i: states.__setitem__(f"neck_reassemble{i}", inp[0].detach().clone())))
    for i, layer in enumerate(model.neck.fusion_stage.layers):
        hooks.append(layer.register_forward_hook(keep(f"fusion{i}")))
    hooks.append(model.head.head[0].register_forward_pre_hook(lambda m, inp: states.__setitem__("head_input", inp[0].detach().clone())))
    with torch.no_grad():
        depth = model(pixel_values).predicted_depth
    for h in hooks:
        h.remove()
    return depth, states


# timm / MiDaS names, as the depth_model.model.* keys of 512-depth-ema.ckpt spell them.
def midas_key(hf_key, hidden_size):
    """Inverse of transformers' convert_dpt_hybrid_to_pytorch.rename_key (checked by running rename_key on it)."""
    k = hf_key
    rules = [
        ("dpt.embeddings.backbone.bit.embedder.convolution.", "pretrained.model.patch_embed.backbone.stem.conv."),
        ("dpt.embeddings.backbone.bit.embedder.norm.", "pretrained.model.patch_embed.backbone.stem.norm."),
        ("dpt.embeddings.backbone.bit.encoder.stages.", "pretrained.model.patch_embed.backbone.stages."),
        ("dpt.embeddings.projection.", "pretrained.model.patch_embed.proj."),
        ("dpt.embeddings.cls_token", "pretrained.model.cls_token"),
        ("dpt.embeddings.position_embeddings", "pretrained.model.pos_embed"),
        ("dpt.encoder.layer.", "pretrained.model.blocks."),
        ("dpt.layernorm.", "pretrained.model.norm."),
        ("neck.reassemble_stage.readout_projects.", "pretrained.act_postprocess{}.0.project.0."),
        ("neck.convs.", "scratch.layer{}_rn."),
        ("neck.fusion_stage.layers.", "scratch.refinenet{}."),
        ("head.head.", "scratch.output_conv."),
    ]
    for hf, midas in rules:
        if k.startswith(hf):
            rest = k[len(hf):]
            if "{}" in midas:
                idx, rest = rest.split(".", 1)
                n = int(idx) + 1 if "refinenet" not in midas else 4 - int(idx)
                midas = midas.format(n)
                if "project" in midas:  # readout_projects.N.0 (Linear inside a Sequential) is project.0 itself
                    rest = rest.split(".", 1)[1]
            k = midas + rest
            break
    else:
        if k.startswith("neck.reassemble_stage.layers."):
            idx, part, rest = k[len("neck.reassemble_stage.layers."):].split(".", 2)
            k = f"pretrained.act_postprocess{int(idx) + 1}.{3 if part == 'projection' else 4}.{rest}"
        else:
            raise KeyError(hf_key)
    if k.startswith("pretrained.model.patch_embed.backbone.stages."):
        k = k.replace(".layers.", ".blocks.")
    if k.startswith("pretrained.model.blocks."):
        k = (k.replace("layernorm_before", "norm1").replace("layernorm_after", "norm2")
             .replace("attention.output.dense", "attn.proj").replace("intermediate.dense", "mlp.fc1")
             .replace("output.dense", "mlp.fc2"))
    if k.startswith("scratch.refinenet"):
        k = (k.replace("residual_layer1", "resConfUnit1").replace("residual_layer2", "resConfUnit2")
             .replace("convolution1", "conv1").replace("convolution2", "conv2").replace(".projection.", ".out_conv."))
    return k


def to_midas_state_dict(state_dict, hidden_size, num_layers):
    out = {}
    for i in range(num_layers):
        q, kk, v = (state_dict[f"dpt.encoder.layer.{i}.attention.attention.{n}.weight"] for n in ("query", "key", "value"))
        qb, kb, vb = (state_dict[f"dpt.encoder.layer.{i}.attention.attention.{n}.bias"] for n in ("query", "key", "value"))
        out[f"pretrained.model.blocks.{i}.attn.qkv.weight"] = torch.cat([q, kk, v])
        out[f"pretrained.model.blocks.{i}.attn.qkv.bias"] = torch.cat([qb, kb, vb])
    for key, value in state_dict.items():
        if ".attention.attention." in key:
            continue
        out[midas_key(key, hidden_size)] = value
    return out


def check_midas_roundtrip(midas_sd, hf_sd, config):
    """Runs the reference converter (rename_key + read_in_q_k_v) on our MiDaS names: it must give back the HF dict."""
    back = {hf_convert.rename_key(k): v for k, v in midas_sd.items()}
    hf_convert.read_in_q_k_v(back, config)
    assert set(back) == set(hf_sd), (sorted(set(back) ^ set(hf_sd)))[:10]
    for k in hf_sd:
        assert torch.equal(back[k], hf_sd[k]), k


def tolerance(x32, x64):
    diff = (x32.double() - x64).abs().max().item()
    return max(50 * diff, 1e-5 * max(1.0, x32.abs().max().item())), diff


def main():
    torch.manual_seed(SEED)
    os.makedirs(OUT, exist_ok=True)
    config = DPTConfig(**CONFIG)
    model = DPTForDepthEstimation(config).eval()
    calibrate(model)
    model.save_pretrained(os.path.join(OUT, "depth_estimator"), safe_serialization=True)
    processor = DPTImageProcessor(**PROCESSOR)
    processor.save_pretrained(os.path.join(OUT, "feature_extractor"))
    aspect = DPTImageProcessor(**PROCESSOR_ASPECT)
    with open(os.path.join(OUT, "preprocessor_config_keep_aspect.json"), "w") as f:
        json.dump(aspect.to_dict(), f, indent=2, sort_keys=True)

    # Reload what was written, so the fixtures come from the files the tests read.
    model = DPTForDepthEstimation.from_pretrained(os.path.join(OUT, "depth_estimator")).eval()
    processor = DPTImageProcessor.from_pretrained(os.path.join(OUT, "feature_extractor"))
    model64 = DPTForDepthEstimation.from_pretrained(os.path.join(OUT, "depth_estimator")).double().eval()

    io, tolerances, stats, inputs = {}, {}, {}, []
    for n, (w, h) in enumerate(IMAGE_SIZES):
        img = make_image(w, h, SEED + n)
        img.save(os.path.join(OUT, f"input{n}.png"))
        inputs.append({"file": f"input{n}.png", "width": w, "height": h})
        pixels = processor(images=img, return_tensors="pt").pixel_values
        io[f"pixel_values{n}"] = pixels
        io[f"pixel_values_keep_aspect{n}"] = aspect(images=img, return_tensors="pt").pixel_values
        depth, states = capture(model, pixels)
        depth64, states64 = capture(model64, pixels.double())
        # neck_reassemble0/1 are the BiT stage 1/2 maps themselves and head_input is fusion3: not stored twice.
        for name in ("neck_reassemble0", "neck_reassemble1", "head_input"):
            assert torch.equal(states.pop(name), states[{"neck_reassemble0": "bit_stage1", "neck_reassemble1": "bit_stage2",
                                                          "head_input": "fusion3"}[name]])
        for name, value in list(states.items()) + [("predicted_depth", depth)]:
            ref64 = states64.get(name, depth64) if name != "predicted_depth" else depth64
            io[f"{name}{n}"] = value.float().contiguous()
            tol, diff = tolerance(value, ref64)
            tolerances[f"{name}{n}"] = {"max_abs": tol, "fp64_vs_fp32_max_abs": diff}
        d = depth.flatten()
        stats[f"predicted_depth{n}"] = {"min": d.min().item(), "max": d.max().item(), "mean": d.mean().item(),
                                        "std": d.std().item(), "zero_fraction": (d == 0).float().mean().item()}
        for name in ("bit_stage3", "vit_layer3", "fusion3"):
            stats[f"{name}{n}_std"] = states[name].std().item()
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "io.safetensors"), metadata={"format": "pt"})

    hf_sd = {k: v.clone() for k, v in model.state_dict().items()}
    midas = to_midas_state_dict(hf_sd, config.hidden_size, config.num_hidden_layers)
    check_midas_roundtrip(midas, hf_sd, config)
    save_file({"depth_model.model." + k: v.contiguous() for k, v in midas.items()},
              os.path.join(OUT, "single_file_depth_model.safetensors"), metadata={"format": "pt"})

    case = {
        "what": "tiny random DPTForDepthEstimation (is_hybrid=True) and DPTImageProcessor, run by transformers",
        "config": CONFIG, "processor": PROCESSOR, "processor_keep_aspect": PROCESSOR_ASPECT, "inputs": inputs,
        "seed": SEED, "tolerances": tolerances, "stats": stats,
        "tensors": {k: list(v.shape) for k, v in io.items()},
        "midas_keys": "single_file_depth_model.safetensors: depth_model.model.<MiDaS name>; transformers' "
                      "convert_dpt_hybrid_to_pytorch.rename_key + read_in_q_k_v map them back to exactly these weights",
        "versions": {"torch": torch.__version__, "transformers": "5728b5ad (4.40.0.dev0)", "numpy": np.__version__},
    }
    with open(os.path.join(OUT, "case.json"), "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)
    print(json.dumps(stats, indent=1))
    if "--no-pipeline" not in sys.argv:
        make_pipeline_case(midas)


def make_pipeline_case(midas):
    from diffusers import StableDiffusionDepth2ImgPipeline
    base = os.path.join(GOLDEN, "depth2img")
    os.makedirs(CASE, exist_ok=True)
    with open(os.path.join(base, "case.json")) as f:
        base_case = json.load(f)
    call = dict(base_case["call"])
    call.pop("height", None)
    call.pop("width", None)
    depth_estimator = DPTForDepthEstimation.from_pretrained(os.path.join(OUT, "depth_estimator")).eval()
    feature_extractor = DPTImageProcessor.from_pretrained(os.path.join(OUT, "feature_extractor"))
    pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(os.path.join(base, "model"), depth_estimator=depth_estimator,
                                                            feature_extractor=feature_extractor)
    pipe.set_progress_bar_config(disable=True)
    # Not square and not the estimator's size: the processor resizes it, and the depth comes back to a 12x8 latent.
    image = make_image(96, 64, SEED + 10)
    image.save(os.path.join(CASE, "input_image.png"))

    captured = {}
    original = pipe.prepare_depth_map

    def prepare_depth_map(*args, **kwargs):
        out = original(*args, **kwargs)
        captured["depth_map_processed"] = out.detach().clone()
        return out
    pipe.prepare_depth_map = prepare_depth_map
    est_out = {}
    hook = depth_estimator.register_forward_hook(lambda m, i, o: est_out.__setitem__("predicted_depth", o.predicted_depth.detach().clone()))
    pre = depth_estimator.register_forward_pre_hook(lambda m, i: est_out.__setitem__("pixel_values", i[0].detach().clone()))
    result = pipe(image=image, generator=torch.Generator("cpu").manual_seed(base_case["seed"]), output_type="np", **call)
    hook.remove()
    pre.remove()
    img = result.images[0]
    img_uint8 = (img * 255).round().astype(np.uint8)
    Image.fromarray(img_uint8).save(os.path.join(CASE, "expected.png"))
    # The same weights through the float64 estimator, for the tolerance of the processed depth.
    depth64 = DPTForDepthEstimation.from_pretrained(os.path.join(OUT, "depth_estimator")).double().eval()
    with torch.no_grad():
        pd64 = depth64(est_out["pixel_values"].double()).predicted_depth
    h, w = image.size[1] // 8, image.size[0] // 8
    d64 = torch.nn.functional.interpolate(pd64.unsqueeze(1), size=(h, w), mode="bicubic", align_corners=False)
    d64 = 2.0 * (d64 - d64.amin(dim=[1, 2, 3], keepdim=True)) / (d64.amax(dim=[1, 2, 3], keepdim=True) - d64.amin(dim=[1, 2, 3], keepdim=True)) - 1.0
    io = {
        "input_image_uint8": torch.from_numpy(np.array(image)),
        "pixel_values": est_out["pixel_values"],
        "predicted_depth": est_out["predicted_depth"],
        "depth_map_processed": captured["depth_map_processed"],
        "image_float": torch.from_numpy(img),
        "image_uint8": torch.from_numpy(img_uint8),
    }
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(CASE, "io.safetensors"), metadata={"format": "pt"})
    tol_depth, diff_depth = tolerance(captured["depth_map_processed"][:1], d64)
    tol_pred, diff_pred = tolerance(est_out["predicted_depth"], pd64)

    # The whole pipeline folder index (the components besides these two are ../depth2img/model's).
    tmp = os.path.join(CASE, "_tmp_pipe")
    pipe.save_pretrained(tmp, safe_serialization=True)
    with open(os.path.join(tmp, "model_index.json")) as f:
        index = json.load(f)
    index.pop("_name_or_path", None)
    with open(os.path.join(CASE, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
    import shutil
    shutil.rmtree(tmp)

    # The ldm single file of this case is ../depth2img/single_file.safetensors plus the tensors of
    # ../depth_estimator/single_file_depth_model.safetensors (tests merge them; not stored twice).
    single = load_file(os.path.join(base, "single_file.safetensors"))
    assert not any(k.startswith("depth_model.") for k in single)
    assert not any(k in single for k in ("depth_model.model." + m for m in midas))

    case = {
        "name": "depth2img_estimated", "pipeline": "StableDiffusionDepth2ImgPipeline",
        "description": "depth2img with no depth map: the tiny DPT-Hybrid estimates it (prepare_depth_map)",
        "model": "../depth2img/model components + ../depth_estimator/{depth_estimator,feature_extractor}; model_index.json here",
        "call": call, "seed": base_case["seed"], "image_size": list(image.size),
        "generator": "torch.Generator('cpu').manual_seed(seed), passed to the pipeline",
        "scheduler": base_case["scheduler"],
        "tolerances": {"depth_map_processed": {"max_abs": tol_depth, "fp64_vs_fp32_max_abs": diff_depth},
                       "predicted_depth": {"max_abs": tol_pred, "fp64_vs_fp32_max_abs": diff_pred},
                       "image_uint8": {"max_abs": 2}},
        "tensors": {k: list(v.shape) for k, v in io.items()},
        "stats": {"predicted_depth_std": est_out["predicted_depth"].std().item(),
                  "depth_map_processed_std": captured["depth_map_processed"].std().item(),
                  "image_std": float(img.std())},
        "single_file": "../depth2img/single_file.safetensors + ../depth_estimator/single_file_depth_model.safetensors "
                       "(depth_model.model.* in MiDaS names), merged: 512-depth-ema.ckpt's layout",
        "versions": {"diffusers": "0.29.2", "transformers": "5728b5ad (4.40.0.dev0)", "torch": torch.__version__},
    }
    with open(os.path.join(CASE, "case.json"), "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)
    print(json.dumps(case["stats"], indent=1), json.dumps(case["tolerances"], indent=1))


if __name__ == "__main__":
    main()
