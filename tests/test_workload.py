from collections import Counter

from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload, WorkerPlan
import pytest

from mcpool_cli.engine.workload import (DELETE, GET, GET_MULTI, SET, build_key_space, build_schedule, classify_get,
                                 make_value, multi_keys, owner_of_value)


def test_values_carry_their_key_and_size():
    space = build_key_space(Workload(keys=50, value_min=32, value_max=4096, seed=7, key_prefix="p:"))
    for key, value in zip(space.keys, space.values):
        assert owner_of_value(value) == key
        assert 32 <= len(value) <= 4096
    assert space == build_key_space(Workload(keys=50, value_min=32, value_max=4096, seed=7, key_prefix="p:"))
    assert space != build_key_space(Workload(keys=50, value_min=32, value_max=4096, seed=8, key_prefix="p:"))


def test_short_values_still_carry_their_key():
    assert make_value("p:k12", 2) == b"p:k12|"


def test_classify_get():
    right, other = make_value("p:k1", 40), make_value("p:k2", 40)
    assert classify_get("p:k1", right, right) == "ok"
    assert classify_get("p:k1", right, None) == "miss"
    assert classify_get("p:k1", right, other) == "wrong"
    assert classify_get("p:k1", right, right[:-3]) == "corrupt"
    assert classify_get("p:k1", right, b"STORED") == "corrupt"


def test_schedule_follows_ratio_and_seed():
    workload = Workload(keys=100, get_weight=9, set_weight=1, seed=3)
    schedule = build_schedule(workload, thread_token=0)
    ops = Counter(op for op, _ in schedule)
    assert 0.85 < ops[GET] / len(schedule) < 0.95
    assert all(0 <= key < 100 for _, key in schedule)
    assert schedule == build_schedule(workload, thread_token=0)
    assert schedule != build_schedule(workload, thread_token=1)
    only_sets = build_schedule(Workload(keys=10, get_weight=0, set_weight=1), 0)
    assert {op for op, _ in only_sets} == {SET}


@pytest.mark.parametrize("workload", [
    Workload(keys=5),
    Workload(keys=5, mix=(("get", 5), ("delete", 1), ("get_multi", 2)), distribution="zipf", zipf_s=1.3),
])
def test_worker_plan_round_trips_through_json(workload):
    plan = WorkerPlan(RunPlan(strategy="fifo", client=ClientConfig(servers=("127.0.0.1:1",),
                                                                   behaviors=(("tcp_nodelay", 1),)),
                              workload=workload, import_path=("/x",)), worker_index=1)
    assert WorkerPlan.from_json(plan.to_json()) == plan


def test_a_get_set_mix_is_the_same_schedule_as_the_ratio():
    ratio = Workload(keys=1000, get_weight=7, set_weight=3, seed=4)
    mix = Workload(keys=1000, get_weight=0, set_weight=0, seed=4, mix=(("set", 3), ("get", 7)))
    assert build_schedule(ratio, 2) == build_schedule(mix, 2)


def test_schedule_follows_the_op_mix():
    workload = Workload(keys=1000, mix=(("get", 5), ("set", 2), ("delete", 1), ("get_multi", 2)), seed=1)
    ops = Counter(op for op, _ in build_schedule(workload, 0))
    shares = {op: ops[op] / sum(ops.values()) for op in (GET, SET, DELETE, GET_MULTI)}
    for op, share in ((GET, 0.5), (SET, 0.2), (DELETE, 0.1), (GET_MULTI, 0.2)):
        assert abs(shares[op] - share) < 0.03, shares
    no_deletes = build_schedule(Workload(keys=10, mix=(("get", 1), ("delete", 0))), 0)
    assert {op for op, _ in no_deletes} == {GET}


def test_zipf_schedule_is_skewed_toward_the_first_keys():
    zipf = Workload(keys=10_000, distribution="zipf", zipf_s=1.0, seed=5)
    picks = Counter(key for _, key in build_schedule(zipf, 0))
    ranked = sorted(picks.values(), reverse=True)
    assert picks.most_common(1)[0][0] == 0  # key 0 is the hottest
    assert picks[0] > 20 * ranked[len(ranked) // 2]  # the top key gets far more picks than the median one
    assert 0.07 < picks[0] / 4096 < 0.14  # 1 / H(10000) ≈ 0.102 of the picks
    assert all(0 <= key < 10_000 for key in picks)
    uniform = Counter(key for _, key in build_schedule(Workload(keys=10_000, seed=5), 0))
    assert max(uniform.values()) < 10


def test_zipf_schedule_is_deterministic_by_seed_and_steeper_with_s():
    zipf = Workload(keys=1000, distribution="zipf", seed=9)
    assert build_schedule(zipf, 3) == build_schedule(zipf, 3)
    assert build_schedule(zipf, 3) != build_schedule(zipf, 4)
    assert build_schedule(zipf, 3) != build_schedule(Workload(keys=1000, distribution="zipf", seed=10), 3)
    steep = Workload(keys=1000, distribution="zipf", zipf_s=2.0, seed=9)
    top = [sum(1 for _, key in build_schedule(w, 0) if key == 0) for w in (zipf, steep)]
    assert top[1] > 2 * top[0]  # s=2 puts ~61% of the picks on key 0, s=1 ~13%


def test_unknown_distribution_is_refused():
    with pytest.raises(ValueError, match="distribution"):
        build_schedule(Workload(keys=10, distribution="pareto"), 0)


def test_get_multi_takes_the_key_and_the_next_three_wrapping():
    assert multi_keys(5, 100) == [5, 6, 7, 8]
    assert multi_keys(98, 100) == [98, 99, 0, 1]
    assert multi_keys(0, 2) == [0, 1]  # never the same key twice
