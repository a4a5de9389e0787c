"""Fixture generator: textual-inversion embeddings, read and applied as AUTOMATIC1111 and diffusers do, on the golden
tiny SD 2.x model (tests/golden/txt2img_eps_dpmpp/model: text encoder width 8).

What it writes (tests/golden/textual_inversion/):
  files/                 embedding files in every format people meet:
    a1111-style.pt         A1111's own layout (modules/textual_inversion/textual_inversion.py Embedding.save):
                           {string_to_token: {'*': 265}, string_to_param: {'*': [2, D]}, name, step, sd_checkpoint,
                           sd_checkpoint_name}, torch.save zip layout
    old-paramdict.pt       the same with string_to_param a torch.nn.ParameterDict (what torch 1.11-era training
                           saved), in torch.save's legacy (non-zip) layout, [3, D]
    concept.bin            diffusers' learned_embeds.bin: {'<concept>': [D]} (one 1-D vector)
    emb-params.safetensors {'emb_params': [2, D]}
    learned-embeds.safetensors  diffusers' learned_embeds.safetensors: {'<learned>': [D]}
    bad-prompt.safetensors, bad-prompt-v2.safetensors  [1, D] and [2, D]: two names that start with the same tokens
                           (A1111 takes the longest match)
  bad/                   files that must be refused: sd15-style.safetensors ([1, 768]: SD 1.x width),
                           calls-global.pt (its pickle calls posix.system), truncated.pt (half of a1111-style.pt),
                           two-terms.pt (string_to_param with two entries), two-tensors.safetensors
  vectors.safetensors    `name` = the [n, D] vectors diffusers' load_textual_inversion put into the token embedding
                           table for each file in files/ (token = the file name, as A1111 names embeddings)
  prompts.json + prompts.safetensors
                         prompts that use the embeddings, through A1111's chunking with embeddings (restated below)
                         and "Original" emphasis: ids (0 at an embedding's positions), weights, fixes (offset, name),
                         and the [1, 77*k, D] conditioning; cross-checked against diffusers' encode_prompt after
                         load_textual_inversion where the two coincide
  images.json + images.safetensors
                         two whole diffusers StableDiffusionPipeline runs on the tiny model: `ti_negative` (an A1111 .pt
                         embedding in the negative prompt, loaded with load_textual_inversion) and `long_weighted` (a
                         two-chunk weighted prompt against a two-chunk weighted negative prompt, fed to the pipeline as
                         prompt_embeds / negative_prompt_embeds from the restated A1111 encoding)

A1111, restated (it cannot run here; AUTOMATIC1111/stable-diffusion-webui):
  - textual_inversion.py create_embedding_from_data: string_to_param (a ParameterDict's _parameters too) must hold one
    entry; else a dict whose first value is a tensor must hold one tensor (a 1-D one is one vector); vectors float32.
    EmbeddingDatabase: the name is the file name without extension; only embeddings as wide as the text encoder are
    registered; the name's tokens (no BOS/EOS) are looked up by their first token, longest first
    (find_embedding_at_position).
  - sd_hijack_clip.py tokenize_line: while walking a fragment's tokens, an embedding found at the position takes
    n = vectors positions (id 0, the fragment's weight); when it does not fit in the chunk (len + n > 75) the chunk is
    closed first; the fix (offset, embedding) is kept with the chunk.
  - sd_hijack.py EmbeddingsWithFixes: the token embeddings at offset+1 .. offset+n (after BOS) are replaced by the
    vectors, before the position embedding is added.
  Deliberate difference: when comma backtracking moves tokens that hold an embedding to the next chunk, A1111 leaves
  the fix with the old chunk (its vectors then overwrite the old chunk's padding and the moved positions read token 0);
  here the fix moves with its tokens. No prompt below reaches that case except `comma_moves_embedding`, which records it.
Run: REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_textual_inversion.py
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, "/work/shared/reference-stack")
import refenv  # noqa: F401,E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402  (st_shim)
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402
import diffusers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_prompt_parser import a1111_parse  # noqa: E402
from make_prompt_embeddings import emphasis_original, CHUNK, COMMA_BACKTRACK  # noqa: E402
from make_pipeline_cases import Recorder, instrument  # noqa: E402

GOLDEN = os.path.normpath(os.path.join(HERE, ".."))
OUT = os.path.join(GOLDEN, "textual_inversion")
MODEL = os.path.join(GOLDEN, "txt2img_eps_dpmpp", "model")
PIPELINE_CASE = os.path.join(GOLDEN, "txt2img_eps_dpmpp", "case.json")


# --- the files ------------------------------------------------------------------------------------------------------
class CallsSystem:
    """Pickles as a call of os.system: what a hostile .pt does (never loaded here)."""
    def __reduce__(self):
        return (os.system, ("echo refused",))


def write_files(width, scale):
    g = torch.Generator().manual_seed(1313)

    def vectors(n, w=width):
        return torch.randn(n, w, generator=g) * scale

    files, bad = os.path.join(OUT, "files"), os.path.join(OUT, "bad")
    os.makedirs(files, exist_ok=True)
    os.makedirs(bad, exist_ok=True)
    meta = {"step": 100, "sd_checkpoint": None, "sd_checkpoint_name": None, "string_to_token": {"*": 265}}
    torch.save({**meta, "string_to_param": {"*": vectors(2)}, "name": "a1111-style"}, os.path.join(files, "a1111-style.pt"))
    pd = torch.nn.ParameterDict({"*": torch.nn.Parameter(vectors(3))})
    torch.save({**meta, "string_to_param": pd, "name": "old-paramdict"}, os.path.join(files, "old-paramdict.pt"),
               _use_new_zipfile_serialization=False)
    torch.save({"<concept>": vectors(1)[0]}, os.path.join(files, "concept.bin"))
    save_file({"emb_params": vectors(2)}, os.path.join(files, "emb-params.safetensors"))
    save_file({"<learned>": vectors(1)[0].contiguous()}, os.path.join(files, "learned-embeds.safetensors"))
    save_file({"emb_params": vectors(1)}, os.path.join(files, "bad-prompt.safetensors"))
    save_file({"emb_params": vectors(2)}, os.path.join(files, "bad-prompt-v2.safetensors"))

    save_file({"emb_params": vectors(1, 768)}, os.path.join(bad, "sd15-style.safetensors"))
    torch.save({"string_to_param": {"*": CallsSystem()}, "name": "calls-global"}, os.path.join(bad, "calls-global.pt"))
    whole = open(os.path.join(files, "a1111-style.pt"), "rb").read()
    open(os.path.join(bad, "truncated.pt"), "wb").write(whole[: len(whole) // 2])
    torch.save({**meta, "string_to_param": {"*": vectors(1), "+": vectors(1)}, "name": "two-terms"},
               os.path.join(bad, "two-terms.pt"))
    save_file({"a": vectors(1), "b": vectors(1)}, os.path.join(bad, "two-tensors.safetensors"))
    return sorted(os.listdir(files))


def diffusers_vectors(file_names):
    """The rows diffusers' load_textual_inversion writes into the token embedding table, per file (token = name)."""
    out = {}
    for file_name in file_names:
        name = os.path.splitext(file_name)[0]
        pipe = diffusers.StableDiffusionPipeline.from_pretrained(MODEL, safety_checker=None)
        pipe.load_textual_inversion(os.path.join(OUT, "files", file_name), token=name)
        tokens = [name] + [f"{name}_{i}" for i in range(1, 100) if f"{name}_{i}" in pipe.tokenizer.added_tokens_encoder]
        ids = pipe.tokenizer.convert_tokens_to_ids(tokens)
        out[name] = pipe.text_encoder.get_input_embeddings().weight[ids].detach().clone().contiguous()
    return out


# --- A1111's chunking with embeddings, restated ----------------------------------------------------------------------
def embedding_index(tokenizer, vectors):
    """first token id -> [(name ids, name)], longest first (A1111's ids_lookup)."""
    index = {}
    for name in vectors:
        ids = tokenizer(name, add_special_tokens=False)["input_ids"]
        index.setdefault(ids[0], []).append((ids, name))
    for first in index:
        index[first].sort(key=lambda e: len(e[0]), reverse=True)
    return index


def find_embedding(index, tokens, position):
    for ids, name in index.get(tokens[position], []):
        if tokens[position:position + len(ids)] == ids:
            return name, len(ids)
    return None, 0


def a1111_chunks(prompt, tokenizer, vectors, index):
    """[(ids[77], weights[77], fixes[(offset, name)])]: tokenize_line with embeddings + process_tokens, SD 2.x."""
    bos, eos, comma = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.get_vocab()[",</w>"]
    done = []
    ids, weights, fixes, last_comma = [], [], [], -1

    def close_chunk():
        nonlocal ids, weights, fixes, last_comma
        fill = CHUNK - len(ids)
        full = [bos] + ids + [eos] * fill + [eos]
        first_end = full.index(eos)
        full = full[:first_end + 1] + [0] * (len(full) - first_end - 1)
        done.append((full, [1.0] + weights + [1.0] * fill + [1.0], fixes))
        ids, weights, fixes, last_comma = [], [], [], -1

    for text, weight in a1111_parse(prompt):
        if text == "BREAK" and weight == -1:
            close_chunk()
            continue
        tokens = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma:
                last_comma = len(ids)
            elif len(ids) == CHUNK and last_comma != -1 and len(ids) - last_comma <= COMMA_BACKTRACK:
                cut = last_comma + 1
                moved = (ids[cut:], weights[cut:], [(o - cut, n) for o, n in fixes if o >= cut])
                ids, weights, fixes = ids[:cut], weights[:cut], [(o, n) for o, n in fixes if o < cut]
                close_chunk()
                ids, weights, fixes = moved
            if len(ids) == CHUNK:
                close_chunk()
            name, name_length = find_embedding(index, tokens, position)
            if name is None:
                ids.append(token)
                weights.append(weight)
                position += 1
                continue
            n = vectors[name].shape[0]
            if len(ids) + n > CHUNK:
                close_chunk()
            fixes.append((len(ids), name))
            ids += [0] * n
            weights += [weight] * n
            position += name_length
    if ids or not done:
        close_chunk()
    return done


class TokenEmbeddingWithFixes(torch.nn.Module):
    """The token embedding with an embedding's vectors written over its placeholder positions (after BOS)."""

    def __init__(self, wrapped):
        super().__init__()
        self.wrapped = wrapped
        self.fixes = []

    def forward(self, input_ids):
        rows = self.wrapped(input_ids)                     # [1, 77, D]
        row = rows[0]
        for offset, vec in self.fixes:
            n = min(row.shape[0] - offset - 1, vec.shape[0])
            row = torch.cat([row[:offset + 1], vec[:n].to(row.dtype), row[offset + 1 + n:]])
        return row.unsqueeze(0)


def encode(prompt, tokenizer, encoder, vectors, index, dtype=torch.float32):
    embeds = encoder.text_model.embeddings
    if not isinstance(embeds.token_embedding, TokenEmbeddingWithFixes):
        embeds.token_embedding = TokenEmbeddingWithFixes(embeds.token_embedding)
    outs = []
    for ids, weights, fixes in a1111_chunks(prompt, tokenizer, vectors, index):
        embeds.token_embedding.fixes = [(o, vectors[n]) for o, n in fixes]
        with torch.no_grad():
            z = encoder(torch.tensor([ids], dtype=torch.long)).last_hidden_state.to(dtype)
        outs.append(emphasis_original(z, weights))
    return torch.cat(outs, dim=1)


def cats(n):
    return " ".join(["cat"] * n)


PROMPTS = {
    "single_vector": "a photo of concept on a hill",
    "multi_vector": "a painting, a1111-style, of a lighthouse",
    "legacy_paramdict": "old-paramdict portrait",
    "safetensors_emb_params": "emb-params landscape, emb-params",
    "learned_embeds": "learned-embeds",
    "longest_name_wins": "bad-prompt, bad-prompt-v2, bad-prompt-v",
    "weighted_embedding": "a (a1111-style:1.3) fox, [old-paramdict]",
    "moves_to_next_chunk": f"{cats(73)} a1111-style old-paramdict",
    "fills_the_chunk": f"{cats(72)} old-paramdict",
    "comma_moves_embedding": f"{cats(60)}, a1111-style {cats(20)}",
    "embedding_after_comma_at_edge": f"{cats(60)}, {cats(13)} a1111-style {cats(5)}",
    "upper_case_name": "A1111-STYLE mountains",
    "inside_a_word": "nota1111-style, a1111-styles",
    "break_then_embedding": "cat BREAK emb-params",
}


def prompt_cases(tokenizer, encoder, encoder64, vectors):
    index = embedding_index(tokenizer, vectors)
    vectors64 = {k: v.double() for k, v in vectors.items()}
    cases, tensors = [], {}
    for name, prompt in PROMPTS.items():
        chunks = a1111_chunks(prompt, tokenizer, vectors, index)
        z = encode(prompt, tokenizer, encoder, vectors, index)
        torch.set_default_dtype(torch.float64)
        try:
            z64 = encode(prompt, tokenizer, encoder64, vectors64, index, torch.float64)
        finally:
            torch.set_default_dtype(torch.float32)
        fp64 = (z.double() - z64).abs().max().item()
        tensors[name] = z.contiguous()
        cases.append({"name": name, "prompt": prompt, "shape": list(z.shape),
                      "chunks": [{"ids": i, "weights": w, "fixes": [[o, n] for o, n in f]} for i, w, f in chunks],
                      "fp64_vs_fp32_max_abs": fp64,
                      "tolerance_max_abs": max(50 * fp64, 1e-5 * max(1.0, z.abs().max().item()))})
    return cases, tensors


def cross_check_diffusers(cases, tensors):
    """diffusers' own path (load_textual_inversion + encode_prompt) on the prompts where it and A1111 coincide: one
    chunk, no weights, no BREAK, names written in lower case (diffusers matches added tokens before lower-casing)."""
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(MODEL, safety_checker=None)
    for file_name in sorted(os.listdir(os.path.join(OUT, "files"))):
        pipe.load_textual_inversion(os.path.join(OUT, "files", file_name), token=os.path.splitext(file_name)[0])
    compared = {}
    for c in cases:
        weighted = any(w != 1.0 for ch in c["chunks"] for w in ch["weights"])
        if len(c["chunks"]) != 1 or weighted or "BREAK" in c["prompt"] or c["prompt"] != c["prompt"].lower():
            continue
        if c["name"] in ("longest_name_wins", "inside_a_word"):
            continue   # added tokens split inside words and prefer other splits: diffusers reads these differently
        with torch.no_grad():
            z, _ = pipe.encode_prompt(c["prompt"], torch.device("cpu"), 1, False)
        diff = (z - tensors[c["name"]]).abs().max().item()
        assert diff <= c["tolerance_max_abs"], (c["name"], diff)
        compared[c["name"]] = diff
    assert len(compared) >= 4, compared
    return compared


# --- whole pipeline runs -------------------------------------------------------------------------------------------
def run_pipeline(call, seed, textual_inversion=None, embeds=None):
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(MODEL, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    if textual_inversion:
        pipe.load_textual_inversion(textual_inversion[0], token=textual_inversion[1])
    rec = Recorder()
    instrument(pipe, rec)
    kwargs = dict(call)
    if embeds is not None:
        kwargs.pop("prompt")
        kwargs.pop("negative_prompt")
        kwargs["prompt_embeds"], kwargs["negative_prompt_embeds"] = embeds
    with torch.no_grad():
        out = pipe(**kwargs, generator=torch.Generator("cpu").manual_seed(seed), output_type="np")
    image = out.images[0]
    kept = {k: rec.tensors[k] for k in ("prompt_embeds", "negative_prompt_embeds", "final_latents", "vae_decode_output")
            if k in rec.tensors}
    kept["image_float"] = torch.from_numpy(image.copy())
    kept["image_uint8"] = torch.from_numpy((image * 255).round().astype(np.uint8))
    return kept


def tolerance_by_rule(prompt, tokenizer, vectors, index):
    """The golden README's rule for a new conditioning: max(50 x |fp32 - fp64|, 1e-5 x max(1, |z|max))."""
    enc = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder")).eval()
    enc64 = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder")).eval().double()
    z = encode(prompt, tokenizer, enc, vectors, index)
    torch.set_default_dtype(torch.float64)
    try:
        z64 = encode(prompt, tokenizer, enc64, {k: v.double() for k, v in vectors.items()}, index, torch.float64)
    finally:
        torch.set_default_dtype(torch.float32)
    return max(50 * (z.double() - z64).abs().max().item(), 1e-5 * max(1.0, z.abs().max().item()))


def image_cases(tokenizer, encoder, vectors):
    base = json.load(open(PIPELINE_CASE))
    call = {k: base["call"][k] for k in ("num_inference_steps", "guidance_scale", "height", "width")}
    call["prompt"] = base["call"]["prompt"]
    seed = base["seed"]
    cases, tensors = [], {}

    ti_call = dict(call, negative_prompt="lowres, a1111-style, blurry")
    ti = run_pipeline(ti_call, seed, textual_inversion=(os.path.join(OUT, "files", "a1111-style.pt"), "a1111-style"))
    index = embedding_index(tokenizer, vectors)
    restated = encode(ti_call["negative_prompt"], tokenizer, encoder, vectors, index)
    check = (restated - ti["negative_prompt_embeds"]).abs().max().item()
    assert check <= 1e-5, check
    cases.append({"name": "ti_negative", "call": ti_call, "seed": seed, "embedding_path": "files/a1111-style.pt",
                  "restated_negative_vs_diffusers_max_abs": check,
                  "negative_prompt_embeds_tolerance": tolerance_by_rule(ti_call["negative_prompt"], tokenizer, vectors, index)})
    tensors.update({f"ti_negative/{k}": v for k, v in ti.items()})

    prompt = ", ".join(f"({cats(6)}:{1 + k / 10})" if k % 3 == 0 else cats(6) for k in range(14)) + ", (masterpiece:1.2)"
    negative = ("lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
                "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry, "
                "(deformed:1.3), [[ugly]], ") * 2
    p = encode(prompt, tokenizer, encoder, vectors, index)
    n = encode(negative, tokenizer, encoder, vectors, index)
    assert p.shape == n.shape and p.shape[1] == 154, (p.shape, n.shape)
    long_call = dict(call, prompt=prompt, negative_prompt=negative)
    lw = run_pipeline(long_call, seed, embeds=(p, n))
    cases.append({"name": "long_weighted", "call": long_call, "seed": seed,
                  "note": "prompt_embeds / negative_prompt_embeds = A1111's restated encoding (2 chunks each), passed "
                          "to diffusers' StableDiffusionPipeline",
                  "prompt_embeds_tolerance": tolerance_by_rule(prompt, tokenizer, vectors, index),
                  "negative_prompt_embeds_tolerance": tolerance_by_rule(negative, tokenizer, vectors, index)})
    tensors.update({f"long_weighted/{k}": v for k, v in lw.items()})
    return cases, tensors, base["tolerances"]


def main():
    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(MODEL, "tokenizer"))
    encoder = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder")).eval()
    encoder64 = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder")).eval().double()
    table = encoder.get_input_embeddings().weight
    scale = 3 * table.std().item()      # well outside the table's spread, so an unapplied embedding shows
    file_names = write_files(table.shape[1], scale)
    vectors = diffusers_vectors(file_names)
    save_file({k: v for k, v in sorted(vectors.items())}, os.path.join(OUT, "vectors.safetensors"))

    cases, tensors = prompt_cases(tokenizer, encoder, encoder64, vectors)
    checks = {"diffusers_encode_prompt_vs_restated_max_abs": cross_check_diffusers(cases, tensors)}
    save_file(tensors, os.path.join(OUT, "prompts.safetensors"))
    versions = {"torch": torch.__version__, "diffusers": "0.29.2", "transformers": "4.40.0.dev0 (5728b5ad)",
                "a1111": "sd_hijack_clip.py @ 00e09382, textual_inversion.py (create_embedding_from_data) restated"}
    with open(os.path.join(OUT, "prompts.json"), "w", encoding="utf-8") as f:
        sha = {f: hashlib.sha256(open(os.path.join(OUT, "files", f), "rb").read()).hexdigest() for f in file_names}
        json.dump({"text_encoder": "tests/golden/txt2img_eps_dpmpp/model/text_encoder", "vector_scale": scale,
                   "files_sha256": sha,
                   "checks": checks, "versions": versions, "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")

    encoder = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder")).eval()
    images, image_tensors, tolerances = image_cases(tokenizer, encoder, vectors)
    save_file(image_tensors, os.path.join(OUT, "images.safetensors"))
    keep = ("prompt_embeds", "negative_prompt_embeds", "final_latents", "vae_decode_output", "image_float")
    with open(os.path.join(OUT, "images.json"), "w", encoding="utf-8") as f:
        json.dump({"model": "tests/golden/txt2img_eps_dpmpp/model", "tolerances_from": "tests/golden/txt2img_eps_dpmpp/case.json",
                   "tolerances": {k: tolerances[k]["max_abs"] for k in keep}, "versions": versions, "cases": images},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(json.dumps(checks, indent=1))
    for c in cases:
        print(c["name"], c["shape"], "tol %.2e" % c["tolerance_max_abs"], [ch["fixes"] for ch in c["chunks"]])


if __name__ == "__main__":
    main()
