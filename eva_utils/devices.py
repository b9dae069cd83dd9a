"""Which device a run uses, which training precision that hardware computes natively, and
how a run names the machine it ran on.

Its own module because both the data layer (tensors go straight to the training device)
and the engine need it, and neither should import the other.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

import torch


def pick_device(device: Optional[str | torch.device] = None) -> torch.device:
    """``device`` if given, else cuda, then mps, then cpu."""
    if device is not None and str(device) != "auto":
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


#: Autocast dtypes by name; "fp32" means no autocast.
PRECISIONS: dict[str, Optional[torch.dtype]] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX).

    Why not ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``: it answers True on any
    AVX-512 CPU, where bf16 is emulated and slower than fp32.
    """
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.5
    if capabilities is not None:
        caps = capabilities()
        return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    try:  # older torch on Linux: the kernel's list of CPU flags
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def auto_precision(device) -> str:
    """The training precision this hardware computes natively.

    * CUDA with compute capability >= 8.0 (A100, L4, RTX 30xx and newer): ``"bf16"``.
    * Older CUDA GPUs (T4 7.5, V100 7.0, P100 6.0): ``"fp16"`` autocast with a gradient
      scaler. They have no bf16 units (``torch.cuda.is_bf16_supported()`` says True
      there only because it counts emulation), but fp16 tensor cores or fp16 math.
    * A CPU with AVX-512 BF16 or AMX: ``"bf16"``; MPS and every other CPU: ``"fp32"``.

    Evaluation is always fp32 (:func:`evaluate`), whatever the training precision.
    """
    device = torch.device(device)
    if device.type == "cuda":
        major, _minor = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16" if major >= 6 else "fp32"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def device_description(device) -> str:
    """The device as a run's header and Results name it: ``GPU <name>``, or ``CPU (<arch>, N threads)``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else what :mod:`platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> dict:
    """What a saved history records of the machine, so a timing or a last digit can be traced to it:
    the CPU, its cores, torch's threads and version, and whether bf16 is native."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "native_bf16": cpu_has_native_bf16(), "torch": str(torch.__version__),
            "python": platform.python_version()}  # plain str: a checkpoint holding it loads with weights_only
