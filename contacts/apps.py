"""App configuration of the contact directory."""

from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    verbose_name = "Contact directory"
