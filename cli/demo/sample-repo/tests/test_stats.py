import pytest

from textstats.stats import mean, word_counts


def test_mean() -> None:
    assert mean([1, 2, 3, 4]) == 2.5


def test_mean_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        mean([])


def test_word_counts_ignore_case() -> None:
    assert word_counts("The cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}
