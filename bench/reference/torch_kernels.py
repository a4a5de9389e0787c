"""Same-machine reference for bench/: the SD 2.1 VAE decoder, the SD 2.1 UNet and a few kernels in plain PyTorch.

Run with the distribution's PyTorch (Debian 12: `apt-get install python3-torch`, i.e. PyTorch 1.13.1, the stack of
../shared/notes/perf-anchors.md) to compare ratios on the machine at hand:

    python3 bench/reference/torch_kernels.py [--work vae|unet] [--size 512] [--threads 2] [--repeats 3] [--channels-last]

The decoder follows diffusers' AutoencoderKL Decoder for the SD 2.x VAE (block_out_channels 128/256/512/512,
2 + 1 resnets per up block, GroupNorm(32, eps 1e-6), SiLU, one single-head attention in the mid block, nearest x2
upsampling). The UNet follows diffusers' UNet2DConditionModel with the SD 2.1 768-v config (320/640/1280/1280, heads
5/10/20/20 of 64, cross-attention 1024, linear projections, GEGLU) and diffusers 0.27's default attention processor on
PyTorch 1.13 (baddbmm, softmax, bmm: 1.13 has no SDPA); one call on the CFG batch of 2. Weights are random (PyTorch's
default init): only time and memory are measured. Prints one JSON object.
"""
import argparse
import json
import math
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


class ResnetT(nn.Module):
    """ResnetBlock2D with a time embedding (GroupNorm eps 1e-5 in the UNet)."""

    def __init__(self, cin, cout, temb=1280):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(32, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.shortcut is None else self.shortcut(x))


class Attn(nn.Module):
    def __init__(self, dim, heads, context_dim=None):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def split(self, t):
        b, n, c = t.shape
        return t.reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3).reshape(b * self.heads, n, c // self.heads)

    def forward(self, x, context=None):
        b, n, c = x.shape
        q, k, v = self.split(self.to_q(x)), self.split(self.to_k(context if context is not None else x)), \
            self.split(self.to_v(context if context is not None else x))
        scores = torch.baddbmm(torch.empty(q.shape[0], n, k.shape[1]), q, k.transpose(1, 2), beta=0, alpha=self.scale)
        out = torch.bmm(scores.softmax(dim=-1), v)
        out = out.reshape(b, self.heads, n, c // self.heads).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.to_out(out)


class Transformer2D(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.norm = nn.GroupNorm(32, c, eps=1e-6)
        self.proj_in, self.proj_out = nn.Linear(c, c), nn.Linear(c, c)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn1, self.attn2 = Attn(c, heads), Attn(c, heads, 1024)
        self.geglu = nn.Linear(c, 8 * c)
        self.ff_out = nn.Linear(4 * c, c)

    def forward(self, x, context):
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c))
        t = self.attn1(self.norm1(t)) + t
        t = self.attn2(self.norm2(t), context) + t
        a, gate = self.geglu(self.norm3(t)).chunk(2, dim=-1)
        t = self.ff_out(a * F.gelu(gate)) + t
        return self.proj_out(t).reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous() + x


class UNet(nn.Module):
    def __init__(self, channels=(320, 640, 1280, 1280), heads=(5, 10, 20, 20)):
        super().__init__()
        self.conv_in = nn.Conv2d(4, channels[0], 3, padding=1)
        self.time1, self.time2 = nn.Linear(channels[0], 1280), nn.Linear(1280, 1280)
        self.downs, skips, cin = nn.ModuleList(), [channels[0]], channels[0]
        for i, (cout, nh) in enumerate(zip(channels, heads)):
            block = nn.Module()
            block.resnets = nn.ModuleList([ResnetT(cin if j == 0 else cout, cout) for j in range(2)])
            block.attns = nn.ModuleList([Transformer2D(cout, nh) for _ in range(2)]) if i < 3 else None
            block.down = nn.Conv2d(cout, cout, 3, stride=2, padding=1) if i < 3 else None
            skips += [cout, cout] + ([cout] if i < 3 else [])
            self.downs.append(block)
            cin = cout
        self.mid1, self.mid_attn, self.mid2 = ResnetT(1280, 1280), Transformer2D(1280, heads[-1]), ResnetT(1280, 1280)
        self.ups, rev, rev_heads, prev = nn.ModuleList(), list(reversed(channels)), list(reversed(heads)), channels[-1]
        for i, (cout, nh) in enumerate(zip(rev, rev_heads)):
            block = nn.Module()
            block.resnets = nn.ModuleList([ResnetT((prev if j == 0 else cout) + skips.pop(), cout) for j in range(3)])
            block.attns = nn.ModuleList([Transformer2D(cout, nh) for _ in range(3)]) if i > 0 else None
            block.up = nn.Conv2d(cout, cout, 3, padding=1) if i < 3 else None
            self.ups.append(block)
            prev = cout
        self.norm_out, self.conv_out = nn.GroupNorm(32, channels[0], eps=1e-5), nn.Conv2d(channels[0], 4, 3, padding=1)

    def forward(self, sample, t, context):
        half = 160
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        emb = self.time2(F.silu(self.time1(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))))
        h = self.conv_in(sample)
        states = [h]
        for block in self.downs:
            for j, resnet in enumerate(block.resnets):
                h = resnet(h, emb)
                if block.attns is not None:
                    h = block.attns[j](h, context)
                states.append(h)
            if block.down is not None:
                h = block.down(h)
                states.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb), context), emb)
        for block in self.ups:
            for j, resnet in enumerate(block.resnets):
                h = resnet(torch.cat([h, states.pop()], dim=1), emb)
                if block.attns is not None:
                    h = block.attns[j](h, context)
            if block.up is not None:
                h = block.up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
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
    parser.add_argument("--work", choices=("vae", "unet"), default="vae")
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
        if args.work == "unet":
            unet = UNet().eval()
            sample = torch.randn(2, 4, args.size // 8, args.size // 8)
            timestep = torch.tensor([999.0, 999.0])
            context = torch.randn(2, 77, 1024)
            if args.channels_last:
                unet = unet.to(memory_format=torch.channels_last)
                sample = sample.contiguous(memory_format=torch.channels_last)
            out["parameters"] = sum(p.numel() for p in unet.parameters())
            out[f"unet_step_{args.size}_s"] = timed(lambda: unet(sample, timestep, context), args.repeats)
        else:
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
