"""Fixture generator: prompt embeddings as AUTOMATIC1111 builds them for SD 2.x, over the golden tiny text encoder.

A1111 cannot run here, so this file restates its algorithm from its source (AUTOMATIC1111/stable-diffusion-webui):
  - modules/prompt_parser.py `parse_prompt_attention` (restated and checked in make_prompt_parser.py, imported here);
  - modules/sd_hijack_clip.py `FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line` / `process_tokens`: fragments
    tokenized one by one without BOS/EOS, chunks of 75 tokens, comma backtracking (opts.comma_padding_backtrack,
    default 20), BREAK, each chunk written as BOS + 75 + EOS (short chunks filled with EOS), then, because SD 2.x's
    id_pad (0) differs from id_end, every id after a chunk's first EOS becomes 0;
  - modules/sd_hijack_open_clip.py: SD 2.x settings (comma token ",</w>", id_pad 0);
  - modules/sd_emphasis.py `EmphasisOriginal`: z * weights, then z * (mean before / mean after), per chunk;
  - each chunk goes through the text encoder alone; the chunk outputs are concatenated to [1, 77*k, D].
The text encoder is transformers' CLIPTextModel run by the reference stack (last_hidden_state = penultimate OpenCLIP
block + ln_final, which the golden README shows equals open_clip's SD 2.x output). Fragments are tokenized with
transformers' CLIPTokenizer (as diffusers pipelines and A1111's SD 1.x class do), not open_clip's tokenizer: the
engine keeps diffusers' tokenizer so that prompts without syntax give exactly today's ids (see README: '!' etc.).

Cross-check: where the algorithms coincide (one chunk of exactly 75 tokens, weights, no BREAK: no padding position
differs and the mean is over the same tensor), diffusers' community lpw_stable_diffusion.get_weighted_text_embeddings
is run on the same model and must agree.

Output: tests/golden/prompts/embeddings.json (prompts, chunk ids and weights, tolerances, checks) and
embeddings.safetensors (`caseNN` = [1, 77*k, D] float32).
Run: REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_prompt_embeddings.py
"""
import json
import os
import sys

sys.path.insert(0, "/work/shared/reference-stack")
import refenv  # noqa: F401,E402  (puts diffusers/transformers on the path)

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402  (st_shim)
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_prompt_parser import a1111_parse  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.normpath(os.path.join(HERE, ".."))
OUT_DIR = os.path.join(GOLDEN, "prompts")
CHUNK = 75
COMMA_BACKTRACK = 20


# --- A1111's chunking, restated -------------------------------------------------------------------------------------
def a1111_chunks(prompt, tokenizer):
    """[(ids[77], weights[77])] for one prompt, as tokenize_line + process_tokens build them for SD 2.x."""
    bos, eos, comma = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.get_vocab()[",</w>"]
    fragments = a1111_parse(prompt)
    done = []
    ids, weights, last_comma = [], [], -1

    def close_chunk():
        nonlocal ids, weights, last_comma
        fill = CHUNK - len(ids)
        ids = [bos] + ids + [eos] * fill + [eos]
        weights = [1.0] + weights + [1.0] * fill + [1.0]
        first_end = ids.index(eos)
        ids = ids[:first_end + 1] + [0] * (len(ids) - first_end - 1)   # SD 2.x: pad id 0 after the first EOS
        done.append((ids, weights))
        ids, weights, last_comma = [], [], -1

    for text, weight in fragments:
        if text == "BREAK" and weight == -1:
            close_chunk()
            continue
        for token in tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]:
            if token == comma:
                last_comma = len(ids)
            elif len(ids) == CHUNK and last_comma != -1 and len(ids) - last_comma <= COMMA_BACKTRACK:
                moved_ids, moved_weights = ids[last_comma + 1:], weights[last_comma + 1:]
                ids, weights = ids[:last_comma + 1], weights[:last_comma + 1]
                close_chunk()
                ids, weights = moved_ids, moved_weights
            if len(ids) == CHUNK:
                close_chunk()
            ids.append(token)
            weights.append(weight)
    if ids or not done:
        close_chunk()
    return done


def emphasis_original(z, weights):
    """A1111 'Original' emphasis on one chunk: z [1, 77, D], weights [77] (float32, as torch.asarray makes them)."""
    before = z.mean()
    z = z * torch.tensor(weights, dtype=torch.float32).to(z.dtype).reshape(1, -1, 1).expand(z.shape)
    after = z.mean()
    return z * (before / after)


def a1111_embeddings(prompt, tokenizer, encoder, dtype=torch.float32):
    outs = []
    for ids, weights in a1111_chunks(prompt, tokenizer):
        with torch.no_grad():
            z = encoder(torch.tensor([ids], dtype=torch.long)).last_hidden_state.to(dtype)
            outs.append(emphasis_original(z, weights))
    return torch.cat(outs, dim=1)


# --- prompts -------------------------------------------------------------------------------------------------------
PROMPTS = [
    "a photograph of an astronaut riding a horse",                           # golden text_encoder prompt 0
    "",
    "a (red:1.3) fox, [blurry], (((masterpiece)))",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "a cat BREAK a dog",
    "BREAK a dog",
    "a cat BREAK BREAK (a dog:1.2)",
    "(a BREAK b:1.5) c",                                                      # BREAK inside brackets is a word
    "(x:0) and y",
    "(x:-1) and y",
    "café, naïve, 日本, emoji 🚀, 4k!",
]


def long_prompts(tokenizer):
    """Prompts whose token counts put commas exactly where the backtracking rule changes its answer."""
    cat = "cat"                       # one token each
    assert len(tokenizer(cat, add_special_tokens=False)["input_ids"]) == 1

    def cats(n):
        return " ".join([cat] * n)

    built = {
        "exactly 75 tokens, weighted (lpw cross-check)": f"({cats(30)}:1.3) {cats(30)} [{cats(15)}]",
        "exactly 75 tokens, plain": cats(75),
        "76 tokens": cats(76),
        "150 tokens, two full chunks": f"{cats(100)} ({cats(50)}:0.7)",
        "comma 1 token before the edge": f"{cats(73)}, {cats(10)}",
        "comma 20 back (moves)": f"{cats(55)}, {cats(40)}",
        "comma 21 back (stays)": f"{cats(54)}, {cats(40)}",
        "comma as the 76th token": f"{cats(75)}, {cats(5)}",
        "comma as the 75th token": f"{cats(74)}, {cats(5)}",
        "three chunks, weights and commas": ", ".join(f"({cats(9)}:{1 + k / 10})" if k % 3 == 0 else cats(9)
                                                     for k in range(20)),
        "BREAK after 70 tokens": f"{cats(70)} BREAK {cats(10)}",
        "long negative style": "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer "
                               "digits, cropped, worst quality, low quality, normal quality, jpeg artifacts, "
                               "signature, watermark, username, blurry, (deformed:1.3), [[ugly]], " * 2,
    }
    return built


def main():
    torch.manual_seed(0)
    tok_dir = os.path.join(GOLDEN, "txt2img_v", "model", "tokenizer")
    enc_dir = os.path.join(GOLDEN, "text_encoder", "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    encoder = CLIPTextModel.from_pretrained(enc_dir).eval()
    encoder64 = CLIPTextModel.from_pretrained(enc_dir).eval().double()

    cases, tensors = [], {}
    named = [(None, p) for p in PROMPTS] + [(k, v) for k, v in long_prompts(tokenizer).items()]
    for n, (label, prompt) in enumerate(named):
        chunks = a1111_chunks(prompt, tokenizer)
        z = a1111_embeddings(prompt, tokenizer, encoder)
        torch.set_default_dtype(torch.float64)   # transformers builds CLIP's causal mask in the default dtype
        try:
            z64 = a1111_embeddings(prompt, tokenizer, encoder64, torch.float64)
        finally:
            torch.set_default_dtype(torch.float32)
        fp64_diff = (z.double() - z64).abs().max().item()
        tol = max(50 * fp64_diff, 1e-5 * max(1.0, z.abs().max().item()))
        name = f"case{n:02d}"
        tensors[name] = z.contiguous()
        ratios = []
        for ids, weights in chunks:
            with torch.no_grad():
                raw = encoder(torch.tensor([ids])).last_hidden_state
            w = torch.tensor(weights).reshape(1, -1, 1)
            ratios.append((raw.mean() / (raw * w).mean()).item())
        cases.append({"name": name, "label": label, "prompt": prompt, "shape": list(z.shape),
                      "chunks": [{"ids": ids, "weights": weights} for ids, weights in chunks],
                      "token_counts": [sum(1 for t in ids[1:] if t not in (0, tokenizer.eos_token_id)) for ids, _ in chunks],
                      "mean_ratios": ratios, "fp64_vs_fp32_max_abs": fp64_diff, "tolerance_max_abs": tol})

    add_pipeline_encoder_cases(tokenizer, cases, tensors)
    checks = cross_check_lpw(tokenizer, encoder, cases, tensors)
    checks.update(check_plain_equals_pipeline(tokenizer, encoder, tensors))
    write(cases, tensors, checks)


def add_pipeline_encoder_cases(tokenizer, cases, tensors):
    """Two prompts again with the text encoder the golden pipeline cases share (other weights than text_encoder/), so
    a pipeline test can check the conditioning it feeds the UNet: `pipeline_caseNN`."""
    path = os.path.join(GOLDEN, "txt2img_eps_dpmpp", "model", "text_encoder")
    encoder = CLIPTextModel.from_pretrained(path).eval()
    encoder64 = CLIPTextModel.from_pretrained(path).eval().double()
    for source in ("case20", "case02"):
        prompt = next(c["prompt"] for c in cases if c["name"] == source)
        z = a1111_embeddings(prompt, tokenizer, encoder)
        torch.set_default_dtype(torch.float64)
        try:
            z64 = a1111_embeddings(prompt, tokenizer, encoder64, torch.float64)
        finally:
            torch.set_default_dtype(torch.float32)
        fp64_diff = (z.double() - z64).abs().max().item()
        tensors["pipeline_" + source] = z.contiguous()
        cases.append({"name": "pipeline_" + source, "label": "pipeline text encoder (txt2img_eps_dpmpp/model)",
                      "prompt": prompt, "shape": list(z.shape), "text_encoder": "tests/golden/txt2img_eps_dpmpp/model/text_encoder",
                      "chunks": [{"ids": i, "weights": w} for i, w in a1111_chunks(prompt, tokenizer)],
                      "fp64_vs_fp32_max_abs": fp64_diff,
                      "tolerance_max_abs": max(50 * fp64_diff, 1e-5 * max(1.0, z.abs().max().item()))})


def cross_check_lpw(tokenizer, encoder, cases, tensors):
    import lpw_stable_diffusion as lpw   # diffusers v0.29.2 examples/community, on the path through refenv

    class Pipe:   # what get_weighted_text_embeddings reads from a pipeline
        pass
    pipe = Pipe()
    pipe.tokenizer, pipe.text_encoder, pipe.device = tokenizer, encoder, torch.device("cpu")
    compared = {}
    for c in cases:
        one_full_chunk = len(c["chunks"]) == 1 and 0 not in c["chunks"][0]["ids"]
        if not one_full_chunk or "BREAK" in c["prompt"]:
            continue
        with torch.no_grad():
            lpw_z, _ = lpw.get_weighted_text_embeddings(pipe, c["prompt"], max_embeddings_multiples=1)
        compared[c["name"]] = (lpw_z - tensors[c["name"]]).abs().max().item()
        assert compared[c["name"]] <= c["tolerance_max_abs"], (c["name"], compared[c["name"]])
    assert compared, "no prompt where lpw and A1111 coincide"
    return {"lpw_get_weighted_text_embeddings_max_abs": compared}


def check_plain_equals_pipeline(tokenizer, encoder, tensors):
    """A prompt without syntax and at most 75 tokens gives what diffusers' pipeline encodes (padding max_length)."""
    ids = tokenizer(PROMPTS[0], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        diffusers_z = encoder(ids).last_hidden_state
    diff = (diffusers_z - tensors["case00"]).abs().max().item()
    assert diff == 0.0, diff
    return {"plain_prompt_equals_diffusers_encoding_max_abs": diff}


def write(cases, tensors, checks):
    os.makedirs(OUT_DIR, exist_ok=True)
    save_file(dict(sorted(tensors.items())), os.path.join(OUT_DIR, "embeddings.safetensors"), metadata={"format": "pt"})
    doc = {
        "what": "A1111 SD 2.x prompt embeddings (parse, 75-token chunks, comma backtracking 20, BREAK, pad id 0 after "
                "the first EOS, each chunk encoded alone, Original emphasis per chunk), [1, 77*k, D] per case",
        "text_encoder": "tests/golden/text_encoder/text_encoder", "tokenizer": "tests/golden/txt2img_v/model/tokenizer",
        "chunk_length": CHUNK, "comma_backtrack": COMMA_BACKTRACK,
        "tolerance_rule": "max(50 * fp64_vs_fp32_max_abs, 1e-5 * max(1, |z|max))",
        "checks": checks,
        "versions": {"torch": torch.__version__, "diffusers": "0.29.2", "transformers": "4.40.0.dev0 (5728b5ad)",
                     "a1111": "modules/sd_hijack_clip.py @ 00e09382, sd_hijack_open_clip.py @ 01a40c62, "
                              "prompt_parser.py @ 28bd8e14 (restated)"},
        "cases": cases,
    }
    with open(os.path.join(OUT_DIR, "embeddings.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(json.dumps(checks, indent=1))
    for c in cases:
        print(c["name"], c["shape"], "tokens", c.get("token_counts"), "tol %.2e" % c["tolerance_max_abs"],
              "ratios", ["%.3f" % r for r in c.get("mean_ratios", [])], (c["label"] or c["prompt"])[:50])


if __name__ == "__main__":
    main()
