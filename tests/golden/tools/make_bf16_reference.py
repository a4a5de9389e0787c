"""Writes tests/golden/bf16_reference.json: how far diffusers' own image moves from its float32 image when each of the
six golden pipeline cases runs in bfloat16 on the CPU, the bound BFloat16PipelineTests holds the engine to.

For each case (txt2img_v, txt2img_eps_dpmpp, img2img, inpaint, depth2img, upscale_x4) diffusers 0.29.2 runs the
pipeline class case.json names twice, with the case's call and torch.Generator('cpu').manual_seed(seed): once in
float32, once with torch_dtype=torch.bfloat16. The pipeline code is bench/DeviceCheck/diffusers_golden.py's, the one the
GPU device check runs in float16, so both bounds come from the same reference run. Its noise is drawn in float32 and
cast (diffusers itself draws CPU noise in the pipeline's dtype, which in bfloat16 gives other numbers: another
picture, not the float32 one rounded; the engine draws in float32, as AUTOMATIC1111 does). Recorded per case: the
largest and the mean absolute difference between the two 8-bit images, in levels.

Reference stack: diffusers v0.29.2 on Debian's python3-torch (PyTorch 1.13 with its own oneDNN), see
../../../shared/reference-stack. bfloat16 kernels differ between CPUs, so the figures hold for the CPU recorded in
the file; check mode compares them exactly on that kind of machine. Run from the repository root:

    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_bf16_reference.py [--write]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

golden_io.pin_blas_kernels()  # the fixtures' float32 BLAS kernels
sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: E402,F401  (puts the pinned sources first on sys.path)
import torch  # noqa: E402

sys.path.insert(0, os.path.join(golden_io.REPO, "bench", "DeviceCheck"))
import diffusers_golden  # noqa: E402

FILE = "bf16_reference.json"


def main():
    args = golden_io.parse_args(__doc__.splitlines()[0])
    out = golden_io.Output(args, [FILE])
    # refenv runs torch on 2 threads; the bfloat16 figures follow the order of the sums, so the thread count matters.
    cases = {}
    for name in diffusers_golden.CASES:
        entry, _, _ = diffusers_golden.measure_case(golden_io.GOLDEN, name, "cpu", torch.bfloat16)
        assert entry["finite"], f"{name}: diffusers' image is not finite"
        cases[name] = {"max_levels": entry["max_levels"], "mean_levels": round(entry["mean_levels"], 6)}
        print(f"{name}: bfloat16 vs float32 max {cases[name]['max_levels']} levels, mean {cases[name]['mean_levels']:.3f}")
    doc = {
        "about": "diffusers' own loss to bfloat16 on the CPU: its bfloat16 image of each golden case against its float32 "
                 "image, noise drawn in float32 in both (tools/make_bf16_reference.py)",
        "versions": golden_io.versions(cpu=golden_io.cpu_name(),
                                       cpu_flags=golden_io.cpu_flags(("avx512_bf16", "amx_bf16", "avx512f"))),
        "cases": cases,
    }
    golden_io.write_json(out.path(FILE), doc)
    return out.finish()


if __name__ == "__main__":
    sys.exit(main())
