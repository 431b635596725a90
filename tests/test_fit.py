import pytest
import torch

from deepprior.callbacks import ExponentialAverage, History, Progress, Snapshots
from deepprior.data_terms import MSE
from deepprior.fitting import Backtracking, Callback, FitState, adam, fit
from deepprior.nets import build_net


def small_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_net("skip", 4, 3, down=(8, 8), up=(8, 8), skip=(2, 2))


def problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 4, 16, 16, generator=g) * 0.1


def test_fit_reduces_the_data_term():
    y, z = problem()
    history = History(every=1)
    fit(small_net(), z, MSE(y), steps=60, lr=0.01, callbacks=[history])
    losses = [r["loss"] for r in history.records]
    assert losses[-1] < 0.5 * losses[0]


def test_same_seed_gives_bit_identical_output():
    y, z = problem()
    runs = [
        fit(
            small_net(),
            z,
            MSE(y),
            steps=15,
            input_noise=0.05,
            generator=torch.Generator().manual_seed(7),
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0].output, runs[1].output)
    other = fit(
        small_net(),
        z,
        MSE(y),
        steps=15,
        input_noise=0.05,
        generator=torch.Generator().manual_seed(8),
    )
    assert not torch.equal(runs[0].output, other.output)


def test_crop_fits_only_the_image_region():
    y, _ = problem()
    z = torch.rand(1, 4, 32, 32) * 0.1
    result = fit(small_net(), z, MSE(y), steps=3, crop=(8, 4, 16, 16))
    assert result.output.shape == (1, 3, 16, 16)


@pytest.mark.parametrize("warmup", [None, 10])
def test_exponential_average_matches_its_definition(warmup):
    outputs = []

    class Keep(Callback):
        def on_step(self, state: FitState) -> None:
            outputs.append(state.output.clone())

    y, z = problem()
    average = ExponentialAverage(0.9, warmup=warmup)
    result = fit(small_net(), z, MSE(y), steps=5, callbacks=[average, Keep()])
    expected = outputs[0]
    for step, out in enumerate(outputs[1:], start=1):
        decay = 0.9 if warmup is None else min(0.9, (1 + step) / (warmup + step))
        expected = decay * expected + (1 - decay) * out
    assert result.average is not None
    torch.testing.assert_close(result.average, expected)
    assert result.image is result.average


def test_the_warmed_up_average_follows_recent_outputs_then_the_full_decay():
    net = torch.nn.Conv2d(1, 1, 1)
    state = FitState(step=0, total_steps=2000, net=net, optimizer=torch.optim.SGD(net.parameters()))
    warm, authors = ExponentialAverage(0.99), ExponentialAverage(0.99, warmup=None)
    states = {"warm": state, "authors": FitState(**{**state.__dict__})}
    for step in range(2000):
        for name, average in (("warm", warm), ("authors", authors)):
            states[name].step = step
            states[name].output = torch.full((1, 1, 1, 1), float(step))
            average.on_step(states[name])
        if step == 50:  # outputs 0..50: the warm average is near the latest, the authors' lags
            assert float(states["warm"].average) > 35 > 15 > float(states["authors"].average)
    # Far into the fit both weigh the outputs alike: a ramp lags by (1 - d) / d per step
    lag = 1999 - float(states["warm"].average)
    assert lag == pytest.approx(0.99 / 0.01, rel=0.02)
    assert float(states["warm"].average) == pytest.approx(float(states["authors"].average))


def test_history_records_every_n_steps_and_the_last():
    y, z = problem()
    history = History(every=4, reference=y)
    fit(small_net(), z, MSE(y), steps=10, callbacks=[history])
    assert [r["step"] for r in history.records] == [1, 4, 8, 10]
    assert all("psnr" in r for r in history.records)


def test_snapshots_are_handed_over_every_n_steps():
    seen = []
    y, z = problem()
    fit(small_net(), z, MSE(y), steps=7, callbacks=[Snapshots(3, lambda s, im: seen.append(s))])
    assert seen == [3, 6]


def test_a_callback_can_stop_the_fit():
    class StopAtFour(Callback):
        def on_step(self, state: FitState) -> None:
            state.stop = state.step == 3

    y, z = problem()
    assert fit(small_net(), z, MSE(y), steps=50, callbacks=[StopAtFour()]).steps_run == 4


def test_ctrl_c_keeps_what_the_fit_had():
    class Interrupt(Callback):
        def on_step(self, state: FitState) -> None:
            if state.step == 5:
                raise KeyboardInterrupt

    y, z = problem()
    result = fit(small_net(), z, MSE(y), steps=50, callbacks=[ExponentialAverage(), Interrupt()])
    assert result.interrupted and result.steps_run == 5
    assert result.average is not None and result.average.shape == y.shape


def test_steps_must_be_positive():
    y, z = problem()
    with pytest.raises(ValueError):
        fit(small_net(), z, MSE(y), steps=0)


def snapshot(net, optimizer):
    state = {k: v.clone() for k, v in net.state_dict().items()}
    moments = {
        i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(optimizer.state.values())
    }
    return state, moments


def test_backtracking_restores_weights_buffers_optimiser_and_average():
    y, z = problem()
    net = small_net()
    optimizer = adam(list(net.parameters()), lr=0.01)  # the fit's own (fused) optimiser
    state = FitState(step=0, total_steps=10, net=net, optimizer=optimizer)
    backtracking = Backtracking(drop_db=5.0, every=1)

    def step() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.mean((net(z) - y) ** 2)
        loss.backward()
        optimizer.step()
        return loss.detach()

    step()
    good = torch.mean((net(z) - y) ** 2).detach()
    state.average = torch.full_like(y, 0.25)
    assert not backtracking.reject(state, good)
    saved_net, saved_moments = snapshot(net, optimizer)
    for _ in range(3):  # moves weights, BatchNorm buffers and Adam's moments
        step()
    state.average.fill_(0.75)
    assert not torch.equal(
        net.state_dict()["body.down.0.1.0.running_mean"], saved_net["body.down.0.1.0.running_mean"]
    )
    state.step = 4
    assert backtracking.reject(state, good * 100)
    for key, value in net.state_dict().items():
        assert torch.equal(value, saved_net[key]), key
    for i, moments in enumerate(optimizer.state.values()):
        for key, value in moments.items():
            assert torch.equal(value, saved_moments[i][key]), key
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    assert torch.equal(state.average, torch.full_like(y, 0.25))


def test_the_fit_uses_fused_adam_on_cpu_with_the_same_update():
    net = small_net()
    twin = small_net()
    twin.load_state_dict(net.state_dict())
    fused = adam(list(net.parameters()), lr=0.01)
    plain = torch.optim.Adam(twin.parameters(), lr=0.01)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    y, z = problem()
    for model, optimizer in ((net, fused), (twin, plain)):
        for _ in range(3):
            optimizer.zero_grad()
            torch.mean((model(z) - y) ** 2).backward()
            optimizer.step()
    # Outputs, not weights: a bias before BatchNorm gets a gradient of rounding noise, whose
    # Adam step (g / sqrt(v)) differs between the two in sign; BatchNorm cancels it.
    torch.testing.assert_close(net(z), twin(z), rtol=1e-4, atol=1e-4)


def test_backtracking_reads_the_loss_only_every_n_steps():
    state = FitState(step=3, total_steps=10, net=small_net(), optimizer=None)  # type: ignore[arg-type]
    nan = torch.tensor(float("nan"))
    assert not Backtracking(every=10).reject(state, nan)  # not a check step: not even read


def test_fit_drops_the_update_of_a_collapsed_step():
    y, z = problem()
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        return x + 10 if calls["n"] == 6 else x  # the 6th evaluation collapses

    net = small_net()
    result = fit(net, z, MSE(y, flaky), steps=8, backtracking=Backtracking(every=1))
    assert result.backtracks == 1 and result.steps_run == 8 and calls["n"] == 9


def test_any_differentiable_data_term_is_minimised():
    """No observation at all: push the first channel's mean up (activation maximisation)."""
    _, z = problem()
    with torch.no_grad():
        before = float(small_net()(z)[:, 0].mean())
    result = fit(small_net(), z, lambda out: -out[:, 0].mean(), steps=30, lr=0.01)
    assert float(result.output[:, 0].mean()) > before + 0.25  # a sigmoid output, at most 1


def test_the_progress_bar_runs_to_the_cap_then_to_the_ceiling():
    bar = Progress(quiet=True, total=5)
    state = FitState(step=0, total_steps=15, net=torch.nn.Identity(), optimizer=None)  # type: ignore[arg-type]
    bar.on_start(state)
    lengths = []
    for step in range(8):
        state.step = step
        bar.on_step(state)
        lengths.append(bar._bar.total)
    bar.on_end(state)
    assert lengths == [5] * 5 + [15] * 3
