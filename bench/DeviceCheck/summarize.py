"""Summarizes a device-check results folder (device-check.sh): golden parity per device/precision, our bench against
diffusers' as a ratio (ours / diffusers: at most 1.0 is the target), and peak GPU memory (nvidia-smi samples, the
largest use seen minus the first sample, which is the idle baseline). Prints plain text."""
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def golden_lines(folder):
    for path in sorted(glob.glob(os.path.join(folder, "golden-*.json"))):
        data = load(path)
        if not data:
            yield f"{os.path.basename(path)}: unreadable"
            continue
        yield f"golden {data['device']} {data['precision']}: {'PASS' if data['pass'] else 'FAIL'}"
        for case in data["cases"]:
            if "worst_diff_over_tolerance" in case:
                detail = (f"{case['tensors_compared']} tensors, worst diff/tolerance {case['worst_diff_over_tolerance']:.3f} "
                          f"({case['worst_tensor']}), image vs expected.png max {case['image_max_levels_vs_expected_png']} levels")
                if case.get("failure"):
                    detail += f", FAILED {case['failure']}"
            else:
                detail = (f"image vs float32 max {case['image_max_levels_vs_float32']} / mean {case['image_mean_levels_vs_float32']:.3f} levels "
                          f"(bound {case['bound_max_levels']:g} / {case['bound_mean_levels']:.2f}, {case.get('bound_source', 'stated')}), "
                          f"vs expected.png max {case['image_max_levels_vs_expected_png']}")
                if "diffusers_max_levels_vs_float32" in case:
                    detail += (f"; diffusers' own loss max {case['diffusers_max_levels_vs_float32']} / mean "
                               f"{case['diffusers_mean_levels_vs_float32']:.3f}")
                if "image_max_levels_vs_diffusers_same_dtype" in case:
                    detail += (f"; vs diffusers' {data['precision']} image max {case['image_max_levels_vs_diffusers_same_dtype']} / mean "
                               f"{case['image_mean_levels_vs_diffusers_same_dtype']:.3f}")
            yield f"  {case['case']:<18} {case['noise']:<6} {'pass' if case['pass'] else 'FAIL'}  {detail}"


def seconds(stage):
    if not isinstance(stage, dict):
        return None
    return stage.get("median_s", stage.get("seconds"))


def peak_mib(folder, name):
    try:
        with open(os.path.join(folder, f"{name}-memory.csv"), encoding="utf-8") as f:
            values = [int(line.strip()) for line in f if line.strip().isdigit()]
    except OSError:
        return None
    return (max(values) - values[0]) if values else None


def bench_lines(folder):
    ours, theirs = load(os.path.join(folder, "bench-ours.json")), load(os.path.join(folder, "bench-diffusers.json"))
    if not ours and not theirs:
        return
    ours_stages = (ours or {}).get("stages", {})
    their_stages = (theirs or {}).get("stages", {})
    yield f"bench float16 on {(theirs or {}).get('device_name', '?')}: stage, ours, diffusers {(theirs or {}).get('diffusers', '?')}, ratio ours/diffusers"
    for name in ["unet512", "unet768", "unet1024", "vae512", "vae768", "vae1024", "vae512_float16", "vae768_float16",
                 "txt2img768"]:
        a, b = seconds(ours_stages.get(name)), seconds(their_stages.get(name))
        ratio = f"{a / b:.2f}" if a and b else "-"
        fa = f"{a:.4f} s" if a is not None else "-"
        fb = f"{b:.4f} s" if b is not None else "-"
        yield f"  {name:<16} {fa:>12} {fb:>12} {ratio:>6}"
    for side, data in (("ours", ours), ("diffusers", theirs)):
        mib = peak_mib(folder, f"bench-{side}")
        if mib is not None:
            yield f"  peak GPU memory ({side}, nvidia-smi): {mib} MiB"
    yield from estimate_lines(ours)
    if theirs:
        for stage, value in their_stages.items():
            if isinstance(value, dict) and "peak_allocated_bytes" in value:
                yield f"  diffusers {stage}: peak allocated {value['peak_allocated_bytes'] / 2**20:.0f} MiB"
        for stage, error in theirs.get("errors", {}).items():
            yield f"  diffusers {stage} ERROR: {error.strip().splitlines()[-1]}"


def estimate_lines(ours):
    """Issue 12's memory estimate on the GPU: what the caching allocator holds above the weights after each stage (the
    largest peak so far) against the largest estimate so far (AllocatorAccount.cs)."""
    for name, stage in (ours or {}).get("stages", {}).items():
        if isinstance(stage, dict) and "allocator_above_weights_bytes" in stage:
            held, estimate = stage["allocator_above_weights_bytes"], stage["largest_estimate_so_far_bytes"]
            yield (f"  memory after {name:<8}: allocator holds {held / 2**30:.3f} GiB above the weights, largest estimate "
                   f"so far {estimate / 2**30:.3f} GiB ({(held / estimate - 1) * 100:+.1f} %)")


def memory_lines(folder, devices):
    """The engine's GPU memory reading (NVIDIA driver API) beside PyTorch's (torch.cuda.mem_get_info), each taken in
    its own process with its own CUDA context: a difference over 5 % of either figure is flagged."""
    ours = (devices or {}).get("gpu_memory", [])
    torch_json = load(os.path.join(folder, "torch-memory.json")) or {}
    theirs = {r["device"]: r for r in torch_json.get("gpu_memory", [])}
    if torch_json.get("problem"):
        yield f"gpu memory, torch's reading: {torch_json['problem']}"
    for reading in ours:
        device = reading["device"]
        if reading.get("problem"):
            yield f"gpu memory {device}: unknown to the engine ({reading['problem']}; {reading['source']})"
            continue
        line = (f"gpu memory {device} ({reading.get('name')}): engine {reading['free_bytes'] / 2**30:.2f} GiB free of "
                f"{reading['total_bytes'] / 2**30:.2f} GiB ({reading['source']})")
        torch_reading = theirs.get(device)
        if torch_reading:
            diffs = [abs(reading[k] - torch_reading[k]) / torch_reading[k] for k in ("free_bytes", "total_bytes")]
            verdict = "MISMATCH > 5 %" if max(diffs) > 0.05 else "agree within 5 %"
            line += (f"; torch {torch_reading['free_bytes'] / 2**30:.2f} GiB free of {torch_reading['total_bytes'] / 2**30:.2f} GiB"
                     f": free differs {diffs[0] * 100:.2f} %, total {diffs[1] * 100:.2f} %: {verdict}")
        else:
            line += "; NO torch reading to compare (torch-memory.json)"
        yield line
        probe = reading.get("probe")
        if probe:
            yield (f"  1 GiB probe: free fell {probe['free_drop_bytes'] / 2**20:.0f} MiB "
                   f"({'sees' if probe['reading_sees_allocation'] else 'DOES NOT SEE'} libtorch's allocation), rose "
                   f"{probe['free_back_after_dispose_bytes'] / 2**20:.0f} MiB after dispose "
                   f"({'kept in libtorch cache, as CudaAllocatorCache assumes' if probe['freed_block_stays_cached'] else 'RETURNED to the driver: CudaAllocatorCache over-counts'})")


def main():
    folder = sys.argv[1]
    devices = load(os.path.join(folder, "devices.json")) or load(os.path.join(folder, "devices-ld-library-path.json"))
    if devices:
        yield_line = f"libtorch {devices['libtorch']['version']} from {devices['libtorch']['folder']}; devices: " + \
            ", ".join(d["device"] for d in devices["devices"])
        print(yield_line)
    for line in memory_lines(folder, devices):
        print(line)
    for line in golden_lines(folder):
        print(line)
    for line in bench_lines(folder):
        print(line)


if __name__ == "__main__":
    main()
