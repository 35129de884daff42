"""Mixed precision: auto's choice on given hardware, bf16 where the networks compute and float32 everywhere else."""

import numpy as np
import pytest
import torch

from imae import IMAE
from imae.config import TrainConfig
from imae.networks import HybridAutoencoder
from imae.objectives import build_objective
from imae.precision import autocast, choose_precision, cpu_flags, cpu_model, recorded_capability
from imae.training import build_optimizer, forward_pass, train_step

CPU = torch.device("cpu")
# Flags of the CPUs this project has met: an AMD EPYC with AVX2 only, and a Sapphire Rapids Xeon.
EPYC = frozenset("fpu sse2 avx avx2 fma bmi2 sha_ni".split())
XEON = frozenset("avx2 avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8".split())


def test_auto_is_bf16_only_on_a_cpu_with_bf16_units():
    assert choose_precision("auto", CPU, EPYC) == ("fp32", "auto: this CPU has neither AMX nor AVX512-BF16")
    assert choose_precision("auto", CPU, XEON) == ("bf16", "auto: this CPU has amx_bf16 and avx512_bf16")
    assert choose_precision("auto", CPU, EPYC | {"avx512_bf16"})[0] == "bf16"
    assert choose_precision("auto", CPU, frozenset())[0] == "fp32"  # flags unreadable (not Linux)


def test_auto_on_a_gpu_follows_its_native_bf16():
    cuda = torch.device("cuda")
    assert choose_precision("auto", cuda, EPYC, cuda_bf16=True)[0] == "bf16"
    assert choose_precision("auto", cuda, XEON, cuda_bf16=False)[0] == "fp32"


def test_an_asked_precision_is_kept_whatever_the_hardware():
    assert choose_precision("fp32", CPU, XEON) == ("fp32", "asked for")
    assert choose_precision("bf16", CPU, EPYC) == ("bf16", "asked for")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 amx_bf16\nbugs\t\t: spectre\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    assert cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()
    assert cpu_model(str(cpuinfo)) == "X"
    assert cpu_model(str(tmp_path / "missing"))  # platform.processor() or "unknown CPU": never empty


def _model_and_batch():
    torch.manual_seed(0)
    return HybridAutoencoder((28, 28)), torch.rand(64, 784).round()


def test_bf16_runs_the_networks_in_bf16_and_returns_float32():
    model, x = _model_and_batch()
    fp32 = model.encoder(x).logits
    with autocast("bf16", CPU):
        post = model.encoder(x)
        hidden = model.encoder.body(x)
    assert hidden.dtype == torch.bfloat16
    assert post.logits.dtype == post.mu.dtype == torch.float32
    difference = (post.logits - fp32).abs().max().item()
    assert 0 < difference < 0.05 * fp32.abs().max().item()  # rounded like bf16 (8 bits), not like float32
    with autocast("fp32", CPU):
        assert torch.equal(model.encoder(x).logits, fp32)


def test_a_bf16_step_keeps_estimators_gradients_and_optimiser_state_in_float32():
    model, x = _model_and_batch()
    cfg = TrainConfig(precision="bf16").validate()
    fp = forward_pass(model, x, cfg)
    tensors = [fp.posterior.mu, fp.posterior.logvar, fp.posterior.logits, fp.z, fp.y, fp.reconstruction_logits,
               fp.vat]
    assert all(t.dtype == torch.float32 for t in tensors)
    optimizer, _ = build_optimizer(cfg, model)
    terms = train_step(model, build_objective(cfg), optimizer, x, cfg)
    assert all(value.dtype == torch.float32 for value in terms.values())
    assert all(p.dtype == p.grad.dtype == torch.float32 for p in model.parameters())
    assert all(v.dtype == torch.float32 for state in optimizer.state.values() for v in state.values()
               if v.is_floating_point())


def test_the_bf16_loss_is_the_fp32_loss_to_bf16_accuracy():
    terms = {}
    for precision in ("fp32", "bf16"):
        model, x = _model_and_batch()
        cfg = TrainConfig(precision=precision).validate()
        torch.manual_seed(1)
        terms[precision] = build_objective(cfg)(forward_pass(model, x, cfg))
    for name in ("reconstruction", "mutual_info_xy", "marginal_kl_z", "loss"):
        assert terms["bf16"][name].item() == pytest.approx(terms["fp32"][name].item(), rel=0.02, abs=0.02)
    assert terms["bf16"]["loss"].item() != terms["fp32"]["loss"].item()


def test_the_python_api_takes_precision_and_records_the_one_used():
    X = np.random.default_rng(0).integers(0, 256, size=(24, 8, 8), dtype=np.uint8)
    bf16 = IMAE(epochs=1, device="cpu", precision="bf16").fit(X)
    fp32 = IMAE(epochs=1, device="cpu", precision="fp32").fit(X)
    assert bf16.config_.precision == "bf16" and fp32.config_.precision == "fp32"
    assert not np.array_equal(bf16.transform(X), fp32.transform(X))  # trained differently
    auto = IMAE(epochs=1, device="cpu").fit(X)
    assert auto.get_params()["precision"] == "auto"  # as given (scikit-learn's rule); the fitted config: as used
    assert auto.config_.precision == choose_precision("auto", CPU)[0]


def test_recorded_capability_reads_the_kernel_width_of_training_hardware():
    assert recorded_capability("AMD EPYC, AVX2") == "AVX2"
    assert recorded_capability("Intel(R) Xeon(R) Platinum 8480+, AVX512") == "AVX512"
    assert recorded_capability("NVIDIA H200") is None  # a GPU run: no CPU kernels to hold
    assert recorded_capability(None) is None  # a run from before training_hardware
