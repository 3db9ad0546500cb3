#!/usr/bin/env python3
"""PyTorch CPU reference for `npm run bench`: the same Qwen2.5-VL-shaped model, sizes and timing protocol as
bench/model.ts, written from the HF qwen2_5_vl 4.50 modeling code (eager attention; torch 1.13 has no SDPA).

Text: Qwen2 decoder with GQA (repeat_kv), q/k/v biases, RMSNorm, SwiGLU, rotate-half RoPE (text-only
inputs: the 3 M-RoPE streams are equal, so M-RoPE == 1-D RoPE), tied LM head, HF causal-LM loss.
Vision: patch embed (Conv3d with kernel == stride, written as the equivalent bias-free Linear), 2-D rope,
window permutation (get_window_index), blocks with block-diagonal attention, patch merger (GELU erf).

Usage: python3 bench/torch_ref.py --config bench/configs/small.json --batch 2 --seq 256 --threads 2
Prints one JSON object (the last stdout line).  Shape legend: B batch, T tokens, D hidden, H heads,
Hkv kv heads, Dh head dim, V vocab, N patches, Dv vision width.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class SwiGLU(nn.Module):
    def __init__(self, d, i, bias):
        super().__init__()
        self.gate_proj = nn.Linear(d, i, bias=bias)
        self.up_proj = nn.Linear(d, i, bias=bias)
        self.down_proj = nn.Linear(i, d, bias=bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, self.H, self.Hkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.Dh = D // self.H
        self.q_proj = nn.Linear(D, self.H * self.Dh, bias=True)
        self.k_proj = nn.Linear(D, self.Hkv * self.Dh, bias=True)
        self.v_proj = nn.Linear(D, self.Hkv * self.Dh, bias=True)
        self.o_proj = nn.Linear(self.H * self.Dh, D, bias=False)

    def forward(self, x, cos, sin, mask, past):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.Dh).transpose(1, 2)  # [B, H, T, Dh]
        k = self.k_proj(x).view(B, T, self.Hkv, self.Dh).transpose(1, 2)  # [B, Hkv, T, Dh]
        v = self.v_proj(x).view(B, T, self.Hkv, self.Dh).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        g = self.H // self.Hkv
        kr, vr = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)  # repeat_kv
        scores = q @ kr.transpose(2, 3) / math.sqrt(self.Dh) + mask
        out = F.softmax(scores, dim=-1, dtype=torch.float32) @ vr  # [B, H, T, Dh]
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1)), (k, v)


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = SwiGLU(c["hidden_size"], c["intermediate_size"], bias=False)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask, past=None):
        a, kv = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        h = x + a
        return h + self.mlp(self.post_attention_layernorm(h)), kv


class VisionBlock(nn.Module):
    def __init__(self, v):
        super().__init__()
        Dv, self.Hv = v["hidden_size"], v["num_heads"]
        self.norm1, self.norm2 = RMSNorm(Dv, 1e-6), RMSNorm(Dv, 1e-6)
        self.qkv = nn.Linear(Dv, 3 * Dv, bias=True)
        self.proj = nn.Linear(Dv, Dv, bias=True)
        self.mlp = SwiGLU(Dv, v["intermediate_size"], bias=True)

    def forward(self, x, cos, sin, mask):
        N, Dv = x.shape
        Dh = Dv // self.Hv
        q, k, v = self.qkv(self.norm1(x)).reshape(N, 3, self.Hv, Dh).permute(1, 0, 2, 3).unbind(0)
        c, s = cos.unsqueeze(-2), sin.unsqueeze(-2)  # [N, 1, Dh]
        q, k = q * c + rotate_half(q) * s, k * c + rotate_half(k) * s
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [Hv, N, Dh]
        p = F.softmax(q @ k.transpose(1, 2) / math.sqrt(Dh) + mask, dim=-1, dtype=torch.float32)
        h = x + self.proj((p @ v).transpose(0, 1).reshape(N, Dv))
        return h + self.mlp(self.norm2(h))


def window_index(grid, v):
    """HF get_window_index: merged-token permutation and patch-level cu_window_seqlens."""
    m = v["spatial_merge_size"]
    vw = v["window_size"] // m // v["patch_size"]
    idx, cu, base = [], [0], 0
    for t, h, w in grid:
        lh, lw = h // m, w // m
        index = torch.arange(t * lh * lw).reshape(t, lh, lw)
        ph, pw = vw - lh % vw, vw - lw % vw
        nh, nw = (lh + ph) // vw, (lw + pw) // vw
        padded = F.pad(index, (0, pw, 0, ph), value=-100)
        padded = padded.reshape(t, nh, vw, nw, vw).permute(0, 1, 3, 2, 4).reshape(t, nh * nw, vw, vw)
        seqlens = (padded != -100).sum([2, 3]).reshape(-1)
        flat = padded.reshape(-1)
        idx.append(flat[flat != -100] + base)
        cu.extend((seqlens.cumsum(0) * m * m + cu[-1]).tolist())
        base += t * lh * lw
    return torch.cat(idx), torch.unique_consecutive(torch.tensor(cu))


def block_mask(cu, n):
    """Dense additive block-diagonal mask [n, n] from cu_seqlens (HF eager vision attention)."""
    mask = torch.full((n, n), torch.finfo(torch.float32).min)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        mask[a:b, a:b] = 0
    return mask


class VisionTower(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.v = v
        Dv, P = v["hidden_size"], 3 * v["temporal_patch_size"] * v["patch_size"] ** 2
        self.patch_embed = nn.Linear(P, Dv, bias=False)  # Conv3d, kernel == stride
        self.blocks = nn.ModuleList(VisionBlock(v) for _ in range(v["depth"]))
        Dm = Dv * v["spatial_merge_size"] ** 2
        self.ln_q = RMSNorm(Dv, 1e-6)
        self.mlp0, self.mlp2 = nn.Linear(Dm, Dm), nn.Linear(Dm, v["out_hidden_size"])
        Dh = Dv // v["num_heads"]
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, Dh // 2, 2).float() / (Dh // 2)))

    def rot_pos_emb(self, grid):
        m = self.v["spatial_merge_size"]
        ids = []
        for t, h, w in grid:
            hp = torch.arange(h).unsqueeze(1).expand(h, w).reshape(h // m, m, w // m, m).permute(0, 2, 1, 3)
            wp = torch.arange(w).unsqueeze(0).expand(h, w).reshape(h // m, m, w // m, m).permute(0, 2, 1, 3)
            ids.append(torch.stack([hp.flatten(), wp.flatten()], -1).repeat(t, 1))
        ids = torch.cat(ids)
        full = torch.outer(torch.arange(max(max(h, w) for _, h, w in grid)).float(), self.inv_freq)
        return full[ids].flatten(1)  # [N, Dh/2]

    def forward(self, pixels, grid):
        unit = self.v["spatial_merge_size"] ** 2
        N = pixels.shape[0]
        x = self.patch_embed(pixels)
        widx, cu_win = window_index(grid, self.v)
        x = x.reshape(N // unit, unit, -1)[widx].reshape(N, -1)
        rot = self.rot_pos_emb(grid).reshape(N // unit, unit, -1)[widx].reshape(N, -1)
        emb = torch.cat([rot, rot], -1)
        cos, sin = emb.cos(), emb.sin()
        cu_full = torch.tensor([0] + [h * w for t, h, w in grid for _ in range(t)]).cumsum(0)
        full, win = block_mask(cu_full, N), block_mask(cu_win, N)
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, full if i in self.v["fullatt_block_indexes"] else win)
        merged = self.mlp2(F.gelu(self.mlp0(self.ln_q(x).view(-1, x.shape[1] * unit))))
        return merged[torch.argsort(widx)]


class Qwen2_5_VLRef(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.visual = VisionTower(c["vision_config"])
        Dh = c["hidden_size"] // c["num_attention_heads"]
        self.register_buffer("inv_freq", 1.0 / c["rope_theta"] ** (torch.arange(0, Dh, 2).float() / Dh))
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "norm" in name or "ln_q" in name:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, std=0.02)

    def hidden(self, ids, past=None):
        """ids [B, T] after `past` cached slots -> last hidden [B, T, D], new per-layer (k, v)."""
        B, T = ids.shape
        P = 0 if past is None else past[0][0].shape[2]
        pos = torch.arange(P, P + T).float()
        f = torch.outer(pos, self.inv_freq)
        emb = torch.cat([f, f], -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]  # [1, 1, T, Dh]
        mask = torch.full((T, P + T), torch.finfo(torch.float32).min).triu(P + 1)[None, None]
        x = self.embed_tokens(ids)
        present = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cos, sin, mask, None if past is None else past[i])
            present.append(kv)
        return self.norm(x), present

    def logits(self, h):
        return h @ self.embed_tokens.weight.t()  # tied head

    def loss(self, ids, labels):
        logits = self.logits(self.hidden(ids)[0]).float()
        V = logits.shape[-1]
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)


def median_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), times


def sgemm(n, threads):
    a, b = torch.rand(n, n), torch.rand(n, n)
    ms, _ = median_ms(lambda: a @ b, 2, 10 if n <= 1024 else 4)
    return {"n": n, "ms": ms, "gflops": 2 * n**3 / ms / 1e6, "threads": threads}


def blas_libs():
    try:
        with open("/proc/self/maps") as f:
            return sorted({ln.split()[-1] for ln in f if "blas" in ln.lower() or "lapack" in ln.lower()})
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--name", default="small")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gen-prompt", type=int, default=32)
    ap.add_argument("--gen-new", type=int, default=32)
    ap.add_argument("--gen-batches", default="1,8")
    ap.add_argument("--image", type=int, default=112)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma list of: generate, vision")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with open(a.config) as f:
        c = json.load(f)
    c["mrope_section"] = c.get("rope_scaling", {}).get("mrope_section")
    c["vision_config"].setdefault("in_chans", 3)
    out = {
        "impl": "pytorch",
        "backend": "torch-cpu",
        "config": a.name,
        "threads": a.threads,
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "blasLibs": blas_libs(),
        "sgemm": [sgemm(1024, a.threads), sgemm(2048, a.threads)],
    }
    model = Qwen2_5_VLRef(c)
    text = [p for n, p in model.named_parameters() if not n.startswith("visual.")]
    out["params"] = sum(p.numel() for p in model.parameters())
    B, T, V = a.batch, a.seq, c["vocab_size"]
    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = ids.clone()
    labels[:, : T // 4] = -100  # prompt part ignored, as in SFT

    opt = torch.optim.AdamW(text, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    losses = []

    def sft_step():
        opt.zero_grad(set_to_none=True)
        loss = model.loss(ids, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(text, 1.0)
        opt.step()
        losses.append(loss.item())

    ms, all_ms = median_ms(sft_step, a.warmup, a.repeats)
    out["sft"] = {"ms": ms, "allMs": all_ms, "tokensPerS": B * T / ms * 1e3, "loss0": losses[0], "lossLast": losses[-1]}

    with torch.no_grad():
        ms, all_ms = median_ms(lambda: model.logits(model.hidden(ids)[0]), a.warmup, a.repeats)
    out["forward"] = {"ms": ms, "allMs": all_ms, "tokensPerS": B * T / ms * 1e3}

    skip = set(filter(None, a.skip.split(",")))
    gen = {}
    for gb in [] if "generate" in skip else [int(x) for x in a.gen_batches.split(",")]:
        prompt = torch.randint(0, V, (gb, a.gen_prompt), generator=g)

        def run():
            h, past = model.hidden(prompt)
            nxt = model.logits(h[:, -1:]).argmax(-1)  # [gb, 1]
            for _ in range(a.gen_new - 1):
                h, past = model.hidden(nxt, past)
                nxt = model.logits(h).argmax(-1)
            return nxt

        with torch.no_grad():
            ms, all_ms = median_ms(run, a.warmup, a.repeats)
        gen[str(gb)] = {"ms": ms, "allMs": all_ms, "tokensPerS": gb * a.gen_new / ms * 1e3,
                        "prompt": a.gen_prompt, "newTokens": a.gen_new}
    if gen:
        out["generate"] = gen
    if "vision" in skip:
        out["memory"] = {"peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
        print(json.dumps(out))
        return

    v = c["vision_config"]
    grid = [[1, a.image // v["patch_size"], a.image // v["patch_size"]]]
    N = grid[0][1] * grid[0][2]
    pixels = torch.randn(N, 3 * v["temporal_patch_size"] * v["patch_size"] ** 2, generator=g)
    with torch.no_grad():
        fwd, _ = median_ms(lambda: model.visual(pixels, grid), a.warmup, a.repeats)

    def vis_step():
        model.visual.zero_grad(set_to_none=True)
        model.visual(pixels, grid).pow(2).sum().backward()

    bwd, _ = median_ms(vis_step, a.warmup, a.repeats)
    out["vision"] = {"image": a.image, "patches": N, "forwardMs": fwd, "fwdBwdMs": bwd}
    out["memory"] = {"peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
