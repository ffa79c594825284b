"""App configuration: loads every task type module so the registry is complete."""

from django.apps import AppConfig


class XmflowsConfig(AppConfig):
    name = "xmflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        from contacts.deletion import register_guard
        from surveys.deletion import register_guard as register_survey_guard
        from xmflows.selectors import tasks_using_mailing_lists, tasks_using_surveys
        from xmflows.task_types import autodiscover

        autodiscover()
        register_guard(tasks_using_mailing_lists)
        register_survey_guard(tasks_using_surveys)
