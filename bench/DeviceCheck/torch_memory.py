"""PyTorch's view of each GPU's memory (torch.cuda.mem_get_info: the CUDA runtime's cudaMemGetInfo), as JSON on
stdout, for summarize.py to set beside the engine's own reading (the runner's `devices`: the NVIDIA driver API). Each
process reads with its own CUDA context in place, so the two free figures differ by about the difference of two
contexts; the totals must agree. Prints an empty list on a machine without CUDA, and the reason where this Python has
no torch (the CPU rehearsal's machine may not)."""
import json
import sys

try:
    import torch
except ImportError as error:
    print(json.dumps({"gpu_memory": [], "problem": f"this python3 has no torch: {error}"}, indent=2))
    sys.exit(0)

readings = []
for index in range(torch.cuda.device_count()):
    device = f"cuda:{index}"
    torch.zeros(1, device=device)  # the context and the allocator up, as the runner has them when it reads
    free, total = torch.cuda.mem_get_info(index)
    readings.append({"device": device, "name": torch.cuda.get_device_name(index), "free_bytes": free, "total_bytes": total})
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "gpu_memory": readings}, indent=2))
