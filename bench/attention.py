"""Speed of the attention core against torch's own modules, as ratios measured in one run.

B=32, T=128, d=256, H=8 on the CPU. Prints `name: value` lines. Goal: our weights-returning
MultiHeadAttention within 1.5x of nn.MultiheadAttention(need_weights=True).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from explorer.attention import MultiHeadAttention, attend  # noqa: E402

B, T, D, H = 32, 128, 256, 8


def median_times(functions: dict, repeats: int = 21, warmup: int = 3) -> dict:
    """Median seconds per call of each function, measured round-robin so machine load hits all alike."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, T, D // H) for _ in range(3))
    x = torch.randn(B, T, D)
    ours = MultiHeadAttention(D, H).eval()
    theirs = torch.nn.MultiheadAttention(D, H, batch_first=True).eval()
    with torch.no_grad():
        t = median_times({
            "attend": lambda: attend(q, k, v),
            "sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
            "ours": lambda: ours(x),
            "torch_weights": lambda: theirs(x, x, x, need_weights=True, average_attn_weights=False),
            "torch_averaged": lambda: theirs(x, x, x, need_weights=True),
            "torch_fast": lambda: theirs(x, x, x, need_weights=False),
        })
    t_attend, t_sdpa, t_ours = t["attend"], t["sdpa"], t["ours"]
    t_torch_weights, t_torch_averaged, t_torch_fast = t["torch_weights"], t["torch_averaged"], t["torch_fast"]
    print(f"shape: B={B} T={T} d={D} H={H}, threads={torch.get_num_threads()}")
    print(f"attend_ms: {t_attend * 1e3:.2f}")
    print(f"sdpa_ms: {t_sdpa * 1e3:.2f}")
    print(f"attend_vs_sdpa_ratio: {t_attend / t_sdpa:.2f}")
    print(f"mha_ours_with_weights_ms: {t_ours * 1e3:.2f}")
    print(f"mha_torch_need_weights_per_head_ms: {t_torch_weights * 1e3:.2f}")
    print(f"mha_torch_need_weights_averaged_ms: {t_torch_averaged * 1e3:.2f}")
    print(f"mha_torch_no_weights_ms: {t_torch_fast * 1e3:.2f}")
    print(f"mha_ours_vs_torch_need_weights_ratio: {t_ours / t_torch_averaged:.2f} (goal <= 1.5)")
    print(f"mha_ours_vs_torch_per_head_weights_ratio: {t_ours / t_torch_weights:.2f}")
    print(f"mha_ours_vs_torch_no_weights_ratio: {t_ours / t_torch_fast:.2f}")


if __name__ == "__main__":
    main()
