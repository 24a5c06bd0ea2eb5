"""The product forms decoding picks between (assistant/matmul_forms.py): same values, the right pick, gradients."""
import pytest
import torch
import torch.nn.functional as F

from assistant import matmul_forms
from assistant.matmul_forms import FORMS, fastest_form, product


@pytest.fixture(autouse=True)
def fresh_choices(monkeypatch, tmp_path):
    monkeypatch.setattr(matmul_forms, "_FASTEST", {})
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))  # an empty per-machine cache (assistant/machine.py)


def working_forms(x, weight):
    return [form for form in FORMS if matmul_forms._works(form, x, weight)]


@pytest.mark.parametrize("lead", [(1,), (1, 1), (2, 5)])
def test_every_form_that_runs_gives_linears_values(lead):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(*lead, 48), torch.randn(40, 48), torch.randn(40)
    forms = working_forms(x.reshape(-1, 48)[:1], weight)
    assert {"linear", "few rows"} <= set(forms)
    with torch.inference_mode():
        for form in forms:
            got = product(form, x, weight, bias)
            assert got.shape == (*lead, 40)
            torch.testing.assert_close(got, F.linear(x, weight, bias), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_takes_mixed_dtypes_under_autocast(form):
    """Training writes sample chats with its frozen weights in bf16 and float rows under autocast: a picked
    oneDNN form (which autocast does not cast for) once failed there with "could not create a primitive
    descriptor"."""
    torch.manual_seed(0)
    x, weight = torch.randn(1, 3, 48), torch.randn(40, 48).bfloat16()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(product(form, x, weight), F.linear(x, weight))


def test_a_product_that_records_gradients_gets_them_in_every_form():
    """oneDNN's inner product has no backward: with a gradient to record, the product must not use it."""
    torch.manual_seed(0)
    weight = torch.randn(40, 48)
    expected_x = torch.randn(3, 48, requires_grad=True)
    F.linear(expected_x, weight).square().sum().backward()
    for form in FORMS:
        x = expected_x.detach().clone().requires_grad_(True)
        product(form, x, weight).square().sum().backward()
        torch.testing.assert_close(x.grad, expected_x.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("seconds", "expected"), [
    ({"linear": 1.0, "few rows": 0.9, "onednn": 0.5}, "onednn"),
    ({"linear": 1.0, "few rows": 0.7, "onednn": 0.75}, "few rows"),
    ({"linear": 1.0, "few rows": 0.9, "onednn": 0.85}, "linear"),  # within the margin: the plain path
])
def test_the_fastest_form_wins_only_by_a_clear_margin(monkeypatch, seconds, expected):
    monkeypatch.setattr(matmul_forms, "_works", lambda form, x, weight: True)
    monkeypatch.setattr(matmul_forms, "_best_seconds", lambda forms, weights: {name: seconds[name] for name in forms})
    assert fastest_form([torch.randn(8, 4)]) == expected


def test_a_form_that_fails_here_is_never_picked(monkeypatch):
    monkeypatch.setattr(matmul_forms, "_works", lambda form, x, weight: form != "onednn")
    monkeypatch.setattr(matmul_forms, "_best_seconds",
                        lambda forms, weights: {name: {"onednn": 0.1}.get(name, 1.0) for name in forms})
    assert fastest_form([torch.randn(8, 4)]) == "linear"


def test_each_shape_and_dtype_is_timed_once(monkeypatch):
    timed = []

    def best_seconds(forms, weights):
        timed.append((tuple(weights[0].shape), weights[0].dtype))
        return dict.fromkeys(forms, 1.0)
    monkeypatch.setattr(matmul_forms, "_best_seconds", best_seconds)
    for shape in [(8, 4), (8, 4), (4, 8), (8, 4)]:
        assert fastest_form([torch.randn(shape)]) in FORMS
    fastest_form([torch.randn(8, 4).bfloat16()])
    assert timed == [((8, 4), torch.float32), ((4, 8), torch.float32), ((8, 4), torch.bfloat16)]


def test_a_later_process_on_this_machine_reads_the_answer_instead_of_timing(monkeypatch):
    timed = []

    def best_seconds(forms, weights):
        timed.append(torch.get_num_threads())
        return {name: {"few rows": 0.5}.get(name, 1.0) for name in forms}
    monkeypatch.setattr(matmul_forms, "_best_seconds", best_seconds)
    assert fastest_form([torch.randn(8, 4)]) == "few rows"
    monkeypatch.setattr(matmul_forms, "_FASTEST", {})  # what a new process starts with
    assert fastest_form([torch.randn(8, 4)]) == "few rows"
    assert len(timed) == 1
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(max(1, threads - 1) if threads > 1 else 2)  # another thread count: timed again
        monkeypatch.setattr(matmul_forms, "_FASTEST", {})
        fastest_form([torch.randn(8, 4)])
    finally:
        torch.set_num_threads(threads)
    assert len(timed) == 2


def test_a_real_timing_picks_a_form_that_works():
    weights = [torch.randn(64, 32) for _ in range(4)]
    form = fastest_form(weights)
    assert form in working_forms(torch.randn(1, 32), weights[0])


def test_timing_reads_about_the_sample_size():
    """Beyond the caches, but no more than needed (every start pays it); small weights: enough calls, not too many."""
    layers = [torch.empty(256, 1024) for _ in range(30)]  # 1 MB each
    sample = matmul_forms._about(layers, 2 ** 23)
    assert len(sample) == 8 and all(a is b for a, b in zip(sample, layers))
    assert matmul_forms._about(layers, 2 ** 30) == layers * 3  # 30 MB of 1 GB: repeated, to 100 calls at most
    assert len(matmul_forms._about([torch.empty(1, 16)], 2 ** 26)) == matmul_forms.MAX_CALLS
