#!/usr/bin/env bash
# Prepares what the GPU device check carries (run here, on a machine with dotnet and the mirrors; see README.md):
#   out/device-check/runner.tar.xz        the runner, published self-contained for linux-x64 with no libtorch
#   out/device-check/torchsharp-native.tar.xz   TorchSharp's src/Native at v0.107.0 (never committed here)
#   out/device-check/diffusers.tar.xz     diffusers 0.29.2's src/ (the reference timing and the float16 reference)
#   out/device-check/transformers.tar.xz  what diffusers_golden.py needs of transformers (the v4.40 branch point) and
#                                         huggingface_hub 0.24.6, the reference stack's versions (~1 MB)
#   out/device-check/golden.tar.xz        the six pipeline cases of tests/golden the parity check reads (~28 MB)
# Then run the check on the device machine with
#   bash bench/DeviceCheck/device-check.sh
# (the run tool's carry: out/device-check). The golden cases travel in the bundle because the whole tests/golden
# (about 118 MB) is more than the device machine's 64 MiB transfer: see README.md.
#
# Environment: TORCHSHARP_GIT (a TorchSharp git dir; default /work/.mirror/dotnet+TorchSharp/repo), TORCHSHARP_REF
# (default v0.107.0, else the mirror's commit c20b6a1c, whose exported functions match the 0.107.0 package's
# LibTorchSharp: see README.md), DIFFUSERS_GIT (default /work/.mirror/huggingface+diffusers/repo), TRANSFORMERS_GIT
# and TRANSFORMERS_REF (default the xyliu-cs/transformers-4.44.0 mirror at 5728b5ad), HUB_GIT (huggingface_hub).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$root/out/device-check"
stage="$out/stage"
rm -rf "$stage" && mkdir -p "$stage"

torchsharp_git="${TORCHSHARP_GIT:-/work/.mirror/dotnet+TorchSharp/repo}"
torchsharp_ref="${TORCHSHARP_REF:-}"
if [ -z "$torchsharp_ref" ]; then
    if git -C "$torchsharp_git" rev-parse -q --verify v0.107.0^{commit} >/dev/null; then torchsharp_ref=v0.107.0; else torchsharp_ref=c20b6a1c; fi
fi
diffusers_git="${DIFFUSERS_GIT:-/work/.mirror/huggingface+diffusers/repo}"
transformers_git="${TRANSFORMERS_GIT:-/work/.mirror/xyliu-cs+transformers-4.44.0/repo}"
transformers_ref="${TRANSFORMERS_REF:-5728b5ad0071be8fa062f8b72c1345343d9b1a48}"
hub_git="${HUB_GIT:-/work/.mirror/huggingface+huggingface_hub/repo}"

echo "==> publishing the runner (linux-x64, self-contained, no libtorch)" >&2
dotnet publish "$root/bench/DeviceCheck/PSStableDiffusion.DeviceCheck.csproj" -c Release -r linux-x64 --self-contained true \
    -p:SDNatives=external -o "$stage/runner" -nologo -v q
test -x "$stage/runner/PSStableDiffusion.DeviceCheck"
# Room in the device's 64 MiB transfer (see README.md): the runtime's crash-dump and debugger libraries and its two
# alternative garbage collectors are loaded only when a debugger attaches, a dump is taken or DOTNET_GCName asks,
# none of which the check does; without them, and with xz -9e, the runner is about 2.3 MB smaller.
rm -f "$stage/runner/"{createdump,libmscordaccore.so,libmscordbi.so,libclrgc.so,libclrgcexp.so}
tar -C "$stage" -c runner | xz -9e -T2 > "$out/runner.tar.xz"

echo "==> TorchSharp src/Native at $torchsharp_ref" >&2
git -C "$torchsharp_git" archive "$torchsharp_ref" src/Native | xz -6 > "$out/torchsharp-native.tar.xz"
echo "$torchsharp_ref $(git -C "$torchsharp_git" rev-parse "$torchsharp_ref^{commit}")" > "$out/torchsharp-ref.txt"

echo "==> diffusers v0.29.2 src/" >&2
git -C "$diffusers_git" archive v0.29.2 src/diffusers | xz -6 > "$out/diffusers.tar.xz"

# diffusers_golden.py runs whole pipelines, so it needs transformers (CLIP) and huggingface_hub as the reference stack
# pins them: the GPU machine's transformers 5.x no longer has the classes diffusers 0.29.2 imports (DPTFeatureExtractor)
# and its huggingface_hub 1.x is outside transformers 4.40's range. Only what the six cases import travels: every
# module outside transformers/models, each model's __init__.py (models/__init__.py imports them all), and the clip,
# dpt, bit and auto models (~0.8 MB); then huggingface_hub's src (~0.2 MB). The dist-info METADATA files make
# importlib.metadata report these versions ahead of the machine's own (PYTHONPATH comes first).
echo "==> transformers ($transformers_ref, the v4.40 branch point) subset and huggingface_hub v0.24.6" >&2
reference="$stage/reference"
mkdir -p "$reference"
git -C "$transformers_git" archive "$transformers_ref" src/transformers | tar -x -C "$reference"
( cd "$reference" && find src/transformers -path src/transformers/models -prune -o -type f -name '*.py' -print &&
  find src/transformers/models -maxdepth 2 -name "__init__.py" && find src/transformers/models/deprecated -maxdepth 1 -name "*.py" &&
  find src/transformers/models/{clip,dpt,bit,auto} -name '*.py' ) | sort -u > "$stage/transformers-files.txt"
git -C "$hub_git" archive v0.24.6 src/huggingface_hub | tar -x -C "$reference"
for pinned in transformers:4.40.0.dev0 huggingface_hub:0.24.6; do
    name="${pinned%%:*}" version="${pinned#*:}"
    mkdir -p "$reference/src/$name-$version.dist-info"
    printf "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" "$name" "$version" > "$reference/src/$name-$version.dist-info/METADATA"
    echo "src/$name-$version.dist-info/METADATA" >> "$stage/transformers-files.txt"
done
( cd "$reference" && find src/huggingface_hub -type f ) >> "$stage/transformers-files.txt"
tar -C "$reference" -c -T "$stage/transformers-files.txt" | xz -9e > "$out/transformers.tar.xz"

echo "==> the six golden pipeline cases" >&2
cases="txt2img_v txt2img_eps_dpmpp img2img inpaint depth2img upscale_x4"
files=()
for c in $cases; do
    files+=("tests/golden/$c/model" "tests/golden/$c/io.safetensors" "tests/golden/$c/case.json")
    for png in "$root/tests/golden/$c"/*.png; do files+=("tests/golden/$c/$(basename "$png")"); done
done
tar -C "$root" -c "${files[@]}" | xz -9 -T2 > "$out/golden.tar.xz"

rm -rf "$stage"
ls -l "$out" >&2
du -ch "$out"/*.tar.xz | tail -1 >&2
