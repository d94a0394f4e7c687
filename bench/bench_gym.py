"""reasoning-gym bridge: every registered dataset through the harness (run: .venv/bin/python bench/bench_gym.py).

For each rg dataset (default config, 3 items): does rg's oracle answer, put in <answer> tags and scored by the
harness `reasoning_gym` verifier through the JSON entry in the sample's `answer`, score 1.0? And how long does the
dataset's score_answer take on adversarial answers of max_answer_chars (10,000) characters? Then: tag extraction
(rg's regex vs the harness's linear scan) on a 1 MB response of unclosed tags. Prints numbers; asserts nothing.
"""

import random
import signal
import sys
import time

from harness.gym import datasets, make_dataset, sample_fields
from harness.verifiers import get_verifier
from harness.verifiers.gym import extract_tag

N_ITEMS, LIMIT = 3, 10_000


class Slow(Exception):
    pass


def _alarm(*_):
    raise Slow()


def main() -> None:
    signal.signal(signal.SIGALRM, _alarm)
    v = get_verifier("reasoning_gym")
    rnd = random.Random(0)
    junk = {
        "digits": "9" * LIMIT,
        "parens": "(" * (LIMIT // 2) + ")" * (LIMIT // 2),
        "mixed": "".join(rnd.choice("0123456789+-*/() abcxyz,.\n[]{}=^") for _ in range(LIMIT)),
    }
    ok = no_oracle = failed = 0
    worst = []
    for name in sorted(datasets()):
        if name == "composite":
            continue  # needs a list of datasets as config
        try:
            signal.alarm(60)
            ds = make_dataset(name, "{}", 0, 10)
            scores = []
            for i in range(N_ITEMS):
                e = ds[i]
                if e["answer"] is None:
                    scores.append(None)
                    continue
                f = sample_fields(name, {}, e)
                scores.append(v(f"Reasoning first.\n<answer>{e['answer']}</answer>", f["answer"]).score)
            t_max = 0.0
            for kind, text in junk.items():
                t0 = time.perf_counter()
                v(
                    f"<answer>{text}</answer>",
                    f["answer"] if scores[-1] is not None else sample_fields(name, {}, e)["answer"],
                )
                t_max = max(t_max, time.perf_counter() - t0)
            signal.alarm(0)
        except Slow:
            print(f"{name:32s} over 60 s", flush=True)
            failed += 1
            continue
        if all(s is None for s in scores):
            no_oracle += 1
        elif all(s == 1.0 for s in scores if s is not None):
            ok += 1
        else:
            failed += 1
            print(f"{name:32s} oracle scores {scores}", flush=True)
        worst.append((t_max, name))
    worst.sort(reverse=True)
    print(
        f"datasets: {ok + no_oracle + failed}; oracle answer scores 1.0 on all {N_ITEMS} items: {ok}; "
        f"no oracle answer (rg gives None): {no_oracle}; other: {failed}"
    )
    print(
        "slowest score_answer on a 10,000-char adversarial answer: "
        + ", ".join(f"{n} {t * 1000:.1f} ms" for t, n in worst[:5])
    )
    big = "<answer>" * 125_000  # 1 MB of unclosed opening tags
    t0 = time.perf_counter()
    extract_tag(big)
    t_ours = time.perf_counter() - t0
    from reasoning_gym.utils import extract_answer

    small = "<answer>" * 12_500  # 100 KB for rg's regex (quadratic)
    t0 = time.perf_counter()
    extract_answer(small)
    t_rg = time.perf_counter() - t0
    print(
        f"extract: harness scan on 1 MB of unclosed tags {t_ours * 1000:.1f} ms; "
        f"reasoning_gym.utils.extract_answer on 100 KB of them {t_rg * 1000:.0f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
