import numpy as np
from scipy import sparse

from digest.runs import owners, spans


def test_owners_give_each_stored_value_of_a_csr_matrix_its_row() -> None:
    dense = np.random.default_rng(3).random((40, 30))
    dense[dense < 0.9] = 0
    dense[7] = 0  # an empty row in the middle
    matrix = sparse.csr_matrix(dense)

    found = owners(np.diff(matrix.indptr))

    assert found.dtype == np.int64
    assert found.tolist() == matrix.tocoo().row.tolist()


def test_owners_of_runs_that_are_all_empty_is_empty() -> None:
    assert owners(np.zeros(3, dtype=np.int64)).tolist() == []
    assert owners(np.zeros(0, dtype=np.int64)).tolist() == []


def test_spans_are_every_position_of_each_range_in_turn_with_where_each_ends() -> None:
    starts = np.array([5, 0, 9, 9, 2], dtype=np.int64)
    stops = np.array([8, 2, 9, 12, 3], dtype=np.int64)

    positions, ends = spans(starts, stops)

    expected = [p for a, b in zip(starts, stops, strict=True) for p in range(a, b)]
    assert positions.tolist() == expected
    assert ends.tolist() == [3, 5, 5, 8, 9]


def test_spans_of_no_range_are_empty() -> None:
    none = np.zeros(0, dtype=np.int64)

    positions, ends = spans(none, none)

    assert positions.tolist() == [] and ends.tolist() == []
