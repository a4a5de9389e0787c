"""Helpers shared by the fixture generators that rebuild a committed fixture: where to write, how to write JSON and
safetensors the way the fixtures were written, and how to compare a fresh run with the committed files.

A generator that imports this takes `--write` (overwrite the committed fixture) or, by default, writes into a
temporary folder and compares every file with the committed one (byte for byte; where a file differs, the JSON values
or tensors that differ are listed with their largest difference). Exit code 1 when something differs.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(GOLDEN))
# The transformers sources of the reference stack are a commit of main, not a release.
TRANSFORMERS_NOTE = "(main @ 5728b5ad, the v4.40 release branch point)"

# The SD 2.1 (768-v) scheduler config as released, the keys diffusers 0.8.0 saved in stabilityai/stable-diffusion-2-1's
# scheduler/scheduler_config.json: the base of the scheduler fixtures. Copy before changing it.
RELEASED_SD21_SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.8.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def pin_blas_kernels():
    """Makes OpenBLAS use its SkylakeX (AVX-512) kernels, those of the machine that made the committed fixtures, so
    that float32 matrix products give the same bits (this machine's environment says OPENBLAS_CORETYPE=Haswell, whose
    kernels give float noise of ~2e-5 in the text encoder). OpenBLAS reads OPENBLAS_CORETYPE only from the
    environment the process started with, so the generator restarts itself once with it set. Call before anything
    imports torch. The CPU must support AVX-512; GOLDEN_BLAS_CORETYPE names another core type."""
    wanted = os.environ.get("GOLDEN_BLAS_CORETYPE", "SkylakeX")
    if os.environ.get("OPENBLAS_CORETYPE") == wanted:
        return
    os.environ["OPENBLAS_CORETYPE"] = wanted
    os.execv(sys.executable, [sys.executable] + sys.argv)


def versions(**extra):
    """The `versions` block the fixtures carry (reference modules as imported)."""
    import diffusers
    import numpy
    import torch
    import transformers
    out = {"diffusers": diffusers.__version__, "transformers": f"{transformers.__version__} {TRANSFORMERS_NOTE}",
           "torch": torch.__version__, "numpy": numpy.__version__, "device": "cpu"}
    out.update(extra)
    return out


def cpu_name():
    """The CPU's model name from /proc/cpuinfo (figures of reduced-precision kernels depend on it)."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_flags(wanted):
    """Which of the /proc/cpuinfo flags in `wanted` this CPU has, in the order given."""
    with open("/proc/cpuinfo") as f:
        present = set(f.read().split())
    return [flag for flag in wanted if flag in present]


def write_json(path, doc, indent=2, ensure_ascii=True):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii) + "\n")


def save_tensors(path, tensors):
    """safetensors as the fixtures hold them: metadata {"format": "pt"}, tensors ordered by dtype then name (the
    reference stack's shim orders them so)."""
    from safetensors.torch import save_file
    save_file(tensors, path, metadata={"format": "pt"})


def parse_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write", action="store_true", help="overwrite the committed fixture")
    parser.add_argument("--keep", action="store_true", help="keep the temporary output folder (check mode)")
    return parser.parse_args()


class Output:
    """Where a generator writes: the committed fixture (--write) or a temporary twin that is compared afterwards."""

    def __init__(self, args, relative_paths):
        self.write = args.write
        self.keep = args.keep
        self.paths = relative_paths
        self.root = GOLDEN if self.write else tempfile.mkdtemp(prefix="golden-")

    def path(self, relative):
        full = os.path.join(self.root, relative)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def folder(self, relative):
        full = os.path.join(self.root, relative)
        os.makedirs(full, exist_ok=True)
        return full

    def finish(self, float_bounds=None, unordered_keys=()):
        """Compare the fresh files with the committed ones (check mode). float_bounds maps a file to the largest
        difference of a float value that is accepted there (float noise of a re-run); absent = exact. JSON lists
        under a key of unordered_keys are compared as sets (lists whose order no run can reproduce)."""
        if self.write:
            print("wrote " + ", ".join(self.paths))
            return 0
        bad = 0
        for rel in self.paths:
            fresh, committed = os.path.join(self.root, rel), os.path.join(GOLDEN, rel)
            bad += not compare_file(fresh, committed, rel, (float_bounds or {}).get(rel, 0.0), set(unordered_keys))
        if self.keep:
            print("fresh output kept in " + self.root)
        else:
            shutil.rmtree(self.root)
        print("all files identical to the committed fixture" if bad == 0 else f"{bad} file(s) differ")
        return 1 if bad else 0


def compare_file(fresh, committed, rel, bound, unordered=frozenset()):
    with open(fresh, "rb") as f:
        a = f.read()
    with open(committed, "rb") as f:
        b = f.read()
    if a == b:
        print(f"  identical  {rel}")
        return True
    if rel.endswith(".json"):
        worst, diffs = compare_json(json.loads(a), json.loads(b), "", unordered)
    elif rel.endswith(".safetensors"):
        worst, diffs = compare_safetensors(a, b)
    else:
        worst, diffs = float("inf"), ["bytes differ"]
    ok = worst <= bound
    print(f"  {'within' if ok else 'DIFFERS'}    {rel}: largest difference {worst:.3g} (bound {bound:g})")
    for line in diffs[:12]:
        print("      " + line)
    if len(diffs) > 12:
        print(f"      ... {len(diffs) - 12} more")
    return ok


def compare_json(a, b, where, unordered=frozenset()):
    """(largest numeric difference, differences) between two JSON values; a structural difference is infinite."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return float("inf"), [f"{where}: keys {list(a)[:8]} != {list(b)[:8]}"]
        results = [compare_json(sorted(a[k]) if k in unordered else a[k], sorted(b[k]) if k in unordered else b[k],
                                f"{where}.{k}", unordered) for k in a]
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return float("inf"), [f"{where}: length {len(a)} != {len(b)}"]
        results = [compare_json(x, y, f"{where}[{i}]", unordered) for i, (x, y) in enumerate(zip(a, b))]
    elif isinstance(a, float) and isinstance(b, float) and a != b:
        return abs(a - b), [f"{where}: {a!r} != {b!r}"]
    elif a == b and type(a) is type(b):
        return 0.0, []
    else:
        return float("inf"), [f"{where}: {a!r} != {b!r}"]
    worst = max([r[0] for r in results], default=0.0)
    return worst, [d for r in results for d in r[1]]


def read_safetensors(data):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), 8 + n


def compare_safetensors(a, b):
    import torch
    from safetensors.torch import load
    ha, _ = read_safetensors(a)
    hb, _ = read_safetensors(b)
    if list(ha) != list(hb):
        return float("inf"), [f"tensor names differ: {sorted(set(ha) ^ set(hb))[:8]}"]
    ta, tb = load(a), load(b)
    worst, diffs = 0.0, []
    for name in ta:
        x, y = ta[name], tb[name]
        if x.dtype != y.dtype or x.shape != y.shape:
            return float("inf"), [f"{name}: {x.dtype} {list(x.shape)} != {y.dtype} {list(y.shape)}"]
        if torch.equal(x, y):
            continue
        d = (x.double() - y.double()).abs().max().item() if x.dtype.is_floating_point else float("inf")
        worst = max(worst, d)
        diffs.append(f"{name}: max abs {d:.3g}")
    return worst, diffs
