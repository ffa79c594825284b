"""Lift sign-in blocks (xmflows/sign_in.py) from the command line: for the admin who
cannot reach the admin's Sign-in throttles page because they are the one blocked."""

from django.core.management.base import BaseCommand, CommandError

from xmflows.models import SignInThrottle
from xmflows.sign_in import counted_address


class Command(BaseCommand):
    help = (
        "Lift sign-in blocks: every one (--all), or those of a username and/or an "
        "address. Without arguments, list the counters."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="delete every counter")
        parser.add_argument("--username", help="the username's counters (any address)")
        parser.add_argument("--address", help="the address's counters (any username)")

    def handle(self, *args, **options):
        rows = SignInThrottle.objects.all()
        username = (options["username"] or "").strip().lower()
        address = (options["address"] or "").strip()
        address = counted_address(address) if address else ""  # an IPv6 address: its /64
        if not (options["all"] or username or address):
            for row in rows.order_by("-last_failure_at"):
                blocked = (
                    f", blocked until {row.locked_until:%Y-%m-%d %H:%M} UTC"
                    if row.locked_until
                    else ""
                )
                self.stdout.write(f"{row.key}: {row.failures} failures{blocked}")
            return
        if not options["all"]:
            if username:
                rows = rows.filter(key__startswith=f"user:{username}|")
            if address:
                rows = rows.filter(key__endswith=f"ip:{address}")
        deleted, _ = rows.delete()
        if deleted == 0 and not options["all"]:
            raise CommandError("no sign-in counter matches; run without arguments to list them")
        self.stdout.write(f"lifted {deleted} sign-in counter(s)")
