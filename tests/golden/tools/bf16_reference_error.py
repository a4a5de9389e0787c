"""How far diffusers' own UNet lands from its float32 output when run in bfloat16 on the reference stack (PyTorch 1.13,
its own oneDNN), for the golden cases; and whether that PyTorch's bfloat16 convolutions with a partial block of 16
output channels stay at rounding level (libtorch 2.10's do not on some AVX-512 CPUs: see
src/Engine/Models/Common/NarrowConvolution.cs). Prints figures; writes nothing. Quoted in the doc comments of
UNetPrecisionAndLoadingTests and NarrowConvolutionTests.

Run: REF_SRC=<ref sources> /usr/bin/python3 tests/golden/tools/bf16_reference_error.py
(refs: diffusers v0.29.2, see /work/shared/reference-stack/README.md)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

sys.path.insert(0, os.environ.get("REFENV_DIR", "/work/shared/reference-stack"))
import refenv  # noqa: E402,F401  (puts the pinned sources on the path)
import torch  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def unet_bf16_error(case):
    io = load_file(os.path.join(GOLDEN, case, "io.safetensors"))
    context = torch.cat([io["negative_prompt_embeds"], io["prompt_embeds"]])
    labels = io.get("step00_class_labels")
    folder = os.path.join(GOLDEN, case, "model", "unet")
    unet = UNet2DConditionModel.from_pretrained(folder).to(torch.bfloat16).eval()
    with torch.no_grad():
        out = unet(io["step00_unet_input"].bfloat16(), io["step00_timestep"], context.bfloat16(),
                   class_labels=labels).sample.float()
    expected = io["step00_unet_output"]
    diff = (out - expected).abs()
    return diff.max().item(), diff.mean().item(), expected.abs().max().item()


def narrow_conv_error(cin, cout, size):
    torch.manual_seed(1)
    x = torch.randn(2, cin, size, size).bfloat16()
    w = torch.randn(cout, cin, 3, 3).bfloat16()
    b = torch.randn(cout).bfloat16()
    ref = torch.nn.functional.conv2d(x.float(), w.float(), b.float(), padding=1)
    got = torch.nn.functional.conv2d(x, w, b, padding=1).float()
    return ((got - ref).abs().max() / ref.abs().max()).item()


def main():
    print(f"torch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}, CPU {golden_io.cpu_name()}")
    for case in ["txt2img_v", "upscale_x4", "txt2img_eps_dpmpp"]:
        worst, mean, rng = unet_bf16_error(case)
        print(f"{case}: step00 UNet bf16 vs golden fp32: max {worst:.4g}, mean {mean:.4g}, output range {rng:.4g}")
    for cin, cout, size in [(32, 4, 16), (320, 4, 64), (512, 8, 32), (128, 3, 128), (32, 17, 16), (32, 32, 16)]:
        print(f"conv3x3 {cin}->{cout} at {size}^2, bf16 NCHW: max |diff| / range {narrow_conv_error(cin, cout, size):.3g}")


if __name__ == "__main__":
    main()
