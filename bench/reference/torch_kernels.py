"""Same-machine reference for bench/: the SD 2.1 VAE decoder and a few kernels in plain PyTorch.

Run with the distribution's PyTorch (Debian 12: `apt-get install python3-torch`, i.e. PyTorch 1.13.1, the stack of
../shared/notes/perf-anchors.md) to compare ratios on the machine at hand:

    python3 bench/reference/torch_kernels.py [--size 512] [--threads 2] [--repeats 3] [--channels-last]

The decoder follows diffusers' AutoencoderKL Decoder for the SD 2.x VAE (block_out_channels 128/256/512/512,
2 + 1 resnets per up block, GroupNorm(32, eps 1e-6), SiLU, one single-head attention in the mid block, nearest x2
upsampling). Weights are random: only time and memory are measured. Prints one JSON object.
"""
import argparse
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Resnet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(32, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.shortcut is None else self.shortcut(x))


class MidAttention(nn.Module):
    """diffusers 0.27 AttnProcessor (no SDPA in PyTorch 1.13): baddbmm, softmax, bmm."""

    def __init__(self, c):
        super().__init__()
        self.group_norm = nn.GroupNorm(32, c, eps=1e-6)
        self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(c, c) for _ in range(4))
        self.scale = c ** -0.5

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)  # [B, HW, C]
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        scores = torch.baddbmm(torch.empty(b, h * w, h * w), q, k.transpose(1, 2), beta=0, alpha=self.scale)
        out = torch.bmm(scores.softmax(dim=-1), v)
        out = self.to_out(out).transpose(1, 2).reshape(b, c, h, w)
        return out + x


class Decoder(nn.Module):
    def __init__(self, channels=(128, 256, 512, 512), latent=4):
        super().__init__()
        rev = list(reversed(channels))
        self.conv_in = nn.Conv2d(latent, rev[0], 3, padding=1)
        self.mid = nn.ModuleList([Resnet(rev[0], rev[0]), MidAttention(rev[0]), Resnet(rev[0], rev[0])])
        self.ups = nn.ModuleList()
        cin = rev[0]
        for i, cout in enumerate(rev):
            block = nn.ModuleList([Resnet(cin if j == 0 else cout, cout) for j in range(3)])
            block.upsample = nn.Conv2d(cout, cout, 3, padding=1) if i < len(rev) - 1 else None
            self.ups.append(block)
            cin = cout
        self.norm_out = nn.GroupNorm(32, rev[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(rev[-1], 3, 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        for layer in self.mid:
            h = layer(h)
        for block in self.ups:
            for resnet in block:
                h = resnet(h)
            if block.upsample is not None:
                h = block.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "threads": args.threads}
    with torch.no_grad():
        a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
        out["matmul_4096_gflops"] = 2 * 4096 ** 3 / timed(lambda: torch.matmul(a, b), 5) / 1e9
        del a, b
        x, w = torch.randn(1, 128, 512, 512), torch.randn(128, 128, 3, 3)
        out["conv3x3_128_512sq_gflops"] = 2 * 128 * 128 * 9 * 512 * 512 / timed(lambda: F.conv2d(x, w, padding=1), 3) / 1e9
        del x, w
        decoder = Decoder().eval()
        z = torch.randn(1, 4, args.size // 8, args.size // 8)
        if args.channels_last:
            decoder = decoder.to(memory_format=torch.channels_last)
            z = z.contiguous(memory_format=torch.channels_last)
        out[f"vae_decode_{args.size}_s"] = timed(lambda: decoder(z), args.repeats)
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1048576
    print(json.dumps(out))


if __name__ == "__main__":
    main()
