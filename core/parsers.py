"""The REST API's request parsers."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.jsontext import loads


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, answering 400 for nesting too deep or non-finite numbers."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            return loads(stream.read().decode(encoding))
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from error
