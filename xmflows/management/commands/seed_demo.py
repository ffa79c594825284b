"""`manage.py seed_demo [--json]`: idempotent demo data for a first look (CONTRACT.md §3)."""

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from xmflows.demo import demo_seed

ADMIN_USERNAME = "admin"


def _admin_password() -> str:
    # Generated once and kept beside the database, so every run prints the same, valid
    # credentials without a well-known default password.
    path = settings.VAR_DIR / "admin_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


class Command(BaseCommand):
    help = "Create (or refresh) the demo admin, API token, directory, survey and workflow."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object only")

    def handle(self, *args, **options):
        password = _admin_password()
        with transaction.atomic():
            user_model = get_user_model()
            admin, created = user_model.objects.get_or_create(
                username=ADMIN_USERNAME,
                defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
            )
            admin.is_staff = admin.is_superuser = admin.is_active = True
            # Only a new admin gets the file's password: setting it again on every
            # start would sign everyone out and undo a password changed since.
            if created or not admin.has_usable_password():
                admin.set_password(password)
            admin.save()
            token, _ = Token.objects.get_or_create(user=admin)
            demo = demo_seed(owner=admin)
        result = {
            "admin_username": ADMIN_USERNAME,
            "admin_password": password,
            "api_token": token.key,
            **demo,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            for key, value in result.items():
                self.stdout.write(f"{key}: {value}")
