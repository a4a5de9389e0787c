"""Writes tests/golden/bin_weights/model: the img2img case's tiny pipeline saved by diffusers and transformers with
`safe_serialization=False`, i.e. the pickled `diffusion_pytorch_model.bin` / `pytorch_model.bin` files that older
repositories and fine-tunes ship instead of safetensors. Then it loads that folder back with diffusers and runs the
img2img case on it, checking every recorded intermediate against tests/golden/img2img/io.safetensors within the case's
tolerances (make_pipeline_cases.check): the .bin folder is the same model, so the engine must give the golden image
from it too.

Run from the repository root with the reference stack (see make_pipeline_cases.py):
    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_bin_weights.py
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_pipeline_cases as cases  # noqa: E402  (sets up the reference stack)
import diffusers  # noqa: E402

CASE = "img2img"
OUT = os.path.join(cases.GOLDEN, "bin_weights", "model")


def main():
    source = os.path.join(cases.GOLDEN, CASE, "model")
    pipe = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained(source, safety_checker=None)
    shutil.rmtree(OUT, ignore_errors=True)
    pipe.save_pretrained(OUT, safe_serialization=False)
    weights = sorted(os.path.relpath(os.path.join(d, f), OUT) for d, _, fs in os.walk(OUT) for f in fs
                     if f.endswith((".bin", ".safetensors")))
    print("wrote", ", ".join(weights))
    if any(w.endswith(".safetensors") for w in weights):
        sys.exit("save_pretrained wrote safetensors; expected only pickled .bin weights")
    case, tensors = cases.run_case(CASE, model_folder=OUT)
    sys.exit(0 if cases.check(CASE, case, tensors) else 1)


if __name__ == "__main__":
    main()
