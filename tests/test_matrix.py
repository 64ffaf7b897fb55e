"""Matrix expansion: per-method values, shared axes, zip, include/exclude, determinism."""

from __future__ import annotations

from ftsweep.matrix import expand, nested_set


def _pts(matrix):
    exp = expand(matrix)
    assert not exp.problems, exp.problems
    return [(p.method, p.as_dict()) for p in exp.points]


def test_per_method_values_and_list_valued_params():
    pts = _pts(
        {
            "method": [
                {"name": "full", "training.lr": [1e-4, 3e-4]},
                {
                    "name": "lora",
                    "r": [4, 16],
                    "alpha": 32,
                    "target_modules": ["q_proj", "v_proj"],
                    "training.lr": [1e-3, 3e-3],
                },
            ],
            "training.batch_size": [16],
        }
    )
    assert len(pts) == 2 + 4
    lora = [v for m, v in pts if m == "lora"]
    # a flat list for a list-typed parameter is one value, not an axis
    assert all(v["target_modules"] == ["q_proj", "v_proj"] for v in lora)
    assert sorted((v["r"], v["training.lr"]) for v in lora) == [
        (4, 1e-3),
        (4, 3e-3),
        (16, 1e-3),
        (16, 3e-3),
    ]
    assert all(v["training.batch_size"] == 16 for _, v in pts)


def test_list_of_lists_is_an_axis_for_list_params():
    pts = _pts({"method": [{"name": "lora", "target_modules": [["q_proj"], ["q_proj", "v_proj"]]}]})
    assert [v["target_modules"] for _, v in pts] == [["q_proj"], ["q_proj", "v_proj"]]


def test_method_value_replaces_shared_axis():
    pts = _pts(
        {"method": ["full", {"name": "lora", "training.lr": 1e-3}], "training.lr": [1e-5, 2e-5]}
    )
    assert sorted(v["training.lr"] for m, v in pts if m == "full") == [1e-5, 2e-5]
    assert [v["training.lr"] for m, v in pts if m == "lora"] == [1e-3]


def test_zip_varies_together():
    pts = _pts(
        {
            "method": ["full"],
            "zip": [{"training.lr": [1e-4, 3e-4], "training.warmup_steps": [0, 10]}],
        }
    )
    assert sorted((v["training.lr"], v["training.warmup_steps"]) for _, v in pts) == [
        (1e-4, 0),
        (3e-4, 10),
    ]


def test_zip_needs_equal_lengths():
    exp = expand(
        {"method": ["full"], "zip": [{"training.lr": [1, 2], "training.warmup_steps": [0]}]}
    )
    assert exp.problems and "equal length" in exp.problems[0][1]


def test_include_and_exclude():
    pts = _pts(
        {
            "method": [{"name": "full", "training.lr": [1e-4, 3e-4]}],
            "include": [{"method": "lora", "r": 64, "training.lr": 1e-3}],
            "exclude": [{"method": "full", "training.lr": 3e-4}],
        }
    )
    assert pts == [("full", {"training.lr": 1e-4}), ("lora", {"r": 64, "training.lr": 1e-3})]


def test_exclude_matching_nothing_is_a_problem():
    exp = expand({"method": ["full"], "exclude": [{"method": "lora"}]})
    assert any("matches no run" in m for _, m, _ in exp.problems)


def test_unknown_keys_and_methods_are_reported_together():
    exp = expand({"method": [{"name": "lora", "alpah": [4]}, {"name": "ful"}], "trainng.lr": [1]})
    msgs = " | ".join(m for _, m, _ in exp.problems)
    assert "did you mean 'alpha'" in msgs
    assert "did you mean 'full'" in msgs
    assert "did you mean 'training.lr'" in msgs
    paths = [p for p, _, _ in exp.problems]
    assert ("matrix", "method", 0, "alpah") in paths and ("matrix", "method", 1, "name") in paths


def test_expansion_is_deterministic():
    m = {"method": [{"name": "lora", "r": [16, 4], "alpha": [8, 32]}], "training.lr": [3, 1]}
    assert _pts(m) == _pts(m)
    # shared axes vary slowest, then the method's own keys in sorted order; values keep file order
    assert _pts(m)[:3] == [
        ("lora", {"alpha": 8, "r": 16, "training.lr": 3}),
        ("lora", {"alpha": 8, "r": 4, "training.lr": 3}),
        ("lora", {"alpha": 32, "r": 16, "training.lr": 3}),
    ]


def test_duplicate_points_collapse():
    pts = _pts({"method": [{"name": "lora", "r": [4]}], "include": [{"method": "lora", "r": 4}]})
    assert len(pts) == 1


def test_nested_set_is_a_deep_merge():
    cfg = {"training": {"early_stopping": {"patience": None, "threshold": 0.01}, "lr": 1}}
    nested_set(cfg, "training.early_stopping.patience", 3)
    assert cfg["training"]["early_stopping"] == {"patience": 3, "threshold": 0.01}
    assert cfg["training"]["lr"] == 1


def test_inputs_cannot_vary_and_bad_shapes_are_problems_not_crashes():
    exp = expand(
        {
            "method": ["full"],
            "data.train": ["a.jsonl", "b.jsonl"],
            1: [2],
            "include": [{"method": ["lora", "full"]}],
        }
    )
    msgs = " | ".join(m for _, m, _ in exp.problems)
    assert "cannot vary inside an experiment" in msgs
    assert "matrix keys are names" in msgs
    assert "an include entry needs a known 'method'" in msgs
