"""Writes tests/golden/activations.safetensors: every activation diffusers 0.29.2's `get_activation` accepts (the
names a config's `act_fn` may hold) applied by the reference to one float32 input.

Reference stack: diffusers v0.29.2 sources (see ../../../shared/reference-stack, or REF_SRC set up by its setup.sh)
on Debian's python3-torch. Run from the repository root:

    REF_SRC=/work/refsrc /usr/bin/python3 tests/golden/tools/make_activations.py [--write]

Tensors (all float32, shape [1201]):
- x: -100 to 100 in steps of 0.5 (past the softplus threshold 20 and past float32 exp overflow at ~88.7), then 800
  standard normal draws times 4 (torch.Generator manual_seed(0)), where the curves bend.
- silu, swish, mish, gelu, relu: get_activation(name)(x).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

sys.path.insert(0, os.environ.get("REFERENCE_STACK", "/work/shared/reference-stack"))
import refenv  # noqa: E402,F401  (puts the pinned diffusers sources on the path)

import torch  # noqa: E402
from diffusers.models.activations import get_activation  # noqa: E402

NAMES = ["silu", "swish", "mish", "gelu", "relu"]
FILE = "activations.safetensors"


def main():
    args = golden_io.parse_args(__doc__.splitlines()[0])
    out = golden_io.Output(args, [FILE])
    generator = torch.Generator("cpu").manual_seed(0)
    x = torch.cat([torch.linspace(-100, 100, 401), torch.randn(800, generator=generator) * 4]).to(torch.float32)
    tensors = {"x": x.contiguous()}
    with torch.no_grad():
        for name in NAMES:
            tensors[name] = get_activation(name)(x.clone()).contiguous()
    golden_io.save_tensors(out.path(FILE), tensors)
    return out.finish()


if __name__ == "__main__":
    sys.exit(main())
