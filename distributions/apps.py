"""App configuration of distributions: connects the webhook and survey-progress receivers."""

from django.apps import AppConfig


class DistributionsConfig(AppConfig):
    name = "distributions"

    def ready(self) -> None:
        from distributions import receivers

        receivers.connect()
