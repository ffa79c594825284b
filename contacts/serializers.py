"""DRF serializers of directories, mailing lists and contacts (CONTRACT.md §5)."""

from typing import Any

from rest_framework import serializers

from contacts.exceptions import ContactError
from contacts.models import Contact, Directory, MailingList, Transaction, quiet_hours_problem
from contacts.normalize import normalize_country
from contacts.services import (
    CONTACT_VALUE_FIELDS,
    contact_create,
    contact_update,
)
from core.strict_serializer import StrictKeysMixin


class DirectorySerializer(serializers.ModelSerializer):
    contact_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Directory
        fields = [
            "id",
            "name",
            "default_country",
            "match_rules",
            "default_time_zone",
            "working_hours_start",
            "working_hours_end",
            "working_days",
            "quiet_hours_start",
            "quiet_hours_end",
            "contact_count",
            "created_at",
        ]
        read_only_fields = ["id", "contact_count", "created_at"]

    def validate_default_country(self, value: str) -> str:
        try:
            return normalize_country(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from error

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The database holds the same rule (a check constraint); saying it here makes
        # it a 400 on the field rather than an error on save.
        start = attrs.get(
            "working_hours_start", getattr(self.instance, "working_hours_start", None)
        )
        end = attrs.get("working_hours_end", getattr(self.instance, "working_hours_end", None))
        if start is not None and end is not None and not start < end:
            raise serializers.ValidationError(
                {"working_hours_end": ["working hours must end after they start"]}
            )
        quiet = [
            attrs[name] if name in attrs else getattr(self.instance, name, None)
            for name in ("quiet_hours_start", "quiet_hours_end")
        ]
        problem = quiet_hours_problem(*quiet)
        if problem:
            raise serializers.ValidationError({key: [text] for key, text in problem.items()})
        return attrs


class MailingListSerializer(serializers.ModelSerializer):
    contact_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = MailingList
        fields = ["id", "name", "directory", "contact_count", "created_at"]
        read_only_fields = ["id", "contact_count", "created_at"]

    def validate_directory(self, value: Directory) -> Directory:
        if self.instance is not None and value.pk != self.instance.directory_id:
            raise serializers.ValidationError(
                "a mailing list cannot move to another directory; create a new list instead"
            )
        return value


class TransactionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Transaction
        fields = ["id", "created_at", "data", "run_id"]
        read_only_fields = fields


class OptedOutSerializer(StrictKeysMixin, serializers.Serializer):
    email = serializers.BooleanField(required=False)
    sms = serializers.BooleanField(required=False)


class EmbeddedDataField(serializers.DictField):
    """{"Field name": "value"}: names exact, values stored as strings. The names'
    rules are the services' (clean_embedded_data), checked with every other field's."""

    def __init__(self, **kwargs: Any):
        super().__init__(
            child=serializers.CharField(allow_blank=True, trim_whitespace=False), **kwargs
        )


class ContactSerializer(StrictKeysMixin, serializers.ModelSerializer):
    """A contact as the API shows it; staff may create and edit contacts by hand."""

    opted_out = OptedOutSerializer(required=False)
    embedded_data = EmbeddedDataField(required=False)
    transactions = TransactionSerializer(many=True, read_only=True)
    mailing_lists = serializers.PrimaryKeyRelatedField(
        many=True, queryset=MailingList.objects.all(), required=False
    )

    class Meta:
        model = Contact
        fields = [
            "id",
            "directory",
            "first_name",
            "last_name",
            "email",
            "phone",
            "external_data_reference",
            "language",
            "time_zone",
            "opted_out",
            "embedded_data",
            "transactions",
            "mailing_lists",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "transactions", "created_at", "updated_at"]
        # Uniqueness and formats are checked by the services (one place for API, admin
        # and workflows), not by validators generated from the model.
        validators: list = []

    def get_fields(self):
        fields = super().get_fields()
        for name in CONTACT_VALUE_FIELDS:
            fields[name].validators = []
        return fields

    def to_representation(self, instance: Contact) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["opted_out"] = {"email": instance.email_opted_out, "sms": instance.sms_opted_out}
        return data

    def validate_directory(self, value: Directory) -> Directory:
        if self.instance is not None and value.pk != self.instance.directory_id:
            raise serializers.ValidationError("a contact cannot move to another directory")
        return value

    def _source(self) -> str:
        request = self.context.get("request")
        user = getattr(request, "user", None)
        return f"API ({user.get_username()})" if user is not None else "API"

    def _call(self, service, **kwargs: Any) -> Contact:
        try:
            return service(**kwargs)
        except ContactError as error:
            # Every field's problem at once, each under its own name.
            raise serializers.ValidationError(
                {field or "non_field_errors": [message] for field, message in error.errors.items()}
            ) from error

    def create(self, validated_data: dict[str, Any]) -> Contact:
        directory = validated_data.pop("directory")
        return self._call(
            contact_create,
            directory=directory,
            values={k: v for k, v in validated_data.items() if k in CONTACT_VALUE_FIELDS},
            embedded_data=validated_data.get("embedded_data"),
            mailing_lists=validated_data.get("mailing_lists", ()),
            opted_out=validated_data.get("opted_out"),
            source=self._source(),
        )

    def update(self, instance: Contact, validated_data: dict[str, Any]) -> Contact:
        return self._call(
            contact_update,
            contact=instance,
            values={k: v for k, v in validated_data.items() if k in CONTACT_VALUE_FIELDS},
            embedded_data=validated_data.get("embedded_data"),
            mailing_lists=validated_data.get("mailing_lists"),
            opted_out=validated_data.get("opted_out"),
            source=self._source(),
        )
