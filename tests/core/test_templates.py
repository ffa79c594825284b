"""Static checks over every template of the project."""

import re
from pathlib import Path

import pytest
from django.conf import settings

PROJECT = Path(settings.BASE_DIR)
TEMPLATES = sorted(
    path
    for path in PROJECT.rglob("*.html")
    if ".venv" not in path.parts
    and "static_root" not in path.parts
    and "node_modules" not in path.parts
)


def test_the_scan_finds_the_templates():
    assert any(path.name == "base_public.html" for path in TEMPLATES)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: str(path.relative_to(PROJECT)))
def test_no_multi_line_short_comment(path):
    # Django's {# … #} ends at the line's end: one spread over lines is printed as text
    # on the page. Longer comments use {% comment %}…{% endcomment %}.
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for opening in re.finditer(r"\{#", line):
            assert "#}" in line[opening.end() :], (
                f"{path.name}:{number}: '{{#' not closed on its line"
            )
