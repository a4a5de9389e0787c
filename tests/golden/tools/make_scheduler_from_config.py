"""Writes tests/golden/scheduler_from_config.json: every scheduler built the way diffusers 0.29.2 builds it with
`XScheduler.from_config(pipe.scheduler.config)` on top of several model scheduler configs, then set_timesteps(n).

Reference stack: diffusers v0.29.2 sources (see ../../../shared/reference-stack, or REF_SRC set up by its setup.sh)
on Debian's python3-torch. Run from the repository root:

    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_scheduler_from_config.py

Sources ("what the pipeline's scheduler config is"):
- single_file_v, single_file_eps: what `StableDiffusionPipeline.from_single_file` gives an SD 2.x checkpoint. diffusers
  0.29.2 reads the scheduler of the checkpoint's default hub repo (`fetch_diffusers_config` -> stabilityai/
  stable-diffusion-2-1 for every 2.x checkpoint) through `load_single_file_sub_model`, i.e.
  `DDIMScheduler.from_pretrained(<config folder>, subfolder="scheduler")`. The hub cannot be reached here, so the folder
  holds the released file: the 2.1 DDIM config written by diffusers 0.8.0 (a dozen keys, no timestep_spacing). The
  epsilon variant (the 512-base checkpoints) is the same file with prediction_type "epsilon", as the engine's
  single-file planner writes it. Every key the file lacks is a class default and is recorded in
  `_use_default_values`, which `from_config` drops, so each scheduler takes its own default for it.
- folder_released: a diffusers folder whose scheduler_config.json is a released one (`_diffusers_version` 0.8.0, no
  timestep_spacing): the golden txt2img_v model's config reduced to the keys diffusers 0.8.0 wrote, read with
  `DDIMScheduler.from_pretrained`.
- folder_modern: the golden txt2img_v model's own scheduler_config.json (written by 0.29.2: every key, timestep_spacing
  "leading" stated), and folder_modern_dpm: the golden txt2img_eps_dpmpp model's (DPMSolverMultistep, linspace,
  lambda_min_clipped -Infinity).
"""
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402  (the released SD 2.1 scheduler config)

sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: E402,F401  (puts the pinned diffusers sources on the path)

import diffusers  # noqa: E402
import torch  # noqa: E402
from diffusers.loaders.single_file import load_single_file_sub_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
OUT = os.path.join(GOLDEN, "scheduler_from_config.json")

SCHEDULERS = [
    "DDIMScheduler", "DDPMScheduler", "DEISMultistepScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "EulerAncestralDiscreteScheduler", "EulerDiscreteScheduler",
    "HeunDiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "KDPM2DiscreteScheduler", "LMSDiscreteScheduler",
    "PNDMScheduler", "UniPCMultistepScheduler",
]
STEPS = [4, 13, 25]

RELEASED_SD21 = golden_io.RELEASED_SD21_SCHEDULER


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def config_folder(root, name, text):
    """A pipeline config folder holding only scheduler/scheduler_config.json."""
    folder = os.path.join(root, name)
    os.makedirs(os.path.join(folder, "scheduler"))
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w", encoding="utf-8") as f:
        f.write(text)
    return folder


def single_file_scheduler(folder):
    """The scheduler component exactly as from_single_file loads it (non-legacy path, config folder given)."""
    return load_single_file_sub_model(
        library_name="diffusers", class_name="DDIMScheduler", name="scheduler", checkpoint={},
        pipelines=diffusers.pipelines, is_pipeline_module=False, cached_model_config_path=folder)


def folder_scheduler(folder):
    """A diffusers folder's scheduler as DiffusionPipeline.from_pretrained loads it (its own class)."""
    cls_name = json.loads(read_text(os.path.join(folder, "scheduler", "scheduler_config.json")))["_class_name"]
    return getattr(diffusers, cls_name).from_pretrained(folder, subfolder="scheduler")


def numbers(tensor):
    return [float(v) for v in tensor.double().tolist()]


def plain(value):
    """JSON-safe copy of a config value (-inf as the string diffusers' json writes, tuples as lists)."""
    if isinstance(value, float) and math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def run_source(pipe_scheduler):
    base = {k: plain(v) for k, v in dict(pipe_scheduler.config).items()}
    runs = []
    for name in SCHEDULERS:
        scheduler = getattr(diffusers, name).from_config(pipe_scheduler.config)
        effective = {k: plain(v) for k, v in dict(scheduler.config).items() if not k.startswith("_")}
        for n in STEPS:
            scheduler.set_timesteps(n)
            sigmas = getattr(scheduler, "sigmas", None)
            runs.append({
                "class": name,
                "num_inference_steps": n,
                "timesteps_dtype": str(scheduler.timesteps.dtype).replace("torch.", ""),
                "timesteps": numbers(scheduler.timesteps),
                "sigmas": numbers(sigmas) if isinstance(sigmas, torch.Tensor) else None,
                "init_noise_sigma": float(scheduler.init_noise_sigma),
                "timestep_spacing": scheduler.config.get("timestep_spacing"),
            })
        runs[-1]["effective_config"] = effective
    return base, runs


def main():
    txt2img_v = read_text(os.path.join(GOLDEN, "txt2img_v", "model", "scheduler", "scheduler_config.json"))
    dpm = read_text(os.path.join(GOLDEN, "txt2img_eps_dpmpp", "model", "scheduler", "scheduler_config.json"))
    modern = json.loads(txt2img_v)
    released = {k: modern[k] for k in RELEASED_SD21 if k in modern}
    released["_diffusers_version"] = "0.8.0"
    assert set(released) == set(RELEASED_SD21), "the golden txt2img_v config lacks a released key"
    released_eps = dict(RELEASED_SD21, prediction_type="epsilon")

    sources = {}
    with tempfile.TemporaryDirectory() as root:
        folders = {
            "single_file_v": (config_folder(root, "sf_v", json.dumps(RELEASED_SD21, indent=2)), single_file_scheduler),
            "single_file_eps": (config_folder(root, "sf_eps", json.dumps(released_eps, indent=2)), single_file_scheduler),
            "folder_released": (config_folder(root, "released", json.dumps(released, indent=2)), folder_scheduler),
            "folder_modern": (config_folder(root, "modern", txt2img_v), folder_scheduler),
            "folder_modern_dpm": (config_folder(root, "modern_dpm", dpm), folder_scheduler),
        }
        for key, (folder, load) in folders.items():
            pipe_scheduler = load(folder)
            file_text = read_text(os.path.join(folder, "scheduler", "scheduler_config.json"))
            pipe_config, runs = run_source(pipe_scheduler)
            sources[key] = {
                "scheduler_config_json": file_text,
                "pipe_scheduler_class": type(pipe_scheduler).__name__,
                "pipe_scheduler_config": pipe_config,
                "runs": runs,
            }
            print(f"{key}: {type(pipe_scheduler).__name__}, defaults used: "
                  f"{sorted(pipe_scheduler.config.get('_use_default_values', []))}")

    doc = {
        "generator": "tests/golden/tools/make_scheduler_from_config.py",
        "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__},
        "steps": STEPS,
        "schedulers": SCHEDULERS,
        "sources": sources,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
