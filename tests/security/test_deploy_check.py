"""`manage.py check --deploy` is clean with the production environment deploy/ documents.

The environment is deploy/xmflows.env.example read as systemd's EnvironmentFile would
(KEY=value lines), with only the placeholder SECRET_KEY replaced by a long random one,
as its comment says to. The unmodified file must fail on that placeholder: proof
that the check would notice a weak setting.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.figures import record

ENV_EXAMPLE = Path(settings.BASE_DIR) / "deploy" / "xmflows.env.example"


def documented_environment() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def check_deploy(environment: dict[str, str], var_dir: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(var_dir),
        "XMFLOWS_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    environment = documented_environment()
    assert environment["DEBUG"] == "false" and environment["PUBLIC_BASE_URL"].startswith("https")
    environment["SECRET_KEY"] = secrets.token_urlsafe(50)
    result = check_deploy(environment, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    record("manage.py check --deploy", warnings=0)


def test_check_deploy_notices_the_placeholder_secret_key(tmp_path):
    result = check_deploy(documented_environment(), tmp_path)
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr
