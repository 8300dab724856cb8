"""Stream-based selective sampling: the variable threshold and the budget, on hand-built streams."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alcycle.stream import START, Position, StreamState, arrival_order, decide, dump_states, load_states, next_window


def test_variable_uncertainty_known_answer():
    # θ0 = 0.8, s = 0.5, budget 1/2 of the items seen.
    picked, state = decide(np.array([0.5, 0.3, 0.9, 0.2, 0.95, 0.1]), StreamState(0, 0, 0.8), budget=0.5, step=0.5)
    # 1: 0 + 1 <= 0.5? no: budget spent, let go, θ 0.8.  2: 1 <= 1, 0.3 < 0.8: label, θ 0.4.
    # 3: 2 <= 1.5? no.  4: 2 <= 2, 0.2 < 0.4: label, θ 0.2.  5: 3 <= 2.5? no.
    # 6: 3 <= 3, 0.1 < 0.2: label, θ 0.1.
    assert picked.tolist() == [False, True, False, True, False, True]
    assert (state.seen, state.labeled) == (6, 3) and state.threshold == pytest.approx(0.1)


def test_a_confident_item_with_budget_left_raises_the_threshold():
    picked, state = decide(np.array([0.9, 0.9, 0.85]), StreamState(10, 0, 0.8), budget=0.5, step=0.25)
    # 0.9 >= 0.8: θ 1.0; 0.9 < 1.0: label, θ 0.75; 0.85 >= 0.75: θ 0.9375
    assert picked.tolist() == [False, True, False]
    assert state.threshold == pytest.approx(0.9375) and state.seen == 13 and state.labeled == 1


def test_split_labels_a_random_share_even_of_confident_items():
    rng = np.random.default_rng(0)
    confident = np.full(2000, 0.999)  # θ grows from 0.5 to at most 0.5 · 1.0001^2000 ≈ 0.61: never above
    picked, state = decide(confident, StreamState(0, 0, 0.5), budget=1.0, step=1e-4, random_share=0.2, rng=rng)
    assert 0.17 < picked.mean() < 0.23 and state.labeled == picked.sum()
    none, _ = decide(confident, StreamState(0, 0, 0.5), budget=1.0, step=1e-4)
    assert not none.any()


def test_the_state_carries_from_one_stretch_to_the_next():
    rng_values = np.random.default_rng(1).random(300)
    whole, end = decide(rng_values, StreamState(0, 0, 0.9), budget=0.1, step=0.05)
    first, middle = decide(rng_values[:120], StreamState(0, 0, 0.9), budget=0.1, step=0.05)
    second, last = decide(rng_values[120:], middle, budget=0.1, step=0.05)
    assert np.array_equal(whole, np.concatenate([first, second])) and last == end


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=300), st.floats(0.01, 1.0), st.floats(0.001, 0.5),
       st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_the_budget_is_never_exceeded_at_any_point(confidences, budget, step, random_share, seed):
    picked, state = decide(np.array(confidences), StreamState(0, 0, 1.0), budget, step, random_share,
                           np.random.default_rng(seed))
    spent = np.cumsum(picked)
    assert (spent <= np.floor(budget * np.arange(1, len(picked) + 1) + 1e-9)).all()
    assert state.labeled == spent[-1] and state.seen == len(picked)


def test_bad_settings_are_refused_with_what_to_use():
    with pytest.raises(ValueError, match="0 < b <= 1"):
        decide(np.ones(3), StreamState(0, 0, 1.0), budget=0.0, step=0.1)
    with pytest.raises(ValueError, match=r"step must be in \(0, 1\)"):
        decide(np.ones(3), StreamState(0, 0, 1.0), budget=0.5, step=1.0)
    with pytest.raises(ValueError, match="needs a random generator"):
        decide(np.ones(3), StreamState(0, 0, 1.0), budget=0.5, step=0.1, random_share=0.1)
    with pytest.raises(ValueError, match="labeled"):
        StreamState(seen=2, labeled=3, threshold=1.0)


def test_a_window_meets_only_unlabeled_arrivals_and_says_where_the_next_starts():
    order = np.array([4, 0, 3, 1, 2, 5, 6])  # rows in arrival order
    labeled = np.array([True, False, False, False, False, False, False])  # row 0 was labeled at the cold start
    confidence = np.array([0.9, 0.1, 0.2, 0.95, 0.3, 0.99, 0.1])
    window = next_window(order, labeled, confidence, 0, 3, StreamState(0, 0, 1.0), budget=0.5, step=0.5,
                         random_share=0.0, rng=np.random.default_rng(0))
    # arrivals met: row 4 (0.3), row 3 (0.95), row 1 (0.1); row 0 passes by unmet.
    # 4: 1 <= 0.5? no.  3: 1 <= 1, 0.95 < 1.0: label, θ 0.5.  1: 2 <= 1.5? no.
    assert window.picked.tolist() == [3] and window.end == 4
    assert (window.state.seen, window.state.labeled) == (3, 1) and window.state.threshold == pytest.approx(0.5)
    after = next_window(order, labeled, confidence, window.end, 3, window.state, 0.5, 0.5, 0.0, np.random.default_rng(0))
    # row 2 (0.2 < 0.5: label, θ 0.25), row 5 (0.99: θ 0.375), row 6 (3 <= 3, 0.1: label)
    assert after.picked.tolist() == [2, 6] and after.end == 7 and after.state.seen == 6


def test_a_window_that_labels_nothing_goes_on_until_one_is_labeled():
    confidence = np.full(50, 0.99)
    window = next_window(np.arange(50), np.zeros(50, bool), confidence, 0, 5, StreamState(0, 0, 0.9), budget=0.5,
                         step=0.01, random_share=0.0, rng=np.random.default_rng(0))
    # The first arrival finds the budget spent (1 > 0.5 · 1) and leaves θ alone; θ = 0.9 · 1.01^k first
    # exceeds 0.99 after k = 10 let-goes (arrivals 1-10): arrival 11 is labeled, well past the window of 5.
    assert window.picked.tolist() == [11] and window.end == 12 and window.state.labeled == 1


def test_the_stream_ending_is_a_clear_error():
    with pytest.raises(ValueError, match="no unlabeled arrival left after position 3 of 3"):
        next_window(np.arange(3), np.zeros(3, bool), np.ones(3), 3, 2, START.state, 0.5, 0.1, 0.0,
                    np.random.default_rng(0))


def test_arrival_order_sorts_by_time_ties_in_manifest_order():
    assert arrival_order(None, 3).tolist() == [0, 1, 2]
    assert arrival_order(np.array(["3", "1.5", "1.5", "-2"]), 4).tolist() == [3, 1, 2, 0]
    stamps = np.array(["2026-03-02T00:00:00", "2026-03-01T23:59:59+00:00", "2026-03-01"])
    assert arrival_order(stamps, 3).tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="'yesterday' of item b is neither a number nor an ISO 8601"):
        arrival_order(np.array(["2026-03-01", "yesterday"]), 2, np.array(["a", "b"]))


def test_states_are_stored_per_cycle_and_read_back(tmp_path):
    states = {2: Position(40, StreamState(35, 4, 0.7)), 1: Position(20, StreamState(18, 2, 0.9))}
    path = tmp_path / "stream.json"
    path.write_text(dump_states(states))
    assert load_states(path) == states and list(load_states(path)) == [1, 2]
    assert load_states(tmp_path / "absent.json") == {}
    path.write_text('{"1": {"position": 3}}')
    with pytest.raises(ValueError, match="stream.json: not a stream state file"):
        load_states(path)
