"""App configuration: loads every task type module so the registry is complete."""

from django.apps import AppConfig


class XmflowsConfig(AppConfig):
    name = "xmflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        from xmflows.task_types import autodiscover

        autodiscover()
