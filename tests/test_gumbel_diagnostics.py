"""The Gumbel Distillation diagnostics in experiments/: the noise-following metrics and the entropy-matched comparison."""

import math

import pytest
import torch

from experiments.eval import entropy_matched
from experiments.gumbel import map_depth, noise_map, noise_on_support


@pytest.fixture(scope="module")
def setting():
    from paradistill.distill.gumbel_noise import draw_seeds, fresh_noise
    from paradistill.distill.teachers import GrammarTeacher

    teacher = GrammarTeacher()
    seeds = draw_seeds(8, torch.Generator().manual_seed(0))
    xi = fresh_noise(seeds, 24, teacher.vocab_size, "gumbel", 1.0, "dense", dtype=torch.float64)
    return noise_map, teacher, xi


def test_the_teachers_own_sample_follows_its_noise_everywhere(setting):
    mod, teacher, xi = setting
    target = mod.teacher_from_noise(teacher, xi, teacher.grammar.bos_id)
    m = mod.noise_following(teacher, target, xi, target)
    assert (m["agreement"], m["prefix"], m["local_agreement"]) == (1.0, xi.shape[1] - 1, 1.0)
    assert 0 < m["local_chance"] < 0.9  # drawn without the noise, these tokens would match far less often


def test_a_student_that_slips_once_then_follows_the_noise_keeps_its_local_agreement(setting):
    """One forced departure at position 3, then the Gumbel-max rule after its own prefix: agreement with x* falls
    (the text has gone elsewhere), the prefix stops at 2, the local agreement misses only the slipped position."""
    mod, teacher, xi = setting
    target = mod.teacher_from_noise(teacher, xi, teacher.grammar.bos_id)
    x = target.clone()
    x[:, 3] = (target[:, 3] + 1) % teacher.vocab_size
    for i in range(4, x.shape[1]):
        logp = teacher.next_token_log_probs(x[:, :i])[:, -1].double()
        x[:, i] = (logp + xi[:, i, : logp.shape[-1]]).argmax(-1)
    m = mod.noise_following(teacher, x, xi, target)
    assert m["prefix"] == 2.0
    assert m["local_agreement"] == pytest.approx(1 - 1 / (x.shape[1] - 1))
    assert m["agreement"] < m["local_agreement"]


def test_a_sample_from_other_noise_follows_this_noise_only_by_chance(setting):
    from paradistill.distill.gumbel_noise import draw_seeds, fresh_noise

    mod, teacher, xi = setting
    target = mod.teacher_from_noise(teacher, xi, teacher.grammar.bos_id)
    other = fresh_noise(draw_seeds(8, torch.Generator().manual_seed(1)), xi.shape[1], teacher.vocab_size,
                        "gumbel", 1.0, "dense", dtype=torch.float64)
    x = mod.teacher_from_noise(teacher, other, teacher.grammar.bos_id)
    m = mod.noise_following(teacher, x, xi, target)
    assert m["agreement"] < 0.9 and m["prefix"] < xi.shape[1] - 1
    # independent of xi: the local agreement is its chance level, the mean teacher probability of the tokens
    assert abs(m["local_agreement"] - m["local_chance"]) < 0.15


def test_entropy_matched_reference_interpolates_log_gen_ppl_and_never_extrapolates():
    ref = [{"entropy": 3.0, "gen_ppl": 100.0}, {"entropy": 3.4, "gen_ppl": 400.0}, {"entropy": 3.2, "gen_ppl": 200.0}]
    assert entropy_matched.matched(ref, 3.2) == pytest.approx(200.0)
    assert entropy_matched.matched(ref, 3.1) == pytest.approx(math.sqrt(100.0 * 200.0))  # geometric midpoint
    assert entropy_matched.matched(ref, 2.9) is None and entropy_matched.matched(ref, 3.5) is None
    assert entropy_matched.temperature_of({"noise_temperature": 0.25, "temperature": 1.0}) == 0.25
    assert entropy_matched.temperature_of({"noise_temperature": None, "temperature": 0.8}) == 0.8



def test_entropy_matched_summary_is_the_geometric_mean_ratio_over_points_with_a_t_interval():
    from scipy import stats

    ref = {"series": "ref", "steps": 8, "change_at_same_entropy": None}
    pts = [{"series": "s", "steps": 8, "change_at_same_entropy": c} for c in (0.18, 0.22, 0.2)]
    out_of_range = {"series": "s", "steps": 8, "change_at_same_entropy": None}
    (row,) = entropy_matched.series_summary([ref, *pts, out_of_range], "ref")
    logs = [math.log(1.18), math.log(1.22), math.log(1.2)]
    mean = sum(logs) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in logs) / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert (row["points"], row["outside_range"]) == (3, 1)
    assert row["ratio"] == pytest.approx(math.exp(mean))
    assert (row["lo"], row["hi"]) == (pytest.approx(math.exp(mean - half)), pytest.approx(math.exp(mean + half)))
    assert row["verdict"] == "higher than the reference"  # every point well above: the interval excludes 1
    # the reference curve is one shared evaluation: its s.e. (known for every point) widens the interval
    shared = [{**p, "reference_nll_se": se} for p, se in zip(pts, (0.02, 0.04, 0.03))]
    (wide,) = entropy_matched.series_summary([ref, *shared], "ref")
    wide_half = math.hypot(half, stats.norm.ppf(0.975) * 0.03)
    assert wide["ratio"] == pytest.approx(row["ratio"]) and wide["reference_nll_se"] == pytest.approx(0.03)
    assert (wide["lo"], wide["hi"]) == (pytest.approx(math.exp(mean - wide_half)),
                                        pytest.approx(math.exp(mean + wide_half)))
    # points that agree more closely than their own sampling error: that error sets the width
    noisy = [{**p, "nll_se": 0.05} for p in pts]
    (floored,) = entropy_matched.series_summary([ref, *noisy], "ref")
    floor = stats.norm.ppf(0.975) * math.sqrt(3 * 0.05 ** 2) / 3
    assert floored["floored"] and floor > half and floored["hi"] == pytest.approx(math.exp(mean + floor))
    ref_curve = [{"entropy": 3.0, "gen_ppl": 100.0, "nll_se": 0.01}, {"entropy": 3.2, "gen_ppl": 200.0, "nll_se": 0.03}]
    assert entropy_matched.matched_se(ref_curve, 3.1) == 0.03 and entropy_matched.matched_se(ref_curve, 3.3) is None
    (alone,) = entropy_matched.series_summary([{**out_of_range}], "ref")
    assert alone["points"] == 0 and "ratio" not in alone
    assert "no point in range" in entropy_matched.summary_lines([alone])[-1]

def test_noise_info_sees_the_chosen_token_favoured_by_its_noise(setting):
    """experiments/gumbel/noise_on_support.py: x* = f(xi) favours tokens with high noise, so the chosen token's softmax(xi)
    weight is above the average 1/V; a uniform spread of mass is |S|/V; all shares lie in [0, 1]."""
    mod, teacher, xi = setting
    x = mod.teacher_from_noise(teacher, xi, teacher.grammar.bos_id)
    r = noise_on_support.noise_info(teacher, xi, x, 1e-3)
    assert r["vocab"] == teacher.vocab_size
    assert r["softmax_weight_of_chosen"] > 1 / r["vocab"]
    assert r["uniform_mass_on_support"] == pytest.approx(r["support_size"] / r["vocab"])
    for key in ("softmax_mass_on_support", "argmax_in_support", "teacher_prob_of_chosen"):
        assert 0 <= r[key] <= 1


def test_depth_probe_masks_the_chain_before_the_target():
    assert map_depth.masked_span(20, 0, 64, None) == (20, 64)  # only the target (and what follows) masked
    assert map_depth.masked_span(20, 3, 64, None) == (17, 64)  # three links of the chain before it
    assert map_depth.masked_span(2, 2, 64, None) is None  # would mask BOS
    assert map_depth.masked_span(22, 2, 64, 4) == (20, 24)  # block model: i sits at offset d of its own block
    assert map_depth.masked_span(22, 1, 64, 4) is None and map_depth.masked_span(23, 4, 64, 4) is None


def test_coupling_is_complete_for_a_teacher_whose_choice_ignores_the_text():
    """Same noise, any start states: a teacher with one next-token distribution for every state always agrees;
    the built-in generator, whose choice depends on the story so far, rarely does at depth 0."""
    from paradistill.data.grammar import StoryGrammar

    real = StoryGrammar()

    class Memoryless:
        vocab_size, doc_state = real.vocab_size, real.doc_state
        emit_logp = real.emit_logp[real.doc_state].expand(real.num_states, -1)
        next_state = real.next_state

    flat = map_depth.coupling_curve(Memoryless(), 64, 24, 23, 6, seed=0)
    assert [r["agree"] for r in flat] == [1.0] * 7
    deep = map_depth.coupling_curve(real, 256, 24, 23, 6, seed=0)
    assert deep[0]["agree"] < 0.5
    assert all(r["agree"] >= r["same_start_state"] for r in deep)  # a shared state implies a shared token


def test_links_demanded_counts_the_masked_positions_before_each_commit():
    """Pass 0 sees everything after BOS masked and commits 1 and 3; pass 1 sees 2 and 4 masked and commits them.
    Position 1: nothing masked before it (0 links); 3: 1 and 2 (2 links); 2: none left by pass 1; 4: position 2."""
    p0 = torch.tensor([[False, True, True, True, True]])
    p1 = torch.tensor([[False, False, True, False, True]])
    assert map_depth.links_demanded([p0, p1]).tolist() == [[-1, 0, 0, 2, 1]]


def test_mask_recorder_passes_calls_through():

    class Model:
        cfg = "cfg"

        def __call__(self, idx, scale=1):
            return idx * scale

    rec = map_depth.MaskRecorder(Model(), mask_id=3)
    assert rec(torch.tensor([[1, 3, 3]]), scale=2).tolist() == [[2, 6, 6]] and rec.cfg == "cfg"
    assert rec.calls[0].tolist() == [[False, True, True]]
