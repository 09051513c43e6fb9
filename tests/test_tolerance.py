"""The suite's tolerance (``tests/tolerance.py``): what it accepts and what it rejects."""

import numpy as np
import pytest
from tolerance import C, assert_close, eps, nudged, sensitivity, tolerance


def test_eps_is_the_dtype_epsilon():
    assert eps(np.float32) == np.finfo(np.float32).eps
    assert eps("float64") == np.finfo(np.float64).eps
    with pytest.raises(TypeError):
        eps(np.int64)


def test_the_bound_scales_with_dtype_reduction_and_magnitude():
    assert tolerance(np.float32) == C * np.finfo(np.float32).eps
    assert tolerance(np.float64, reduction=35, scale=17.0) == C * np.finfo(np.float64).eps * 35 * 17
    with pytest.raises(ValueError):
        tolerance(np.float32, reduction=0)
    with pytest.raises(ValueError):
        tolerance(np.float32, scale=np.inf)


def test_a_batched_float32_sum_summed_in_another_order_passes():
    # the AVX2 case of issue 8: a float32 batch 2e-6 away from its example alone, next to 17
    want = np.array([16.95362282, -0.75728118, -11.58257675])
    got = np.array([16.953619, -0.75727916, -11.58257389])
    assert_close(got, want, dtype=np.float32, reduction=36)
    with pytest.raises(AssertionError, match="float64"):
        assert_close(got, want, dtype=np.float64, reduction=36)  # not float64 rounding


def test_just_inside_passes_and_just_outside_fails():
    want = np.array([1.0, -3.0, 0.25])
    bound = C * eps(np.float32) * (np.abs(want) + 5 * 3.0)
    assert_close(want + 0.99 * bound, want, dtype=np.float32, reduction=5)
    for k in range(3):
        got = want.copy()
        got[k] += 1.01 * bound[k]
        with pytest.raises(AssertionError, match=rf"1 of 3 elements.*worst at \({k},\)"):
            assert_close(got, want, dtype=np.float32, reduction=5, what="case")


def test_a_zero_reference_needs_a_scale():
    with pytest.raises(AssertionError):
        assert_close([1e-12], [0.0], dtype=np.float64)  # scale defaults to max|want| = 0
    assert_close([1e-12], [0.0], dtype=np.float64, reduction=4, scale=1e3)
    assert_close(0.0, 0.0, dtype=np.float32)


def test_shapes_must_match_except_for_a_scalar_reference():
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.ones((3, 1)), np.ones(3), dtype=np.float64)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.ones(3), np.ones(2), dtype=np.float64)
    assert_close(np.ones((2, 3)), 1.0, dtype=np.float32)


def test_nan_and_infinity():
    with pytest.raises(AssertionError, match="NaN"):
        assert_close([np.nan, 1.0], [np.nan, 1.0], dtype=np.float64)
    assert_close([np.nan, 1.0], [np.nan, 1.0], dtype=np.float64, equal_nan=True)
    with pytest.raises(AssertionError, match="NaN at different places"):
        assert_close([np.nan, 1.0], [1.0, np.nan], dtype=np.float64, equal_nan=True)
    with pytest.raises(AssertionError, match="NaN"):
        assert_close([np.nan], [1.0], dtype=np.float64)
    assert_close([np.inf, -np.inf, 2.0], [np.inf, -np.inf, 2.0], dtype=np.float64)
    with pytest.raises(AssertionError, match="infinities"):
        assert_close([np.inf], [-np.inf], dtype=np.float64)
    with pytest.raises(AssertionError):
        assert_close([np.inf], [1.0], dtype=np.float64)


def test_sensitivity_is_the_distance_in_spacings_of_the_lower_precision():
    high = np.array([1.0, -3.0, 1e6])
    low = np.array([1.0, -3.0 + 2 * eps(np.float32) * 3, 1e6 + 64], np.float32)
    assert sensitivity(low, high) == pytest.approx(64 / eps(np.float32))
    # lists pairwise; integers and elements not finite in both are left out
    assert sensitivity([low[:2], np.array([7])], [high[:2], np.array([9])]) == \
        pytest.approx(6.0)
    assert sensitivity(np.array([np.inf, 1.0]), np.array([5.0, 1.0])) == 0.0


def test_a_nudge_moves_reals_by_at_most_its_spacings_and_leaves_integers():
    rng = np.random.default_rng(3)
    x = np.linspace(-5, 5, 101)
    moved = nudged([x, np.arange(4)], rng)
    assert np.array_equal(moved[1], np.arange(4))
    change = np.abs(moved[0] - x)
    assert (change <= 2.5 * eps(np.float64) * np.abs(x)).all()  # 2 spacings, then rounding
    assert (change > 0).sum() > 50  # most elements did move
    assert nudged(x.astype(np.float32), rng).dtype == np.float32
