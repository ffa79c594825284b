"""Unknown input keys are refused with the expected ones named; the browsable API's
own form keys are not the client's data and pass."""

from rest_framework import serializers

from core.strict_serializer import StrictSerializer


class Named(StrictSerializer):
    name = serializers.CharField()
    id = serializers.IntegerField(read_only=True)


def test_a_misspelled_key_is_named_with_the_expected_ones():
    form = Named(data={"nmae": "x", "name": "y"})
    assert not form.is_valid()
    assert form.errors == {"nmae": ["unknown key; expected one of: id, name"]}


def test_read_only_keys_and_the_browsable_forms_keys_are_accepted():
    sent = {"name": "y", "id": 3, "csrfmiddlewaretoken": "t", "_content_type": "x"}
    form = Named(data=sent)
    assert form.is_valid(), form.errors
    assert form.validated_data == {"name": "y"}
