"""Placement: best fit on one node, lowest GPU indices, deterministic."""

from gpus.placement import PLAIN, GpuSpec, Needs, NodeFree, Placement, could_ever_fit, place


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


# Constraints: memory, model glob, device ids, label globs, target.

A100 = GpuSpec(81920, "NVIDIA A100-SXM4-80GB")
L4 = GpuSpec(24576, "NVIDIA L4")


def node(name, free, spec=L4, count=4, labels=None, local=False, specs=None):
    return NodeFree(name, tuple(free), specs or {i: spec for i in range(count)}, labels or {}, local)


def test_memory_excludes_small_gpus():
    nodes = [node("small", (0, 1)), node("big", (0, 1, 2, 3), spec=A100)]
    assert place(1, nodes) == Placement("small", (0,))
    assert place(1, nodes, Needs(min_memory_mb=40000)) == Placement("big", (0,))


def test_memory_and_model_apply_per_gpu_on_mixed_nodes():
    mixed = node("mixed", (0, 1, 2), specs={0: L4, 1: A100, 2: A100})
    assert place(2, [mixed], Needs(min_memory_mb=80000)) == Placement("mixed", (1, 2))
    assert place(3, [mixed], Needs(min_memory_mb=80000)) is None


def test_model_is_a_case_insensitive_glob():
    nodes = [node("l4", (0,)), node("a100", (0,), spec=A100)]
    assert place(1, nodes, Needs(model="*a100*")) == Placement("a100", (0,))
    assert place(1, nodes, Needs(model="NVIDIA L?")) == Placement("l4", (0,))
    assert place(1, nodes, Needs(model="H100*")) is None
    assert place(1, nodes, Needs(model="a100*")) == Placement("a100", (0,))  # without "NVIDIA "


def test_gpus_of_unknown_spec_never_satisfy_memory_or_model():
    bare = NodeFree("bare", (0, 1))
    assert place(1, [bare]) == Placement("bare", (0,))
    assert place(1, [bare], Needs(min_memory_mb=1)) is None


def test_device_ids_take_exactly_those_gpus_or_wait():
    nodes = [node("a", (0, 2, 3)), node("b", (1, 3))]
    assert place(2, nodes, Needs(device_ids=(3, 1))) == Placement("b", (1, 3))
    assert place(1, nodes, Needs(device_ids=(2,))) == Placement("a", (2,))
    assert place(2, nodes, Needs(device_ids=(0, 1))) is None  # no node has both free


def test_every_label_glob_must_match():
    nodes = [
        node("x", (0,), labels={"gpu_type": "a100-80g", "zone": "eu"}),
        node("y", (0,), labels={"gpu_type": "a100-40g", "zone": "us"}),
    ]
    assert place(1, nodes, Needs(labels=(("gpu_type", "a100*"), ("zone", "us")))) == Placement("y", (0,))
    assert place(1, nodes, Needs(labels=(("gpu_type", "a100*"), ("zone", "ap")))) is None
    assert place(1, nodes, Needs(labels=(("rack", "*"),))) == Placement("x", (0,))  # missing label is ""
    assert place(1, nodes, Needs(labels=(("rack", "?*"),))) is None


def test_target_picks_local_or_worker_and_auto_prefers_workers_on_ties():
    nodes = [node("server", (0, 1), local=True), node("worker", (0, 1))]
    assert place(1, nodes) == Placement("worker", (0,))
    assert place(1, nodes, Needs(target="local")) == Placement("server", (0,))
    assert place(1, [nodes[0]], Needs(target="worker")) is None


def test_best_fit_counts_only_usable_gpus():
    # "a" has 4 free GPUs but only one large one; "b" has two large ones: the tightest usable is "a".
    a = node("a", (0, 1, 2, 3), specs={0: A100, 1: L4, 2: L4, 3: L4})
    b = node("b", (0, 1), spec=A100, count=2)
    assert place(1, [a, b], Needs(min_memory_mb=80000)) == Placement("a", (0,))


def test_could_ever_fit_looks_at_all_gpus_not_just_free_ones():
    busy = node("busy", (), spec=A100)
    assert could_ever_fit(4, [busy], Needs(model="*A100*"))
    assert not could_ever_fit(5, [busy], Needs(model="*A100*"))
    assert not could_ever_fit(1, [busy], Needs(model="H100"))


def test_needs_of_stored_fields_is_plain_when_nothing_is_asked():
    assert Needs.of(None, "", [], {}, "auto") == PLAIN
    assert Needs.of(0, None, None, None, None).plain
    assert Needs.of(1, "A*", [1, 0], {"b": "2", "a": "1"}, "worker") == Needs(
        1, "A*", (1, 0), (("a", "1"), ("b", "2")), "worker"
    )
