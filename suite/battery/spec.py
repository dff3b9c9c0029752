"""A battery: optimizers × tasks × perturbations × seeds, from the CLI or a TOML file.

Everything is resolved and checked here, before any training starts: unknown names, bad
hyperparameters, malformed perturbation specs and unknown TOML keys all raise ``UsageError``.
Clean twins are added for every (optimizer, task, seed) and come first in the cell list.

TOML form (every key optional but ``optimizers``)::

    experiment    = "my-battery"
    optimizers    = ["adam", "adam-balanced[beta=0.99]", "mypkg.opt:MyAdam[lr=1e-3]"]
    tasks         = ["oracle", "digits-mlp"]
    perturbations = ["step:at=0.5,factor=10", "ramp:start=0.3,end=0.6,factor=100"]
    seeds         = 3            # or a list: [1, 10, 100]
    steps         = 200          # default: each task's own
    schedule      = "constant"   # or "warmup-cosine"; default: each task's own
    clip          = 1.0
    device        = "auto"
    cell_timeout  = 600          # seconds, or "off"; default: 120 s + steps × the task's per-step budget
    imports       = ["mypkg.opt"]
    omega_window  = 200          # EMA window of ω; default: scaled with the run length
    omega_warmup  = 150          # steps dropped before ω; default: the first 10%
    [task_options]               # applied to every task that has the option
    init = "sinusoidal"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gsibench.battery.cells import Cell
from gsibench.battery.limits import parse_timeout
from gsibench.battery.perturbations import parse as parse_perturbation
from gsibench.battery.perturbations import split_specs
from gsibench.battery.schedules import SCHEDULES
from gsibench.core.errors import UsageError, unknown_name
from gsibench.core.registry import import_plugins
from gsibench.core.specs import parse_named, split_list
from gsibench.optimizers import registry as optimizer_registry
from gsibench.tasks import registry as task_registry

DEFAULT_BATTERY = Path(__file__).parent / "default.toml"
MAX_SEEDS = 10_000
MAX_STEPS = 10_000_000
"""Limits that turn a hostile or mistyped number into a clear error instead of an out-of-memory crash."""


def parse_seeds(value: int | str | list[int]) -> list[int]:
    """``3`` -> [0, 1, 2]; ``'1,10,100'`` or ``[1, 10, 100]`` -> that list."""
    if isinstance(value, bool):
        raise UsageError(f"seeds must be a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if not 1 <= value <= MAX_SEEDS:
            raise UsageError(f"seeds must be a count from 1 to {MAX_SEEDS}, got {value}")
        return list(range(value))
    items = value.split(",") if isinstance(value, str) else value
    try:
        seeds = [int(str(s).strip()) for s in items if str(s).strip()]
    except ValueError:
        raise UsageError(f"seeds must be a count or a comma list of integers, got {value!r}") from None
    if len(seeds) == 1 and isinstance(value, str) and "," not in value:
        return parse_seeds(seeds[0])
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds must be distinct integers, got {value!r}")
    return seeds


def read_battery_file(path: str | Path) -> dict[str, Any]:
    """A battery TOML file as a table; every way it can be unreadable is a one-line UsageError."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"battery file '{path}' does not exist") from None
    except OSError as error:  # a folder, no permission, ...
        raise UsageError(f"battery file '{path}' cannot be read: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise UsageError(f"battery file '{path}' is not valid TOML: {error}") from None
    return data


@dataclass
class Battery:
    optimizers: list[str]
    tasks: list[str] = field(default_factory=lambda: ["oracle", "quadratic", "digits-mlp"])
    perturbations: list[str] = field(default_factory=lambda: ["step:at=0.5,factor=10"])
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int | None = None
    schedule: str | None = None
    warmup: float = 0.05
    clip: float | None = None
    device: str = "auto"
    imports: list[str] = field(default_factory=list)
    task_options: dict[str, Any] = field(default_factory=dict)
    experiment: str = "gsibench"
    omega_window: int | None = None
    omega_warmup: int | None = None
    cell_timeout: float | str | None = None
    """Seconds a cell may run, ``'off'``, or ``None`` for the default derived from the task's size
    (:mod:`gsibench.battery.limits`); not part of a cell's key."""
    tuned_lrs: dict[tuple[str, str], float] = field(default_factory=dict)
    """(optimizer spec, task spec) -> learning rate chosen by the tuning sweep (gsibench.execution.tuning). Used only
    where the optimizer spec does not set ``lr`` itself."""

    @classmethod
    def from_toml(cls, path: str | Path) -> Battery:
        return cls.from_mapping(read_battery_file(path), source=str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "battery") -> Battery:
        valid = {f.name for f in fields(cls)} - {"tuned_lrs"}  # set by the tuning step, not by users
        for key in data:
            if key not in valid:
                raise unknown_name("key", key, valid, where=source)
        if "optimizers" not in data:
            raise UsageError(f"{source} must list optimizers, e.g. optimizers = [\"adam\", \"adam-balanced\"]")
        values = dict(data)
        for key in ("optimizers", "tasks", "perturbations", "imports"):
            if key in values:
                if not isinstance(values[key], (str, list)) or (
                    isinstance(values[key], list) and not all(isinstance(v, str) for v in values[key])
                ):
                    raise UsageError(f"'{key}' in {source} must be a list of strings, got {values[key]!r}")
                if key == "perturbations" and isinstance(values[key], str):
                    values[key] = split_specs(values[key])
                else:
                    values[key] = list(split_list(values[key]))
        if "seeds" in values:
            values["seeds"] = parse_seeds(values["seeds"])
        if "cell_timeout" in values:
            values["cell_timeout"] = parse_timeout(values["cell_timeout"], f"cell_timeout in {source}")
        for key, kind in (("steps", int), ("warmup", (int, float)), ("clip", (int, float)), ("omega_window", int),
                          ("omega_warmup", int),
                          ("device", str), ("schedule", str), ("experiment", str), ("task_options", dict)):
            if key in values and values[key] is not None and (
                not isinstance(values[key], kind) or isinstance(values[key], bool)
            ):
                raise UsageError(f"'{key}' in {source} has the wrong type: {values[key]!r}")
        return cls(**values)

    def _check_settings(self) -> None:
        if not self.optimizers:
            raise UsageError("no optimizers given; e.g. --optimizers adam,adam-balanced")
        if not self.tasks:
            raise UsageError("no tasks given; e.g. --tasks oracle,digits-mlp")
        if self.steps is not None and not 2 <= self.steps <= MAX_STEPS:
            raise UsageError(f"steps must be from 2 to {MAX_STEPS}, got {self.steps}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise unknown_name("schedule", self.schedule, SCHEDULES)
        if not 0 <= self.warmup < 1:
            raise UsageError(f"warmup must be a fraction in [0, 1), got {self.warmup}")
        if self.omega_window is not None and self.omega_window < 1:
            raise UsageError(f"omega_window must be at least 1, got {self.omega_window}")
        if self.omega_warmup is not None and self.omega_warmup < 0:
            raise UsageError(f"omega_warmup must be at least 0, got {self.omega_warmup}")
        if self.clip is not None and not self.clip > 0:
            raise UsageError(f"clip must be > 0, got {self.clip}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UsageError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        import_plugins(self.imports)

    def check_names(self) -> None:
        """Every optimizer, task and perturbation name exists (a one-line error otherwise) — before any
        built-in family module, and so torch, is imported. The battery's ``imports`` (modules that register
        names with the decorators) are imported first."""
        import_plugins(self.imports)
        for spec in self.optimizers:
            optimizer_registry.REGISTRY.require(parse_named(spec)[0])
        for spec in self.tasks:
            task_registry.REGISTRY.require(parse_named(spec, example="digits-mlp[width=256]")[0])
        for spec in self.perturbations:
            parse_perturbation(spec)

    def describe(self, cells: int) -> str:
        """One line saying what this battery runs (printed before it runs)."""
        perturbations = ", ".join(self.perturbations) or "none"
        steps = self.steps if self.steps is not None else "each task's own"
        return (f"battery '{self.experiment}': {len(self.optimizers)} optimizers × {len(self.tasks)} tasks × "
                f"(clean + {len(self.perturbations)} perturbations) × {len(self.seeds)} seeds = {cells} cells; "
                f"steps: {steps}; seeds: {','.join(map(str, self.seeds))}; perturbations: {perturbations}")

    def _check_task_options(self, tasks: list) -> None:
        """Every key of ``task_options`` must be an option of at least one of the battery's tasks (a typo
        would otherwise be silently ignored); the values are checked per task when applied."""
        valid = {name for task in tasks for name in task.options}
        for key in self.task_options:
            if key not in valid:
                names = ", ".join(task.name for task in tasks)
                raise unknown_name("task option", key, valid,
                                   where=f"task_options ([task_options], --init, --text; tasks: {names})")

    def optimizer_displays(self) -> list[str]:
        """The canonical display spec of each optimizer (the leaderboard's row names)."""
        return [optimizer_registry.canonical(spec) for spec in self.optimizers]

    def plan(self) -> tuple[list[Cell], list[tuple[str, str]]]:
        """(cells, skipped tasks with the reason). Clean twins first, then perturbed cells."""
        self._check_settings()
        self.check_names()
        optimizer_specs = []
        for spec in self.optimizers:
            entry, hparams = optimizer_registry.resolve(spec, build=False)  # built before its cells run (driver)
            explicit_lr = "lr" in parse_named(spec)[1]
            optimizer_specs.append((optimizer_registry.canonical(spec), entry.name, hparams, explicit_lr))
        perturbations = [parse_perturbation(p).spec for p in self.perturbations]
        tasks = [(task_spec, *task_registry.resolve(task_spec)) for task_spec in self.tasks]
        self._check_task_options([task for _, task, _ in tasks])
        clean, perturbed, skipped = [], [], []
        for task_spec, task, options in tasks:
            shared = {k: v for k, v in self.task_options.items() if k in task.options}
            if shared:
                options = task.resolve_options({**options, **shared})
            reason = task.unavailable(options)
            if reason:
                skipped.append((task_spec, reason))
                continue
            for display, name, hparams, explicit_lr in optimizer_specs:
                tuned = self.tuned_lrs.get((display, task_spec))
                if tuned is not None and not explicit_lr:
                    hparams = {**hparams, "lr": tuned}
                for seed in self.seeds:
                    base = Cell.make(
                        optimizer=display, optimizer_name=name, hparams=hparams,
                        task=task_spec, task_name=task.name, task_options=options,
                        perturbation="none", seed=seed, steps=self.steps or task.default_steps,
                        schedule=self.schedule or task.schedule, warmup=self.warmup,
                        clip=self.clip if self.clip is not None else task.clip,
                        device=self.device, imports=tuple(self.imports),
                        omega_window=self.omega_window, omega_warmup=self.omega_warmup,
                    )
                    clean.append(base)
                    perturbed.extend(replace(base, perturbation=p) for p in perturbations if p != "none")
        return list(dict.fromkeys(clean)) + list(dict.fromkeys(perturbed)), skipped
