"""Writes (or checks) tests/golden/schedulers.json + schedulers.safetensors: diffusers 0.29.2's schedulers run by
diffusers itself under the SD 2.1 scheduler config.

What it does:
  runs        for each VARIANT (15 scheduler set-ups), prediction type (v_prediction, epsilon) and
              num_inference_steps in STEPS: XScheduler.from_config(SD 2.1 config, prediction_type=..., **variant
              options), set_timesteps(n), then a roll-out with a stand-in model (MODEL_FORMULA) from x_init (randn,
              seed 0) times init_noise_sigma, recording the latents after every step() call. Stochastic schedulers get
              a torch.Generator seeded 1 (RNG); every random tensor they draw (diffusers' randn_tensor, wrapped where
              each scheduler module imported it) is stored as noise_XXX with the function that drew it.
              Tolerance: the same roll-out in float64 (torch.set_default_dtype(float64), the float32 draws fed back
              in; where that raises, as UniPC's linalg.solve does from 7 steps on with a float32 operand, only the
              sample is float64: fp64_twin says which), tolerance_max_abs = 50 x the largest float32-vs-float64 difference of any recorded latent,
              at least 1e-5 x max(1, largest |latent|), 3 significant digits.
  add_noise   for each variant and prediction type: set_timesteps(20) and, as diffusers' img2img pipeline does for
              strength s, t_start = 20 - int(20 s), set_begin_index(t_start * order) and
              add_noise(x0, noise, timesteps[t_start * order]) with x0 = 0.8 randn (seed 1), noise = randn (seed 2).
  lowres      the x4 upscaler's low-res DDPM scheduler (its released 0.8.0 config) add_noise of a [-1, 1] image
              (randn seed 3, clamped) with noise (randn seed 4) at several noise levels; alphas_cumprod of both
              schedules.

Every value comes from running diffusers; nothing here restates a scheduler. Bit-exact reproduction needs the
OpenBLAS kernels of the machine that made the fixture (golden_io.pin_blas_kernels). One thing is not reproducible:
diffusers lists a config's `_use_default_values` in the iteration order of a Python set of strings, which changes
with the interpreter's hash seed; check mode compares those lists as sets.

Reference stack: /work/shared/reference-stack (diffusers v0.29.2 on Debian's PyTorch 1.13, CPU). Run from the
repository root:

    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_scheduler_cases.py [--write]

Without --write it writes into a temporary folder and compares with the committed files (golden_io.py).
"""
import contextlib
import inspect
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

golden_io.pin_blas_kernels()
sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: E402,F401  (puts the pinned reference sources on the path)

import diffusers  # noqa: E402
import torch  # noqa: E402

SD21_CONFIG = golden_io.RELEASED_SD21_SCHEDULER
# The x4 upscaler's low_res_scheduler config as released.
X4_LOWRES_CONFIG = {
    "_class_name": "DDPMScheduler",
    "_diffusers_version": "0.8.0",
    "beta_end": 0.02,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.0001,
    "clip_sample": True,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "trained_betas": None,
    "variance_type": "fixed_small",
}
# name -> (class, options given to from_config, eta passed to step)
VARIANTS = {
    "DDIM": ("DDIMScheduler", {}, None),
    "DDIM_eta0.5": ("DDIMScheduler", {}, 0.5),
    "PNDM": ("PNDMScheduler", {}, None),
    "LMSDiscrete": ("LMSDiscreteScheduler", {}, None),
    "EulerDiscrete": ("EulerDiscreteScheduler", {}, None),
    "EulerAncestralDiscrete": ("EulerAncestralDiscreteScheduler", {}, None),
    "HeunDiscrete": ("HeunDiscreteScheduler", {}, None),
    "DPMSolverMultistep": ("DPMSolverMultistepScheduler", {}, None),
    "DPMSolverMultistep_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, None),
    "DPMSolverMultistep_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, None),
    "DPMSolverSinglestep": ("DPMSolverSinglestepScheduler", {}, None),
    "KDPM2Discrete": ("KDPM2DiscreteScheduler", {}, None),
    "UniPCMultistep": ("UniPCMultistepScheduler", {}, None),
    "DDPM": ("DDPMScheduler", {}, None),
    "DEISMultistep": ("DEISMultistepScheduler", {}, None),
}
PREDICTION_TYPES = ["v_prediction", "epsilon"]
STEPS = [1, 2, 7, 20, 50]
STRENGTHS = [0.3, 0.6, 0.8, 1.0]
ADD_NOISE_STEPS = 20
NOISE_LEVELS = [0, 1, 20, 50, 100, 250, 350, 999]
X_SHAPE = [1, 4, 8, 8]
LOWRES_SHAPE = [1, 3, 16, 16]

MODEL_FORMULA = ("model_output = 0.9 * x_in - 0.05 * (t / 1000), where x_in = scheduler.scale_model_input(x, t) and "
                 "t = float(t) is the timestep value passed to scale_model_input/step; x starts as x_init * "
                 "init_noise_sigma and becomes step(model_output, t, x).prev_sample after every step")
RNG = ("stochastic schedulers get generator=torch.Generator().manual_seed(1) in step(); every draw is stored as "
       ".../noise_XXX in draw order")


def randn(seed, shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def round3(x):
    return float(f"{x:.3g}")


def numbers(tensor):
    return tensor.tolist()


@contextlib.contextmanager
def recorded_draws(replay=None):
    """Wraps diffusers' randn_tensor where the scheduler modules imported it: records every draw (tensor, the module
    and function that drew it), or, given `replay`, returns those tensors in order (cast to the requested dtype)."""
    modules = [m for name, m in sys.modules.items()
               if name.startswith("diffusers.schedulers.scheduling_") and hasattr(m, "randn_tensor")]
    originals = {m: m.randn_tensor for m in modules}
    draws = []

    def make(module):
        def draw(shape, generator=None, device=None, dtype=None, layout=None):
            if replay is not None:
                tensor = replay[len(draws)].to(dtype or torch.float32)
            else:
                tensor = originals[module](shape, generator=generator, device=device, dtype=dtype, layout=layout)
            caller = inspect.currentframe().f_back
            draws.append((tensor, f"{caller.f_globals['__name__'].rsplit('.', 1)[-1]}.{caller.f_code.co_name}"))
            return tensor
        return draw

    for m in modules:
        m.randn_tensor = make(m)
    try:
        yield draws
    finally:
        for m, f in originals.items():
            m.randn_tensor = f


def make_scheduler(variant, prediction_type):
    cls, options, _ = VARIANTS[variant]
    return getattr(diffusers, cls).from_config(SD21_CONFIG, prediction_type=prediction_type, **options)


def roll_out(variant, prediction_type, n, x_init, dtype, replay=None):
    """(scheduler, latents after each step call, draws) for one run, in `dtype`."""
    eta = VARIANTS[variant][2]
    scheduler = make_scheduler(variant, prediction_type)
    scheduler.set_timesteps(n)
    x = x_init.to(dtype) * scheduler.init_noise_sigma
    generator = torch.Generator().manual_seed(1)
    latents = []
    with recorded_draws(replay) as draws:
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(x, t)
            model_output = 0.9 * x_in - 0.05 * (float(t) / 1000)
            kwargs = {"eta": eta} if eta is not None else {}
            if "generator" in inspect.signature(scheduler.step).parameters:
                kwargs["generator"] = generator
            x = scheduler.step(model_output, t, x, **kwargs).prev_sample
            latents.append(x)
    return scheduler, latents, draws


@contextlib.contextmanager
def default_dtype(dtype):
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def run(variant, prediction_type, n, x_init, tensors):
    key = f"{variant}/{prediction_type}/n{n}"
    scheduler, latents, draws = roll_out(variant, prediction_type, n, x_init, torch.float32)
    replay = [t for t, _ in draws]
    try:
        with default_dtype(torch.float64):
            _, latents64, _ = roll_out(variant, prediction_type, n, x_init, torch.float64, replay)
        twin = "default dtype float64"
    except RuntimeError:
        # UniPC's corrector (order 2, from 3 steps on) solves float32 coefficients against a float64 matrix there.
        _, latents64, _ = roll_out(variant, prediction_type, n, x_init, torch.float64, replay)
        twin = "float64 sample only"
    fp64_diff = max((a.double() - b).abs().max().item() for a, b in zip(latents, latents64))
    largest = max(a.abs().max().item() for a in latents)

    tensors[f"{key}/timesteps"] = scheduler.timesteps
    sigmas = getattr(scheduler, "sigmas", None)
    if isinstance(sigmas, torch.Tensor):
        tensors[f"{key}/sigmas"] = sigmas
    for i, x in enumerate(latents):
        tensors[f"{key}/latents_{i:03d}"] = x
    noise_draws = []
    for i, (tensor, drawn_by) in enumerate(draws):
        tensors[f"{key}/noise_{i:03d}"] = tensor
        noise_draws.append({"name": f"{key}/noise_{i:03d}", "drawn_by": drawn_by})

    entry = {"key": key, "variant": variant, "class": VARIANTS[variant][0], "prediction_type": prediction_type,
             "num_inference_steps": n, "eta": VARIANTS[variant][2], "fp64_twin": twin,
             "config": dict(scheduler.config), "order": scheduler.order, "timesteps": numbers(scheduler.timesteps),
             "timesteps_dtype": str(scheduler.timesteps.dtype).replace("torch.", "")}
    if isinstance(sigmas, torch.Tensor):
        entry["sigmas"] = numbers(sigmas)
    entry.update({"init_noise_sigma": float(scheduler.init_noise_sigma), "num_step_calls": len(latents),
                  "noise_draws": noise_draws, "fp64_vs_fp32_max_abs": fp64_diff,
                  "tolerance_max_abs": round3(max(50 * fp64_diff, 1e-5 * max(1.0, largest))),
                  "final_abs_max": latents[-1].abs().max().item()})
    return entry


def add_noise(variant, prediction_type, strength, x0, noise, tensors):
    key = f"add_noise/{variant}/{prediction_type}/strength{strength}"
    scheduler = make_scheduler(variant, prediction_type)
    scheduler.set_timesteps(ADD_NOISE_STEPS)
    t_start = ADD_NOISE_STEPS - min(int(ADD_NOISE_STEPS * strength), ADD_NOISE_STEPS)
    begin = t_start * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    timesteps = scheduler.timesteps[begin:]
    tensors[key] = scheduler.add_noise(x0, noise, timesteps[:1])
    return {"key": key, "class": VARIANTS[variant][0], "prediction_type": prediction_type,
            "num_inference_steps": ADD_NOISE_STEPS, "strength": strength, "t_start": t_start,
            "latent_timestep": float(timesteps[0]), "remaining_timesteps": numbers(timesteps),
            "init_noise_sigma": float(scheduler.init_noise_sigma)}


def lowres(tensors):
    scheduler = diffusers.DDPMScheduler.from_config(X4_LOWRES_CONFIG)
    image, noise = randn(3, LOWRES_SHAPE).clamp(-1, 1), randn(4, LOWRES_SHAPE)
    tensors["lowres/image"], tensors["lowres/noise"] = image, noise
    entries = []
    for level in NOISE_LEVELS:
        key = f"lowres/noised_level{level}"
        tensors[key] = scheduler.add_noise(image, noise, torch.tensor([level], dtype=torch.long))
        entries.append({"key": key, "noise_level": level,
                        "alphas_cumprod": scheduler.alphas_cumprod[level].item()})
    tensors["alphas_cumprod/x4_lowres"] = scheduler.alphas_cumprod
    tensors["alphas_cumprod/sd21"] = make_scheduler("DDIM", "v_prediction").alphas_cumprod
    return entries, dict(scheduler.config)


def main():
    args = golden_io.parse_args(__doc__.splitlines()[0])
    out = golden_io.Output(args, ["schedulers.json", "schedulers.safetensors"])
    x_init = randn(0, X_SHAPE)
    x0, noise = 0.8 * randn(1, X_SHAPE), randn(2, X_SHAPE)
    tensors = {"x_init": x_init, "add_noise/x0": x0, "add_noise/noise": noise}
    runs = [run(v, p, n, x_init, tensors) for p in PREDICTION_TYPES for v in VARIANTS for n in STEPS]
    noised = [add_noise(v, p, s, x0, noise, tensors) for p in PREDICTION_TYPES for v in VARIANTS for s in STRENGTHS]
    lowres_entries, lowres_config = lowres(tensors)
    doc = {
        "description": "diffusers scheduler reference data under the SD 2.1 scheduler config",
        "base_config": SD21_CONFIG,
        "model_formula": MODEL_FORMULA,
        "x_init": "tensor x_init [1,4,8,8] float32 (torch.randn with torch.Generator().manual_seed(0))",
        "rng": RNG,
        "versions": golden_io.versions(),
        "runs": runs,
        "add_noise": noised,
        "lowres_add_noise": lowres_entries,
        "lowres_scheduler_config": lowres_config,
    }
    golden_io.write_json(out.path("schedulers.json"), json.loads(json.dumps(doc)), indent=2, ensure_ascii=True)
    golden_io.save_tensors(out.path("schedulers.safetensors"), {k: v.contiguous() for k, v in tensors.items()})
    sys.exit(out.finish(unordered_keys={"_use_default_values"}))


if __name__ == "__main__":
    main()
