"""Where int8 weights stop paying: PyTorch's int8 weight kernel (bf16 and fp32 activations) against the float
GEMM, by the number of rows, on SmolLM2's weight shapes. assistant/int8.py's INT8_MAX_ROWS comes from this.

    .venv/bin/python -m benchmarks.int8_crossover      # about a minute on 2 cores; run it on quiet cores
"""
from __future__ import annotations

import time

import torch

SHAPES = ((1536, 576), (576, 1536), (49152, 576))  # gate/up rows, down rows, the tied text head
ROWS = (1, 2, 4, 8, 16, 32, 64, 128)


def median_seconds(run, repeats: int = 20) -> float:
    run()  # warm-up: the first call picks kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    torch.manual_seed(0)
    int8_mm = torch.ops.aten._weight_int8pack_mm
    for out_features, in_features in SHAPES:
        weight = torch.randn(out_features, in_features)
        values = torch.randint(-127, 127, (out_features, in_features), dtype=torch.int8)
        scales = torch.rand(out_features)
        for rows in ROWS:
            x = torch.randn(rows, in_features)
            fp32 = median_seconds(lambda: x @ weight.T)
            int8_bf16 = median_seconds(lambda: int8_mm(x.bfloat16(), values, scales.bfloat16()))
            int8_fp32 = median_seconds(lambda: int8_mm(x, values, scales), 5 if rows > 8 else 20)
            print(f"{out_features} x {in_features}, {rows:3d} rows: fp32 GEMM {fp32 * 1e3:8.3f} ms, int8 with bf16 "
                  f"activations {int8_bf16 * 1e3:8.3f} ms, with fp32 activations {int8_fp32 * 1e3:8.3f} ms",
                  flush=True)


if __name__ == "__main__":
    main()
