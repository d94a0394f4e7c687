"""Training methods, by registered name: what `harness run --method NAME` trains, and what every other command needs
to know about its runs. Nothing else in the harness names a method.

A method is one module that builds a `Method` and registers it when imported:

    from harness.methods import Method, Section, register

    def train(ctx, budget, init, teacher, teacher_model):   # ctx: harness.pipeline.Context
        ...  # run (or reuse) cached stages (harness.pipeline: cached_stage, stage_sft, ...)
        return model_path                                    # the model to evaluate

    register(Method(name="mine", summary="...", train=train, section=Section("mine", {"key": 1})))

plus, where a recipe should set it, its section in backends/recipes/*.yaml (without one its defaults apply). The
CLI, `compare`, `launch`, `effect`, `leaderboard` and recipe validation ask this registry. A user's method comes in
as a plugin (--plugin, $HARNESS_PLUGINS, entry points: harness/plugins.py), like a verifier.

The built-ins are the modules of this package (base.py, sft.py, rl.py, redistill.py, ...; not those starting with _),
so a new one is its file and nothing else. They are imported by name the first time the registry is used
(registry.LazyRegistry): they train through the pipeline, whose backends check recipes, which ask this registry for
the methods' sections.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from harness.registry import LazyRegistry

BUILTINS = tuple(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))

# The counts a run record sums over its stages (inherited ones too), in this order. tokens_forward_only: tokens through
# a forward pass without a backward (GRPO's old log-probs when mu > 1, a KL reference model), at 2N FLOPs per token
# against 6N for a trained token.
COUNT_KEYS = (
    "rollouts_generated",
    "sequences_trained",
    "tokens_generated",
    "tokens_trained",
    "optimizer_steps",
    "tokens_forward_only",
)
# Tokens through a forward and a backward pass without an optimizer step (a method that scores its data by gradients),
# 6N FLOPs a token like a trained one; in a record only when its method's count_keys name it.
GRADIENT_COUNT = "tokens_gradient"

TrainFn = Callable[[Any, int, Optional[str], Optional[str], Optional[str]], str]


@dataclass(frozen=True)
class Section:
    """A recipe section a method owns: every key it accepts with its default (None: unset, the method decides), rules
    for values (key -> (ok, what it must be) or (ok, what, fix): harness.recipes.check_values), and `variants`: keys
    whose value off its default makes a run its own leaderboard row in the same set-up (`redistill (filter
    faithful)`); the set-up's recipe hash leaves them out."""

    name: str
    defaults: Mapping[str, Any]
    rules: Mapping[str, tuple] = field(default_factory=dict)
    variants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted((set(self.rules) | set(self.variants)) - set(self.defaults))
        if unknown:
            raise ValueError(f"recipe section '{self.name}': rules or variants name keys without a default: {unknown}")

    def values(self, recipe: dict) -> dict:
        """The section as a run reads it: its defaults, then the recipe's values."""
        return {**self.defaults, **(recipe.get(self.name) or {})}


@dataclass(frozen=True)
class Method:
    """One training method. `train(ctx, budget, init, teacher, teacher_model)` runs its stages and returns the model
    to evaluate; the other fields say how the harness treats its runs."""

    name: str
    summary: str  # one line for `harness methods`
    train: TrainFn
    trains: bool = True  # False: evaluates the model as it is, takes no --budget
    starts_from: Optional[str] = "base"  # the model its training starts from: base, or "init" (--init / init_key)
    init_key: Optional[str] = None  # starts_from "init": the recipe key with the default start, "rl.init"
    teacher: Optional[str] = None  # what --teacher names for it (None: it takes none)
    teacher_model: bool = False  # takes --teacher-model
    section: Optional[Section] = None  # its own recipe section
    count_keys: tuple[str, ...] = COUNT_KEYS  # the stage counts that add up into its runs' cost
    demonstrations: bool = False  # its last stage is SFT on demonstrations (`harness effect` run:ID, --predict)
    order: int = 9  # its place among methods in leaderboards
    wave: int = 0  # a grid's jobs run in waves (harness/launch.py): 0 needs no other cell

    @property
    def origin(self) -> str:
        """The module that defines it (a plugin's, or harness.methods.*), for messages about who registered a name."""
        return getattr(self.train, "__module__", None) or "?"


METHODS: LazyRegistry[Method] = LazyRegistry("method", BUILTINS)


def register(method: Method) -> Method:
    return METHODS.register(method.name)(method)


def get(name: str) -> Method:
    """The method, or one HarnessError with the near miss (and how to load a plugin's)."""
    return METHODS.get(name)


def find(name: Any) -> Optional[Method]:
    """The method, or None (a record of a method whose plugin is not loaded): readers of records fall back."""
    return METHODS.get(name) if isinstance(name, str) and name in METHODS else None


def all_methods() -> list[Method]:
    """Every registered method, in leaderboard order."""
    return sorted((METHODS.get(n) for n in METHODS.names()), key=lambda m: (m.order, m.name))


def names() -> list[str]:
    return [m.name for m in all_methods()]


def order(name: Any) -> int:
    m = find(name)
    return m.order if m else 9


def sections() -> dict[str, Section]:
    """Recipe section name -> the section a method declares."""
    return {m.section.name: m.section for m in all_methods() if m.section is not None}


def demonstration_methods() -> list[str]:
    """Methods whose runs end with SFT on demonstrations, whose training data `harness effect` can measure."""
    return [m.name for m in all_methods() if m.demonstrations]


def grid_args(name: str, init: Optional[str], teacher: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """The grid's --init and --teacher as one cell of method `name` gets them: --init where it starts from one,
    --teacher where it takes one. base, which trains nothing, gets --teacher too and ignores it: grids always gave it,
    and a base cell's key (compare.cell_key) holds it, so records made so are found again."""
    m = get(name)
    return (init if m.starts_from == "init" else None, teacher if m.teacher is not None or not m.trains else None)


def train_for_method(
    ctx: Any, method: str, budget: int, init: Optional[str], teacher: Optional[str], teacher_model: Optional[str] = None
) -> str:
    """Run (or reuse) the stages of a method; return the model to evaluate."""
    return get(method).train(ctx, budget, init, teacher, teacher_model)


def run_counts(method: Method, stages: list[dict], eval_tokens: int, budget: int, n_params: int) -> dict:
    """A run's cost: its method's counts summed over the stages, the evaluation's generated tokens, the budget, and
    FLOPs (6N per token through a backward pass, 2N per token only generated or forwarded)."""
    counts = {
        k: sum(st.get("counts", {}).get(k, 0) for st in stages) + (eval_tokens if k == "tokens_generated" else 0)
        for k in method.count_keys
    }
    counts["training_examples"] = budget
    backward = counts["tokens_trained"] + counts.get(GRADIENT_COUNT, 0)  # + 0: the sum records always had
    counts["flops_estimate"] = 6 * n_params * backward + 2 * n_params * (
        counts["tokens_generated"] + counts["tokens_forward_only"]
    )
    counts["model_parameters"] = n_params
    return counts
