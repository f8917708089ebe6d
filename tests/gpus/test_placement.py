"""Placement: best fit on one node, lowest GPU indices, deterministic."""

from gpus.placement import NodeFree, Placement, place


def test_it_takes_the_tightest_node_that_fits():
    nodes = [NodeFree("a", (0, 1, 2, 3)), NodeFree("b", (2, 3)), NodeFree("c", (0,))]
    assert place(2, nodes) == Placement("b", (2, 3))


def test_it_keeps_whole_nodes_for_big_jobs():
    nodes = [NodeFree("big", (0, 1, 2, 3, 4, 5, 6, 7)), NodeFree("small", (5,))]
    assert place(1, nodes) == Placement("small", (5,))


def test_it_never_splits_a_job_across_nodes():
    assert place(3, [NodeFree("a", (0, 1)), NodeFree("b", (0, 1))]) is None


def test_ties_go_to_the_node_name_and_lowest_indices():
    assert place(1, [NodeFree("b", (3, 1)), NodeFree("a", (7, 2))]) == Placement("a", (2,))


def test_no_nodes_means_no_placement():
    assert place(1, []) is None
