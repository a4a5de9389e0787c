"""Writes torch.save checkpoints shaped like the files people actually have (PyTorch Lightning-era .ckpt, legacy
non-zip .ckpt, embedding-style .pt) around the weights of a golden tiny model, plus a hostile one.

Run from the repository root with Debian's PyTorch (python3-torch 1.13) and numpy:
    /usr/bin/python3 tests/golden/tools/make_lightning_ckpts.py
Output: tests/golden/ckpt/ (see the README there). Nothing here imports diffusers: the checkpoints are what
torch.save itself writes; the weights are tests/golden/inpaint/single_file.safetensors (ldm keys), read with the
reference stack's safetensors shim, so each full checkpoint gives that case's golden image.
"""
import collections
import io
import os
import sys
import types
import zipfile

import numpy
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, "/work/shared/reference-stack/st_shim")
from safetensors.torch import load_file  # noqa: E402

CASE = "inpaint"
OUT = os.path.join(ROOT, "tests", "golden", "ckpt")


def lightning_module():
    """A stand-in for pytorch_lightning.callbacks.model_checkpoint, so pickle names the class as Lightning does."""
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self):
            self.monitor = None
            self.dirpath = "/fsx/stable-diffusion/logs/checkpoints"

    ModelCheckpoint.__module__ = module.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    for name in ["pytorch_lightning", "pytorch_lightning.callbacks", module.__name__]:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules[module.__name__] = module
    return module


class HiddenCommand:
    """Pickles as os.system(command): what a hostile checkpoint hides in a callback's state."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def lightning_checkpoint(state_dict, callback_state_extra=None):
    lightning = lightning_module()
    callback_state = {
        "monitor": None,
        "best_model_score": None,
        "best_model_path": "/fsx/stable-diffusion/logs/checkpoints/last.ckpt",
        # numpy float64 scalars: numpy.core.multiarray.scalar(numpy.dtype('f8'), bytes via _codecs.encode)
        "current_score": numpy.float64(0.1234567890123),
        "best_k_models": {"/fsx/stable-diffusion/logs/checkpoints/epoch=000005.ckpt": numpy.float64(0.25)},
        "kth_value": numpy.float64(numpy.inf),
        "dirpath": "/fsx/stable-diffusion/logs/checkpoints",
    }
    if callback_state_extra:
        callback_state.update(callback_state_extra)
    return {
        "epoch": 5,
        "global_step": 200000,
        "pytorch-lightning_version": "1.4.2",
        # Lightning < 1.5 keys callback states by the callback's class itself
        "callbacks": {lightning.ModelCheckpoint: callback_state},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": numpy.float64(1e-4), "params": [0, 1, 2]}]}],
        "lr_schedulers": [],
        "hparams_ignored": {"first_stage_model", "cond_stage_model"},  # a set: __builtin__.set under protocol 2
        "state_dict": collections.OrderedDict(state_dict),
    }


def add_byteorder(path):
    """torch >= 2.1 writes <root>/byteorder ('little'); 1.13 does not, so add it as newer torch would."""
    with zipfile.ZipFile(path) as z:
        root = z.namelist()[0].split("/")[0]
        assert root + "/byteorder" not in z.namelist()
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as z:
        z.writestr(root + "/byteorder", "little")


def embedding_pt():
    """A textual-inversion-style .pt: ParameterDict of nn.Parameters (_rebuild_parameter), plus a set."""
    generator = torch.Generator().manual_seed(12)
    params = torch.nn.ParameterDict({"*": torch.nn.Parameter(torch.randn(2, 8, generator=generator))})
    return {
        "string_to_token": {"*": 265},
        "string_to_param": params,
        "name": "tiny-embedding",
        "step": 500,
        "sd_checkpoint_name": "tiny",
        "tags": {"style", "tiny"},
        "state_dict": collections.OrderedDict(
            {"emb_params": torch.nn.Parameter(torch.randn(2, 8, generator=generator), requires_grad=False)}),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    state_dict = load_file(os.path.join(ROOT, "tests", "golden", CASE, "single_file.safetensors"))
    state_dict = {k: state_dict[k] for k in sorted(state_dict)}

    path = os.path.join(OUT, "lightning.ckpt")
    torch.save(lightning_checkpoint(state_dict), path)
    add_byteorder(path)

    torch.save(lightning_checkpoint(state_dict), os.path.join(OUT, "lightning-legacy.ckpt"),
               _use_new_zipfile_serialization=False)

    # The hostile one: real weights, and os.system in the callback's state. Small: the refusal comes first.
    small = {k: v for k, v in list(state_dict.items())[:4]}
    hostile = lightning_checkpoint(small, {"on_load": HiddenCommand("touch /tmp/psstablediffusion-pwned")})
    torch.save(hostile, os.path.join(OUT, "lightning-hidden-os-system.ckpt"))

    torch.save(embedding_pt(), os.path.join(OUT, "embedding.pt"))
    torch.save(embedding_pt(), os.path.join(OUT, "embedding-legacy.pt"), _use_new_zipfile_serialization=False)

    # Check each with torch itself (the hostile one only with weights_only, which must refuse it).
    for name in ["lightning.ckpt", "lightning-legacy.ckpt"]:
        loaded = torch.load(os.path.join(OUT, name))
        assert all(torch.equal(loaded["state_dict"][k], v) for k, v in state_dict.items()), name
        assert isinstance(loaded["callbacks"][sys.modules["pytorch_lightning.callbacks.model_checkpoint"].ModelCheckpoint]
                          ["current_score"], numpy.float64)
    for name in ["embedding.pt", "embedding-legacy.pt"]:
        assert torch.load(os.path.join(OUT, name))["string_to_param"]["*"].shape == (2, 8)
    try:
        torch.load(os.path.join(OUT, "lightning-hidden-os-system.ckpt"), weights_only=True)
        raise SystemExit("torch's weights_only loader accepted the hostile checkpoint")
    except pickle_error() as e:
        print("torch weights_only refuses the hostile file:", str(e).splitlines()[0][:120])
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")


def pickle_error():
    import pickle
    return (pickle.UnpicklingError, RuntimeError)


if __name__ == "__main__":
    main()
