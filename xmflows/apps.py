"""App configuration: loads every task type module so the registry is complete."""

from django.apps import AppConfig


class XmflowsConfig(AppConfig):
    name = "xmflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        from contacts.deletion import register_guard
        from xmflows.selectors import tasks_using_mailing_lists
        from xmflows.task_types import autodiscover

        autodiscover()
        register_guard(tasks_using_mailing_lists)
