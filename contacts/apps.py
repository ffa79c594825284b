"""App configuration of the contact directory."""

from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    verbose_name = "Contact directory"

    def ready(self) -> None:
        from contacts import signals  # noqa: F401 - connects the opt-out receivers
