"""The autocast precision of a training run: ``train.amp`` on the run's device.

``auto`` (the default) keeps the long-standing choice: float16 autocast on CUDA, float32 on a
CPU. ``true`` also turns on bfloat16 autocast on a CPU; ``false`` is float32 everywhere. The
parameters, the optimiser state and the loss stay float32 in every case.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

import torch

AmpSetting = Union[bool, Literal["auto"]]


def native_cpu_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere it is converted to float32."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def autocast_dtype(amp: AmpSetting, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``train.amp`` on ``device``, or None for float32."""
    if amp is False:
        return None
    if device.type == "cuda":
        return torch.float16
    if amp == "auto":
        return None
    if not native_cpu_bfloat16():
        # A warning, not an error: the numbers are those of a native bfloat16 CPU, only slower.
        print("warning: train.amp=true: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so bfloat16 "
              "autocast is emulated and slower than float32 (benchmarks/bench_similarity.py measures it); "
              "set train.amp=auto for float32")
    return torch.bfloat16


def grad_scaler(dtype: Optional[torch.dtype], device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for float16 only: bfloat16 has float32's exponent range, so its gradients do not underflow."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
