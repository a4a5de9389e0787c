"""The reference timing of the device check: diffusers 0.29.2 on the same GPU, the same work as the runner's bench.

Full-size SD 2.1 768-v built from the engine's own config files (src/Engine/Models/Configs) with random weights
(timing only: the values do not change the work), float16, attention through PyTorch's scaled_dot_product_attention
(diffusers' default AttnProcessor2_0): one UNet call with the CFG batch of 2 and one VAE decode at 512² and 768²
(median of --repeats runs after one warm-up, each ended by torch.cuda.synchronize), then a whole 768² image of
--steps DDIM steps, CFG 7.5, after a 2-step warm-up. Peak GPU memory per stage from torch.cuda.max_memory_allocated.
diffusers, transformers and huggingface_hub come from PYTHONPATH (the bundle's src/, see bundled_reference.py);
torch and safetensors are the machine's.
Writes JSON to --out; prints one line per stage to stderr.
"""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bundled_reference  # noqa: E402

bundled_reference.prepare()  # diffusers, transformers and huggingface_hub come from the bundle


def log(message):
    print(message, file=sys.stderr, flush=True)


def timed(name, call, repeats, results):
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        output = call()
        torch.cuda.synchronize()
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            output = call()
            torch.cuda.synchronize()
            runs.append(time.perf_counter() - start)
    finite = bool(torch.isfinite(output).all().item())
    results[name] = {"median_s": statistics.median(runs), "runs_s": runs, "finite": finite,
                     "peak_allocated_bytes": torch.cuda.max_memory_allocated()}
    log(f"{name}: median {statistics.median(runs) * 1000:.1f} ms over {len(runs)} runs{'' if finite else ' (not finite)'}")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", required=True, help="src/Engine/Models/Configs")
    parser.add_argument("--scheduler", required=True, help="sd21-ddim.scheduler.json")
    parser.add_argument("--tokenizer", required=True, help="src/Engine/Data/clip-tokenizer")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    result = {"torch": torch.__version__, "cuda": torch.version.cuda, "device_name": torch.cuda.get_device_name(0),
              "precision": "float16", "stages": {}, "errors": {}}
    try:
        import diffusers
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        result["diffusers"] = diffusers.__version__
    except Exception:  # the stages below need it; say why they did not run
        result["errors"]["import"] = traceback.format_exc()
        write(args.out, result)
        raise

    device, dtype = "cuda", torch.float16
    torch.manual_seed(0)
    start = time.perf_counter()
    unet = UNet2DConditionModel.from_config(read_json(os.path.join(args.configs, "sd21-768-v.unet.json"))).to(device, dtype).eval()
    vae = AutoencoderKL.from_config(read_json(os.path.join(args.configs, "sd21-768-v.vae.json"))).to(device, dtype).eval()
    result["stages"]["build_s"] = time.perf_counter() - start
    log(f"diffusers {diffusers.__version__}, torch {torch.__version__}: random 768-v UNet and VAE in {result['stages']['build_s']:.1f} s")

    generator = torch.Generator("cpu").manual_seed(7)
    for size in (512, 768):
        sample = torch.randn(2, 4, size // 8, size // 8, generator=generator).to(device, dtype)
        context = torch.randn(2, 77, 1024, generator=generator).to(device, dtype)
        timestep = torch.tensor(999.0, device=device)
        timed(f"unet{size}", lambda: unet(sample, timestep, encoder_hidden_states=context).sample, args.repeats, result["stages"])
        latents = (torch.randn(1, 4, size // 8, size // 8, generator=generator) / vae.config.scaling_factor).to(device, dtype)
        timed(f"vae{size}_float16", lambda: vae.decode(latents).sample, args.repeats, result["stages"])
        vae32 = vae.to(torch.float32)
        latents32 = latents.float()
        timed(f"vae{size}", lambda: vae32.decode(latents32).sample, args.repeats, result["stages"])
        vae = vae32.to(dtype)

    try:
        result["stages"]["txt2img768"] = whole_image(args, unet, vae, device, dtype)
    except Exception:
        result["errors"]["txt2img768"] = traceback.format_exc()
        log(result["errors"]["txt2img768"])
    write(args.out, result)


def whole_image(args, unet, vae, device, dtype):
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    text_encoder = CLIPTextModel(CLIPTextConfig(**read_json(os.path.join(args.configs, "sd21-text_encoder.json")))).to(device, dtype).eval()
    tokenizer = CLIPTokenizer(os.path.join(args.tokenizer, "vocab.json"), os.path.join(args.tokenizer, "merges.txt"))
    scheduler = DDIMScheduler.from_config(read_json(args.scheduler))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompt = "a photograph of an astronaut riding a horse on the moon, highly detailed"

    def generate(steps):
        return pipe(prompt, height=768, width=768, num_inference_steps=steps, guidance_scale=7.5, output_type="pt",
                    generator=torch.Generator("cpu").manual_seed(42)).images

    with torch.no_grad():
        generate(2)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        image = generate(args.steps)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    finite = bool(torch.isfinite(image).all().item())
    log(f"txt2img768: {args.steps} DDIM steps in {seconds:.2f} s ({seconds / args.steps * 1000:.0f} ms per step)")
    return {"seconds": seconds, "steps": args.steps, "scheduler": "DDIM", "guidance": 7.5, "finite": finite,
            "peak_allocated_bytes": torch.cuda.max_memory_allocated()}


def write(path, result):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
