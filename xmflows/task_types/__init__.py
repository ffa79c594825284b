"""Registry of task types: one module per type in this package, registered by a decorator."""

import importlib
import pkgutil

from xmflows.task_types.base import TaskContext, TaskError, TaskOutcome, TaskType

_registry: dict[str, type[TaskType]] = {}

__all__ = ["TaskContext", "TaskError", "TaskOutcome", "TaskType", "all_types", "get", "register"]


def register(cls: type[TaskType]) -> type[TaskType]:
    if not cls.key:
        raise ValueError(f"{cls.__name__} has no key")
    if cls.key in _registry and _registry[cls.key] is not cls:
        raise ValueError(f"task type {cls.key!r} is registered twice")
    _registry[cls.key] = cls
    return cls


def unregister(key: str) -> None:
    _registry.pop(key, None)


def get(key: str) -> type[TaskType] | None:
    return _registry.get(key)


def all_types() -> dict[str, type[TaskType]]:
    return dict(_registry)


def autodiscover() -> None:
    # Importing every module of this package runs its @register decorators, so a new
    # task type is one new file, with no change to the engine.
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
