"""Re-distillation data and what a run's record counts (issue 12, items 4 and 8): a truncated response is never kept
as re-distillation data, and `harness run --method redistill --teacher RUN_ID` counts the RL chain's cost, as the
recipe path does when it trains the chain itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness import pipeline
from harness.data import load_split, render_prompt
from harness.engines import Generation
from harness.records import write_record
from harness.tasks import get_task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pipeline import FAST, _letters_task  # noqa: E402


class ScriptedEngine:
    """Answers prompt i of the RL split with the correct boxed answer: cut off at the length limit for the first
    four prompts, ended with EOS for the others."""

    name = "scripted"

    def __init__(self, spec):
        rows = load_split(spec, "rl", limit=64)
        self.answers = {json.dumps(render_prompt(spec, r)): (i, r["answer"]) for i, r in enumerate(rows)}

    def generate(self, prompts, params, on_batch=None):
        out = []
        for p in prompts:
            i, answer = self.answers[json.dumps(p)]
            out.append([Generation(f"So: \\boxed{{{answer}}}", 12, truncated=i < 4)] * params.n)
        return out


def test_truncated_correct_responses_are_never_redistillation_data(tmp_path, monkeypatch):
    import harness.engines

    spec = get_task("kk")
    assert spec.verifier.params.get("require_eos", False) is False  # the verifier alone would accept them
    monkeypatch.setattr(harness.engines, "make_engine", lambda *a, **k: ScriptedEngine(spec))
    ctx = pipeline.Context(
        task=spec,
        recipe_name="test",
        recipe={"redistill": {"variant": "B"}},
        base_model="x",
        base_ref=str(tmp_path / "base"),
        seed=0,
        root=tmp_path,
    )
    info = pipeline.stage_sample(ctx, str(tmp_path / "teacher"), target=8)
    kept = [json.loads(x) for x in Path(info["data_path"]).read_text().splitlines()]
    first = {r["id"] for r in load_split(spec, "rl", limit=4)}
    assert len(kept) == 60 and not first & {r["id"] for r in kept}


class ManyLengthsEngine(ScriptedEngine):
    """Four correct answers per prompt, 30, 10, 20 and 10 tokens long (the text says which), all ended with EOS."""

    def generate(self, prompts, params, on_batch=None):
        assert params.n == 4
        out = []
        for p in prompts:
            _, answer = self.answers[json.dumps(p)]
            out.append(
                [
                    Generation(f"{n} tokens {k}: \\boxed{{{answer}}}", n, truncated=False)
                    for k, n in enumerate((30, 10, 20, 10))
                ]
            )
        return out


def test_redistill_keep_shortest_takes_the_fewest_tokens(tmp_path, monkeypatch):
    import harness.engines
    from harness.errors import HarnessError

    spec = get_task("kk")
    monkeypatch.setattr(harness.engines, "make_engine", lambda *a, **k: ManyLengthsEngine(spec))

    def sample(**rd):
        ctx = pipeline.Context(
            task=spec,
            recipe_name="test",
            base_model="x",
            base_ref=str(tmp_path / "base"),
            seed=0,
            root=tmp_path,
            recipe={"redistill": {"variant": "B", "samples_per_prompt": 4, **rd}},
        )
        info = pipeline.stage_sample(ctx, str(tmp_path / "teacher"), target=8)
        assert ctx.stages[-1]["keep"] == info["keep"]  # in the run record with the stage
        return info, [json.loads(x) for x in Path(info["data_path"]).read_text().splitlines()]

    info, kept = sample(keep="shortest")
    assert info["keep"] == "shortest" and info["config"]["keep"] == "shortest"
    assert {r["completion"].split(":")[0] for r in kept} == {"10 tokens 1"}  # the first of the shortest
    assert info["mean_kept_tokens"] == 10
    info, kept = sample()  # the default: one at random (seeded), and the cache key of older stages is unchanged
    assert info["keep"] == "random" and "keep" not in info["config"]
    assert len({r["completion"].split(":")[0] for r in kept}) == 4 and 10 < info["mean_kept_tokens"] < 30
    with pytest.raises(HarnessError, match="redistill.keep must be random .* or shortest"):
        sample(keep="longest")


def test_redistill_from_a_teacher_run_counts_the_rl_chain(tmp_path):
    from harness.models import resolve
    from harness.run import run

    tasks = _letters_task(tmp_path)
    root = tmp_path / "runs"
    policy = resolve("tiny", get_task("letters", [tasks]))  # stands in for the RL policy's folder
    chain = [
        {
            "stage": "sft",
            "key": "coldstart",
            "cached": False,
            "wall_seconds": 5.0,
            "counts": {"optimizer_steps": 2, "sequences_trained": 16, "tokens_trained": 1000},
        },
        {
            "stage": "rl",
            "key": "grpo",
            "cached": False,
            "wall_seconds": 7.0,
            "counts": {
                "optimizer_steps": 4,
                "sequences_trained": 64,
                "tokens_trained": 5000,
                "tokens_forward_only": 700,
                "rollouts_generated": 32,
                "tokens_generated": 400,
            },
        },
    ]
    write_record(
        root,
        "teacher-rl",
        {
            "kind": "run",
            "method": "rl",
            "budget": 8,
            "config": {"task": "letters"},
            "counts": {"tokens_generated": 10**6},
            "stages": chain,
            "model_path": policy,
        },
    )
    sets = FAST + ["redistill.samples_per_prompt=4", "redistill.temperature=1.0", "redistill.max_new_tokens=64"]
    _, rec = run(
        task="letters",
        method="redistill",
        budget="2",
        teacher="teacher-rl",
        sets=sets,
        runs_dir=root,
        tasks_dirs=[tasks],
    )
    stages = rec["stages"]
    assert [(s["stage"], s.get("inherited_from")) for s in stages] == [
        ("sft", "teacher-rl"),
        ("rl", "teacher-rl"),
        ("sample", None),
        ("sft", None),
    ]
    own = [s["counts"] for s in stages[2:]]
    c = rec["counts"]
    # the chain's training counts, not the teacher's evaluation (its record's 10**6 generated tokens)
    assert c["tokens_trained"] == 6000 + sum(x.get("tokens_trained", 0) for x in own)
    assert c["tokens_forward_only"] == 700 and c["optimizer_steps"] == 6 + sum(x.get("optimizer_steps", 0) for x in own)
    assert c["rollouts_generated"] == 32 + own[0]["rollouts_generated"]
    n = c["model_parameters"]
    assert c["flops_estimate"] == 6 * n * c["tokens_trained"] + 2 * n * (c["tokens_generated"] + 700)
    assert rec["wall_seconds"]["rl-grpo"] == 7.0


@pytest.mark.parametrize(
    "counts,fwd",
    [
        ({"tokens_trained": 10, "tokens_generated": 4}, 0),
        ({"tokens_trained": 10, "tokens_generated": 4, "tokens_forward_only": 3}, 3),
    ],
)
def test_inherit_stages_skips_missing_runs_and_repeats(tmp_path, counts, fwd):
    write_record(tmp_path, "r1", {"kind": "run", "stages": [{"stage": "rl", "key": "k", "counts": counts}]})
    ctx = pipeline.Context(
        task=get_task("kk"), recipe_name="t", recipe={}, base_model="x", base_ref="x", seed=0, root=tmp_path
    )
    pipeline.inherit_stages(ctx, "no-such-run")
    assert ctx.stages == []
    pipeline.inherit_stages(ctx, "r1")
    pipeline.inherit_stages(ctx, "r1")
    assert len(ctx.stages) == 1 and ctx.stages[0]["inherited_from"] == "r1" and ctx.stages[0]["cached"] is True
    assert ctx.stages[0]["counts"].get("tokens_forward_only", 0) == fwd
