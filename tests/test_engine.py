from dataclasses import replace

import pytest
import torch

from deepprior.data_terms import MSE
from deepprior.engine import FAST, REFERENCE, bf16_supported, prepare, resolve_engine
from deepprior.errors import UserError
from deepprior.fitting import fit
from deepprior.nets import build_net


def net_and_problem(seed: int = 0):
    torch.manual_seed(seed)
    net = build_net("skip", 4, 3, down=(8, 8), up=(8, 8), skip=(2, 2))
    g = torch.Generator().manual_seed(seed)
    return net, torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 4, 16, 16, generator=g) * 0.1


def test_fast_and_reference_engines_compute_the_same_fit():
    results = []
    for engine in (REFERENCE, FAST):
        net, y, z = net_and_problem()
        results.append(fit(net, z, MSE(y), steps=20, engine=engine).output)
    torch.testing.assert_close(results[0], results[1], atol=2e-4, rtol=0)


def test_fast_engine_uses_channels_last():
    net, _, z = net_and_problem()
    _, z_prepared = prepare(net, z, FAST)
    assert z_prepared.is_contiguous(memory_format=torch.channels_last)
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="no native bf16 on this CPU")
def test_bf16_fit_reaches_the_fp32_loss():
    losses = []
    for engine in (FAST, FAST.with_precision("bf16")):
        net, y, z = net_and_problem()
        result = fit(net, z, MSE(y), steps=60, engine=engine)
        assert result.output.dtype == torch.float32
        losses.append(float(torch.mean((result.output - y) ** 2)))
    start = float(torch.mean((net_and_problem()[1] - 0.5) ** 2))
    assert losses[0] < 0.7 * start
    assert abs(losses[1] - losses[0]) < 0.1 * losses[0]


def test_compile_falls_back_to_eager_when_it_fails(monkeypatch, caplog):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken_compile)
    net, y, z = net_and_problem()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    forward, _ = prepare(net, z, replace(FAST, compile=True))
    assert forward is net and "eagerly" in caplog.text
    for key, value in net.state_dict().items():  # the trial left no trace
        assert torch.equal(value, before[key]), key
    assert fit(net, z, MSE(y), steps=2, engine=replace(FAST, compile=True)).steps_run == 2


def test_precision_choice():
    cpu = torch.device("cpu")
    assert resolve_engine("reference", "fp32", cpu) == REFERENCE
    auto = resolve_engine("fast", "auto", cpu)
    assert auto.precision == ("bf16" if bf16_supported(cpu) else "fp32")
    with pytest.raises(UserError, match="engine"):
        resolve_engine("turbo", "fp32", cpu)
    with pytest.raises(UserError, match="precision"):
        resolve_engine("fast", "fp8", cpu)


def test_checkpointing_gives_the_same_gradients():
    net, _, _ = net_and_problem()
    z = torch.rand(1, 4, 16, 16)
    net(z).mean().backward()
    plain = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.set_checkpointing(True)
    net(z).mean().backward()
    for a, p in zip(plain, net.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


def test_memory_plan_turns_checkpointing_on_when_memory_is_short(monkeypatch):
    from deepprior import engine as engine_module

    net = build_net("skip", 32, 3)
    cpu = torch.device("cpu")
    plenty = engine_module.plan_memory(net, 32, (256, 256), FAST, cpu)
    assert not plenty.engine.checkpointing
    full_estimate = plenty.estimate_bytes
    just_short = int(full_estimate / 0.8) - 1  # the plan keeps 20 % of free memory spare
    monkeypatch.setattr(engine_module, "available_memory", lambda device: just_short)
    tight = engine_module.plan_memory(net, 32, (256, 256), FAST, cpu)
    assert tight.engine.checkpointing and tight.estimate_bytes < full_estimate
    monkeypatch.setattr(engine_module, "available_memory", lambda device: 10 * 2**20)
    with pytest.raises(MemoryError, match="GiB"):
        engine_module.plan_memory(net, 32, (256, 256), FAST, cpu)


def test_an_image_that_cannot_fit_is_refused_before_the_fit(monkeypatch):
    import numpy as np

    import deepprior
    from deepprior import engine as engine_module

    monkeypatch.setattr(engine_module, "available_memory", lambda device: 2**20)
    with pytest.raises(UserError, match="does not fit"):
        deepprior.denoise(np.zeros((64, 64, 3), np.float32), steps=1, device="cpu")
