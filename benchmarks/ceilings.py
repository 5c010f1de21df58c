"""Measured ceilings on this GPU (METHOD.md): copy bandwidth, bf16 / tf32 GEMM rate, and the
cuBLAS time of the per-step recurrent product at each bench shape (the latency floor)."""
import json
import os

import torch

from sparsetrain.bench.measure import median_cuda_ms



out = {}
src = torch.randn(256 * 2**20, device="cuda")  # 1 GiB
dst = torch.empty_like(src)
ms = median_cuda_ms(lambda: dst.copy_(src))
out["copy_TBps"] = 2 * src.numel() * 4 / ms / 1e9
for dtype, name in ((torch.bfloat16, "bf16"), (torch.float32, "tf32")):
    torch.backends.cuda.matmul.allow_tf32 = True
    a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    ms = median_cuda_ms(lambda: a @ a, repeats=10)
    out[f"gemm_{name}_TFLOPs"] = 2 * 8192**3 / ms / 1e9
for shape, (hidden, batch) in {"ptb": (512, 64), "large": (1024, 128), "xl": (2048, 256)}.items():
    s = torch.randn(batch, 4 * hidden, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4 * hidden, hidden, device="cuda", dtype=torch.bfloat16)
    out[f"step_gemm_{shape}_bf16_us"] = 1000 * median_cuda_ms(lambda: s @ w, repeats=50)
print(json.dumps(out, indent=1))
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "ceilings.json"), "w"), indent=1)
