"""Writes (or checks) tests/golden/text_encoder/: the tiny SD 2.x text tower run by transformers and by open_clip.

Inputs (made once, seeded and calibrated, see tests/golden/README.md; this tool does not make new weights):
  text_encoder/text_encoder/model.safetensors   transformers' CLIPTextModel weights (23 layers, width 8, 2 heads)
  text_encoder/single_file.safetensors          only for what transformers' model has no place for: the 24th
                                                resblock (SD 2.x stops at the penultimate one), text_projection and
                                                logit_scale, which a real SD 2.x checkpoint carries and the loaders
                                                must accept and ignore.
What it writes:
  text_encoder/text_encoder/                    config.json + model.safetensors as transformers' save_pretrained writes
                                                them after loading the committed folder (a round trip);
  text_encoder/single_file.safetensors          the same weights under ldm/open_clip names (cond_stage_model.model.*):
                                                q/k/v stacked into attn.in_proj_*, fc1/fc2 -> mlp.c_fc/c_proj,
                                                layer_norm1/2 -> ln_1/ln_2, final_layer_norm -> ln_final, plus the
                                                three carried-over entries above;
  text_encoder/io.safetensors                   for PROMPTS: input_ids (CLIPTokenizer as diffusers calls it),
                                                open_clip_input_ids (open_clip's tokenize), hidden_states_00..23 and
                                                prompt_embeds (= last_hidden_state) and pooled_output from
                                                CLIPTextModel, and the ldm computation with open_clip's own modules
                                                (Transformer of ResidualAttentionBlocks with its causal mask, as
                                                ldm's FrozenOpenCLIPEmbedder runs it) from the single-file weights:
                                                open_clip_penultimate_ln_final (23 blocks + ln_final, from input_ids),
                                                open_clip_last_layer_ln_final (all 24 blocks), and
                                                open_clip_penultimate_ln_final_from_open_clip_ids;
  text_encoder/case.json                        the prompts, the model config, checks (transformers vs open_clip,
                                                float32 vs a float64 run of the same model) and tolerances:
                                                prompt_embeds 50 x the float32-vs-float64 difference (3 significant
                                                digits), hidden_states_XX 4 x that (as first committed).

Bit-exact reproduction needs the float32 matrix products of the machine that made the fixture: OpenBLAS' SkylakeX
(AVX-512) kernels: golden_io.pin_blas_kernels restarts the tool with OPENBLAS_CORETYPE=SkylakeX (the CPU must have
AVX-512; GOLDEN_BLAS_CORETYPE=Haswell shows the float noise of other kernels, ~2e-5 here, inside the tolerances).

Reference stack: /work/shared/reference-stack (transformers 5728b5ad, open_clip 2.24.0, Debian's PyTorch 1.13, CPU
float32). Run from the repository root:

    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_text_encoder_case.py [--write]

Without --write it writes into a temporary folder and compares with the committed files (golden_io.py).
"""
import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

golden_io.pin_blas_kernels()
sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: E402  (puts the pinned reference sources on the path)

import diffusers  # noqa: E402,F401  (before open_clip, whose import stubs torchvision)
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

CASE = os.path.join(golden_io.GOLDEN, "text_encoder")
TOKENIZER = os.path.join(golden_io.GOLDEN, "txt2img_v", "model", "tokenizer")
PREFIX = "cond_stage_model.model."
MAX_LENGTH = 77

PROMPTS = [
    "a photograph of an astronaut riding a horse",
    "",
    "A painting of a FOX in the snow, by an unknown artist; 4k!",
    "caf\u00e9, na\u00efve, \u65e5\u672c, emoji \U0001f680",
    " ".join(f"long prompt {i}" for i in range(40)),
]

DESCRIPTION = ("tiny OpenCLIP text tower with the SD 2.x layout: 24 resblocks in the ldm checkpoint, 23 layers in the "
               "transformers CLIPTextModel (SD 2.x uses the penultimate block followed by ln_final = "
               "final_layer_norm), hidden_act gelu, vocab 49408, 77 positions")
FILES = {
    "text_encoder/": "transformers save_pretrained (config.json + model.safetensors)",
    "single_file.safetensors": "cond_stage_model.model.* keys as in an SD 2.x checkpoint",
    "io.safetensors": "input_ids [5,77] int64, prompt_embeds [5,77,8] (= last_hidden_state, what the pipelines use), "
                      "hidden_states_00..23 (embeddings, then the output of each of the 23 layers before "
                      "final_layer_norm), pooled_output, and the same computation done with open_clip's modules from "
                      "the ldm keys",
}
# Entries of an SD 2.x checkpoint's text tower that transformers' CLIPTextModel has no place for.
CARRIED_OVER = ("transformer.resblocks.23.", "text_projection", "logit_scale")

OUTPUTS = ["text_encoder/text_encoder/config.json", "text_encoder/text_encoder/model.safetensors",
           "text_encoder/single_file.safetensors", "text_encoder/io.safetensors", "text_encoder/case.json"]


def round3(x):
    return float(f"{x:.3g}")


def open_clip_names(hf, committed_single_file):
    """transformers' state dict under the ldm checkpoint's open_clip names."""
    out = {"token_embedding.weight": hf["text_model.embeddings.token_embedding.weight"],
           "positional_embedding": hf["text_model.embeddings.position_embedding.weight"],
           "ln_final.weight": hf["text_model.final_layer_norm.weight"],
           "ln_final.bias": hf["text_model.final_layer_norm.bias"]}
    layers = 1 + max(int(k.split(".")[3]) for k in hf if k.startswith("text_model.encoder.layers."))
    for i in range(layers):
        src, dst = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for part in ("weight", "bias"):
            out[dst + "attn.in_proj_" + part] = torch.cat(
                [hf[src + f"self_attn.{p}_proj.{part}"] for p in ("q", "k", "v")])
            for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[f"{dst}{a}.{part}"] = hf[f"{src}{b}.{part}"]
    for key, value in committed_single_file.items():
        if key[len(PREFIX):].startswith(CARRIED_OVER):
            out[key[len(PREFIX):]] = value
    return {PREFIX + k: v.contiguous() for k, v in out.items()}


class OpenClipTower(torch.nn.Module):
    """ldm's FrozenOpenCLIPEmbedder text path, built from open_clip's modules (token and position embeddings, the
    resblocks with open_clip's causal mask, ln_final), loaded from the single-file weights."""

    def __init__(self, sd, width, heads, layers, vocab, positions):
        super().__init__()
        transformer = refenv.import_open_clip("transformer")
        self.token_embedding = torch.nn.Embedding(vocab, width)
        self.positional_embedding = torch.nn.Parameter(torch.empty(positions, width))
        self.transformer = transformer.Transformer(width, layers, heads, mlp_ratio=4.0, act_layer=torch.nn.GELU)
        self.ln_final = transformer.LayerNorm(width)
        self.register_buffer("attn_mask", torch.empty(positions, positions).fill_(float("-inf")).triu_(1))
        own = {k[len(PREFIX):]: v for k, v in sd.items() if not k[len(PREFIX):].startswith(CARRIED_OVER[1:])}
        self.load_state_dict(own, strict=False)
        missing = set(self.state_dict()) - set(own) - {"attn_mask"}
        assert not missing, missing

    def forward(self, ids, skip_last):
        x = self.token_embedding(ids) + self.positional_embedding  # [B, T, D]
        x = x.permute(1, 0, 2)  # [T, B, D]
        blocks = self.transformer.resblocks
        for block in blocks[:len(blocks) - skip_last]:
            x = block(x, attn_mask=self.attn_mask)
        return self.ln_final(x.permute(1, 0, 2))  # [B, T, D]


def config_as_made(config):
    """config.to_dict() of the model as it was made in memory: model_type last (a config read from a folder holds it
    among its own attributes, so to_dict puts it earlier)."""
    out = copy.deepcopy(config.to_dict())
    out["model_type"] = out.pop("model_type")
    return out


def run_float64(folder, ids):
    """The same model in float64 (transformers builds its causal mask in the default dtype)."""
    torch.set_default_dtype(torch.float64)
    try:
        model = CLIPTextModel.from_pretrained(folder, torch_dtype=torch.float64).eval()
        with torch.no_grad():
            return model(ids).last_hidden_state
    finally:
        torch.set_default_dtype(torch.float32)


def main():
    args = golden_io.parse_args(__doc__.splitlines()[0])
    out = golden_io.Output(args, OUTPUTS)
    committed_folder = os.path.join(CASE, "text_encoder")
    model = CLIPTextModel.from_pretrained(committed_folder).eval()
    model.config._name_or_path = ""  # as a model made in memory has it, not the folder it was read from
    committed_single_file = load_file(os.path.join(CASE, "single_file.safetensors"))
    hf_weights = {k: v.clone() for k, v in model.state_dict().items()}
    single_file = open_clip_names(hf_weights, committed_single_file)

    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER)
    ids = tokenizer(PROMPTS, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                    return_tensors="pt").input_ids
    open_clip_ids = refenv.import_open_clip("tokenizer").SimpleTokenizer()(PROMPTS, context_length=MAX_LENGTH)

    config = model.config
    tower = OpenClipTower(single_file, config.hidden_size, config.num_attention_heads, config.num_hidden_layers + 1,
                          config.vocab_size, config.max_position_embeddings).eval()
    with torch.no_grad():
        hf = model(ids, output_hidden_states=True)
        penultimate = tower(ids, skip_last=1)
        last = tower(ids, skip_last=0)
        penultimate_open_clip_ids = tower(open_clip_ids, skip_last=1)
    fp64 = run_float64(committed_folder, ids)

    io = {"input_ids": ids, "open_clip_input_ids": open_clip_ids, "prompt_embeds": hf.last_hidden_state,
          "pooled_output": hf.pooler_output, "open_clip_penultimate_ln_final": penultimate,
          "open_clip_last_layer_ln_final": last,
          "open_clip_penultimate_ln_final_from_open_clip_ids": penultimate_open_clip_ids}
    io.update({f"hidden_states_{i:02d}": h for i, h in enumerate(hf.hidden_states)})
    fp64_diff = (hf.last_hidden_state.double() - fp64).abs().max().item()
    prompt_tolerance = round3(50 * fp64_diff)
    doc = {
        "name": "text_encoder",
        "description": DESCRIPTION,
        "prompts": PROMPTS,
        "config": config_as_made(config),
        "files": FILES,
        "checks": {
            "hf_vs_open_clip_penultimate_max_abs": (hf.last_hidden_state - penultimate).abs().max().item(),
            "fp64_vs_fp32_max_abs": fp64_diff,
            "open_clip_tokenize_equals_hf_ids": bool(torch.equal(ids, open_clip_ids)),
            "last_layer_differs_from_penultimate_max_abs": (last - penultimate).abs().max().item(),
        },
        "tolerances": {"prompt_embeds": {"max_abs": prompt_tolerance},
                       "hidden_states_XX": {"max_abs": 4 * prompt_tolerance}},
        "versions": golden_io.versions(open_clip=refenv.import_open_clip("version").__version__),
    }
    model.save_pretrained(out.folder("text_encoder/text_encoder"), safe_serialization=True)
    golden_io.save_tensors(out.path("text_encoder/single_file.safetensors"), single_file)
    golden_io.save_tensors(out.path("text_encoder/io.safetensors"), {k: v.contiguous() for k, v in io.items()})
    golden_io.write_json(out.path("text_encoder/case.json"), doc, indent=2, ensure_ascii=False)
    # fp64_vs_fp32_max_abs is a float64 sum on the machine that runs this: its last bits may differ.
    sys.exit(out.finish(float_bounds={"text_encoder/case.json": 1e-15}))


if __name__ == "__main__":
    main()
