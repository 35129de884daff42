"""Mixed precision: which precision a run trains in, and the one context its networks run under.

bf16 is the standard mixed precision: torch.autocast runs the networks' matmuls and convolutions in
bfloat16 while parameters, gradients and optimiser state stay float32, and the networks return
float32 (networks.py), so everything that needs the range or the precision (the minibatch
aggregate-density estimator, entropies, KLs, BCE, the total correlation, VAT's KL and its
finite-difference direction) computes in float32."""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path

import torch

# CPU units that run bf16 matmuls several times faster than fp32 (Intel AMX, AVX512-BF16); without
# them bf16 runs through fallback kernels, 7-20x slower than fp32 on an AVX2 CPU (docs/benchmarks.md, "Precision").
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpuinfo_field(name: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    """The first value of a /proc/cpuinfo field ("" where it cannot be read: not Linux)."""
    try:
        lines = Path(cpuinfo).read_text().splitlines()
    except OSError:
        return ""
    return next((line.partition(":")[2].strip() for line in lines if line.partition(":")[0].strip() == name), "")


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """This CPU's feature flags, from /proc/cpuinfo (none where it cannot be read)."""
    return frozenset(cpuinfo_field("flags", cpuinfo).split())


@functools.cache
def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor() (not Linux)."""
    return cpuinfo_field("model name", cpuinfo) or platform.processor() or "unknown CPU"


def hardware(device: torch.device) -> str:
    """What a run trains on, as metrics.json's training_hardware records it: the GPU's name, or the CPU's model
    and the vector instructions PyTorch's kernels use. Float results depend on it (kernels for AVX2 and AVX512
    sum in different orders), so a run reproduces bit for bit on the same kind only."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()}"


# Each width of PyTorch's CPU kernels, as torch.backends.cpu.get_cpu_capability() names it, and the
# environment that keeps ATen, MKL (conditional numerical reproducibility) and oneDNN to it: each library
# dispatches on its own and reads these once, when the process starts using it.
CPU_CAPABILITY_ENV = {
    "DEFAULT": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "AVX512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}


def cpu_maker(model: str) -> str | None:
    """"AMD" or "Intel" where a CPU's model name (or a training_hardware) says which, else None."""
    return next((maker for maker in ("AMD", "Intel") if maker in model), None)


def recorded_capability(training_hardware: str | None) -> str | None:
    """The kernel width a run's training_hardware names ("AMD EPYC, AVX2" -> "AVX2"); None for a GPU or a
    run that did not record it."""
    width = (training_hardware or "").rpartition(", ")[2]
    return width if width in CPU_CAPABILITY_ENV else None


def choose_precision(asked: str, device: torch.device, flags: frozenset[str] | None = None,
                     cuda_bf16: bool | None = None) -> tuple[str, str]:
    """(precision, why): `asked` itself unless it is auto; auto is bf16 on a CUDA device that runs bf16
    natively or a CPU with one of BF16_CPU_FLAGS, fp32 elsewhere. flags and cuda_bf16 default to
    this machine's (given in tests)."""
    if asked != "auto":
        return asked, "asked for"
    if device.type == "cuda":
        if cuda_bf16 is None:
            cuda_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        return ("bf16", "auto: the GPU runs bf16") if cuda_bf16 else ("fp32", "auto: the GPU has no native bf16")
    units = [flag for flag in BF16_CPU_FLAGS if flag in (cpu_flags() if flags is None else flags)]
    if units:
        return "bf16", f"auto: this CPU has {' and '.join(units)}"
    return "fp32", "auto: this CPU has neither AMX nor AVX512-BF16"


def autocast(precision: str, device: torch.device):
    """The context the networks run under: bf16 autocast, or nothing for fp32 (auto is chosen first)."""
    if choose_precision(precision, device)[0] == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
