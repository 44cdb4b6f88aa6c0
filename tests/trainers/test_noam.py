"""The Noam schedule steps from 1: the first batch's learning rate is not 0, and every batch follows
the formula through the warm-up and the decay."""

import itertools
import math

import paddle
import pytest

from videotk.trainers.optim import NoamSchedule, parse_schedule


def noam(step: int, d_model: int = 512, warmup: int = 1000, base: float = 1.0) -> float:
    return base * d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def learning_rates(scheduler, batches: int) -> list[float]:
    """The rate each batch trains with, read and stepped as the training loop does (per batch)."""
    rates = []
    for _ in range(batches):
        rates.append(scheduler.get_lr())
        scheduler.step()
    return rates


def test_first_batches_follow_the_formula_from_step_one():
    rates = learning_rates(NoamSchedule().build(1.0, 256), 5)
    assert rates[0] > 0
    assert rates == pytest.approx([noam(step) for step in range(1, 6)], rel=1e-12)
    assert rates[0] == pytest.approx(512 ** -0.5 * 1000 ** -1.5)


def test_peak_at_warmup_then_decay():
    rates = learning_rates(NoamSchedule(d_model=16, warmup_steps=10).build(2.0, 8), 40)
    assert max(rates) == rates[9] == pytest.approx(2.0 / math.sqrt(16 * 10))
    assert rates[20] == pytest.approx(noam(21, 16, 10, 2.0))
    assert all(a < b for a, b in itertools.pairwise(rates[:10]))
    assert all(a > b for a, b in itertools.pairwise(rates[9:]))


def test_config_section_and_optimizer_use():
    settings = parse_schedule({"name": "noam", "warmup_steps": 4})
    assert settings.per_batch and settings.d_model == 512 and settings.warmup_steps == 4
    layer = paddle.nn.Linear(2, 1)
    scheduler = settings.build(1.0, 1)
    optimizer = paddle.optimizer.Adam(learning_rate=scheduler, parameters=layer.parameters())
    assert optimizer.get_lr() == pytest.approx(noam(1, 512, 4))


def test_state_dict_resumes_the_count():
    first = NoamSchedule(warmup_steps=4).build(1.0, 1)
    learning_rates(first, 3)
    resumed = NoamSchedule(warmup_steps=4).build(1.0, 1)
    resumed.set_state_dict(first.state_dict())
    assert resumed.get_lr() == pytest.approx(noam(4, 512, 4))
