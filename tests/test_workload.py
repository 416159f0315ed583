from collections import Counter

from mcpool_cli.plan import ClientConfig, RunPlan, Workload, WorkerPlan
from mcpool_cli.workload import GET, SET, build_key_space, build_schedule, classify_get, make_value, owner_of_value


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


def test_worker_plan_round_trips_through_json():
    plan = WorkerPlan(RunPlan(strategy="fifo", client=ClientConfig(servers=("127.0.0.1:1",),
                                                                   behaviors=(("tcp_nodelay", 1),)),
                              workload=Workload(keys=5), import_path=("/x",)), worker_index=1)
    assert WorkerPlan.from_json(plan.to_json()) == plan
