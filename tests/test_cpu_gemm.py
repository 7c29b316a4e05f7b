"""The CPU matmul kernel of grouped layers: oneDNN member by member computes what torch's batched
matmuls compute, and the choice between them is explicit or measured, never a surprise."""

import os
import subprocess
import sys

import pytest
import torch

from harness.errors import UserError
from plugins.estimators import cpu_gemm
from plugins.estimators.critics import GroupedLinear

needs_onednn = pytest.mark.skipif(not cpu_gemm.onednn_available(), reason="this torch build has no oneDNN")


def forward_backward(layer: GroupedLinear, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    layer.zero_grad()
    out = layer(x)
    out.backward(grad)
    return [out.detach(), x.grad, layer.weight.grad] + ([] if layer.bias is None else [layer.bias.grad])


def exact_with_error_bounds(layer: GroupedLinear, x: torch.Tensor, grad: torch.Tensor):
    """The float64 values of forward_backward's tensors, and the classic bound on a float32 dot
    product of length n, |fl(a.b) - a.b| <= n eps sum|a_i b_i|, for each entry."""
    w, g, x = layer.weight.double(), grad.double(), x.double()
    eps = torch.finfo(torch.float32).eps
    b = torch.zeros(1) if layer.bias is None else layer.bias.double()
    exact = [x @ w.mT + b, g @ w, g.mT @ x, g.sum(1, keepdim=True)]
    bounds = [(w.shape[2] + 1) * eps * (x.abs() @ w.abs().mT + b.abs()), w.shape[1] * eps * (g.abs() @ w.abs()),
              x.shape[1] * eps * (g.abs().mT @ x.abs()), x.shape[1] * eps * g.abs().sum(1, keepdim=True)]
    return (exact, bounds) if layer.bias is not None else (exact[:3], bounds[:3])


@needs_onednn
@pytest.mark.parametrize(("rows", "dim_in", "dim_out", "bias"), [(64, 256, 256, True), (30, 7, 1, True),
                                                                  (1024, 12, 33, False)])
def test_onednn_member_by_member_computes_the_batched_matmuls(choose_cpu_gemm, monkeypatch, rows, dim_in, dim_out, bias):
    torch.manual_seed(0)
    layer = GroupedLinear(torch.randn(5, dim_out, dim_in) / dim_in**0.5, torch.randn(5, 1, dim_out) if bias else None)
    x, grad = torch.randn(5, rows, dim_in), torch.randn(5, rows, dim_out)
    exact, bounds = exact_with_error_bounds(layer, x, grad)
    monkeypatch.setattr(cpu_gemm, "MIN_WORK", 0)
    for kernel in ("torch", "onednn"):
        assert choose_cpu_gemm(kernel) == (kernel == "onednn")
        for value, truth, bound in zip(forward_backward(layer, x, grad), exact, bounds, strict=True):
            assert ((value.double() - truth).abs() <= bound).all(), kernel
    member_by_member = forward_backward(layer, x, grad)
    alone = forward_backward(GroupedLinear(layer.weight.detach()[3:4].clone(),
                                           None if layer.bias is None else layer.bias.detach()[3:4].clone()),
                             x[3:4], grad[3:4])
    assert all(torch.equal(a[0], g[3]) for a, g in zip(alone, member_by_member, strict=True))


@needs_onednn
def test_only_layers_with_enough_work_leave_the_batched_matmul(choose_cpu_gemm):
    assert choose_cpu_gemm("onednn")
    weight = torch.zeros(3, 256, 256)
    assert cpu_gemm.use_onednn(torch.zeros(3, 64, 256), weight)         # the staircase's 256 x 256 layer
    assert not cpu_gemm.use_onednn(torch.zeros(3, 64, 20), torch.zeros(3, 256, 20))  # its first layer
    assert not cpu_gemm.use_onednn(torch.zeros(3, 64, 256, dtype=torch.float64), weight.double())


@pytest.mark.parametrize(("capability", "vendor", "family", "onednn"), [
    ("AVX512", "AuthenticAMD", 26, True),   # Zen 5: MKL runs AVX2 here; oneDNN full-width AVX-512 (about 2.2x)
    ("AVX512", "AuthenticAMD", 25, False),  # Zen 4: half-width AVX-512, and the grouped step is faster on MKL
    ("AVX512", "GenuineIntel", 6, False),   # MKL dispatches AVX-512 on Intel itself
    ("AVX2", "AuthenticAMD", 26, False),    # one instruction set for both kernels
    ("AVX512", "", 0, False),               # unknown vendor: stay with torch
])
def test_auto_takes_onednn_only_where_mkl_leaves_avx512_unused(choose_cpu_gemm, monkeypatch, capability, vendor,
                                                                 family, onednn):
    monkeypatch.setattr(cpu_gemm, "onednn_available", lambda: True)
    monkeypatch.setattr(cpu_gemm, "cpu_capability", lambda: capability)
    monkeypatch.setattr(cpu_gemm, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(cpu_gemm, "cpu_family", lambda: family)
    assert choose_cpu_gemm(None) == choose_cpu_gemm("auto") == onednn
    assert choose_cpu_gemm("onednn") and not choose_cpu_gemm("torch")


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="the CPU is read from Linux's /proc/cpuinfo")
def test_the_cpu_is_read_from_proc_cpuinfo():
    vendor, family = cpu_gemm.cpu_vendor(), cpu_gemm.cpu_family()
    with open("/proc/cpuinfo") as info:
        text = info.read()
    assert f"vendor_id\t: {vendor}" in text if vendor else "vendor_id" not in text
    assert f"cpu family\t: {family}" in text if family else "cpu family" not in text


def test_auto_reads_the_machine_not_a_timing(choose_cpu_gemm, monkeypatch):
    # a timed choice flipped between processes under load, and with it a cell's bits
    monkeypatch.setattr(cpu_gemm, "onednn_speedup", lambda *a, **k: pytest.fail("auto must not time kernels"))
    first = choose_cpu_gemm("auto")
    assert all(choose_cpu_gemm("auto") == first for _ in range(3))


@needs_onednn
def test_the_speed_probe_times_both_kernels():
    speedup = cpu_gemm.onednn_speedup(size=128, repeats=2)
    assert 0.05 < speedup < 20


def test_an_unknown_kernel_choice_names_the_valid_ones(choose_cpu_gemm):
    with pytest.raises(UserError, match=r"MI_HARNESS_CPU_GEMM='mkl'.*auto, torch, onednn"):
        choose_cpu_gemm("mkl")


def test_a_run_with_an_unknown_kernel_choice_stops_with_one_line(tmp_path):
    env = {**os.environ, "MI_HARNESS_CPU_GEMM": "avx512"}
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "quickstart", "--store",
                             str(tmp_path / "r.sqlite"), "--reports-dir", str(tmp_path / "reports")],
                            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode != 0
    assert "MI_HARNESS_CPU_GEMM='avx512'" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr and not (tmp_path / "r.sqlite").exists()


@needs_onednn
def test_the_speed_probe_leaves_the_global_random_stream_alone():
    # it runs at the first large layer, mid-training in whichever cell comes first
    torch.manual_seed(3)
    cpu_gemm.onednn_speedup(size=64, repeats=1)
    after_probe = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(after_probe, torch.rand(3))
