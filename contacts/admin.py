"""Admin pages of the contact directory: directories, mailing lists, contacts and timelines."""

import json
import re

import phonenumbers
from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html

from contacts.deletion import users_of_mailing_lists
from contacts.models import (
    Contact,
    Directory,
    MailingList,
    RetainedOptOut,
    Transaction,
    default_match_rules,
    default_working_days,
)
from contacts.normalize import normalize_email, normalize_phone
from contacts.signals import apply_retained_opt_outs, forget_retained_opt_outs
from core.forms import LinesField


def pretty_json(value) -> str:
    # ensure_ascii=False: names such as "Región" and values such as "Núñez" stay readable.
    # Not sorted: the fields keep the order the workflow's mapping gave them, as in the
    # API and the run's output.
    return format_html(
        '<pre style="margin:0;white-space:pre-wrap">{}</pre>',
        json.dumps(value or {}, indent=2, ensure_ascii=False),
    )


class _GuardedDeleteMixin:
    """The delete confirmation lists what still uses the lists (a workflow task, say)
    as protected, and the admin then refuses the deletion, as for a PROTECT key."""

    def mailing_list_ids(self, objs) -> list[int]:
        raise NotImplementedError

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        users = users_of_mailing_lists(self.mailing_list_ids(objs))
        return deleted, counts, perms_needed, [*protected, *users]


class DirectoryForm(forms.ModelForm):
    # Declared here, so the model's defaults are given as the new form's initial values.
    match_rules = LinesField(
        required=True,
        initial=default_match_rules,
        help_text=(
            "Keys an incoming contact is matched on, in order, one per line: email, "
            "external_data_reference."
        ),
    )
    working_days = LinesField(
        item=int,
        initial=default_working_days,
        help_text=(
            "ISO weekday numbers, one per line: 1 = Monday … 7 = Sunday. Left empty: "
            "Monday to Friday."
        ),
    )

    def clean_working_days(self) -> list[int]:
        # Stored as what it means, so the page shows the days sends wait for.
        return self.cleaned_data.get("working_days") or default_working_days()

    class Meta:
        model = Directory
        fields = [
            "name",
            "default_country",
            "match_rules",
            "default_time_zone",
            "quiet_hours_start",
            "quiet_hours_end",
            "working_hours_start",
            "working_hours_end",
            "working_days",
        ]


@admin.register(Directory)
class DirectoryAdmin(_GuardedDeleteMixin, admin.ModelAdmin):
    form = DirectoryForm
    list_display = ["name", "default_country", "rules", "default_time_zone", "contact_count"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(contact_total=Count("contacts"))

    def mailing_list_ids(self, objs) -> list[int]:
        return list(
            MailingList.objects.filter(directory__in=list(objs)).values_list("pk", flat=True)
        )

    @admin.display(description="Deduplication rules (in order)")
    def rules(self, obj: Directory) -> str:
        return " → ".join(obj.match_rules or [])

    @admin.display(description="Contacts", ordering="contact_total")
    def contact_count(self, obj: Directory) -> int:
        return obj.contact_total


class MailingListForm(forms.ModelForm):
    class Meta:
        model = MailingList
        fields = ["name", "directory"]

    def clean_directory(self):
        directory = self.cleaned_data["directory"]
        if self.instance.pk and directory.pk != self.instance.directory_id:
            members = self.instance.contacts.count()
            if members:
                raise forms.ValidationError(
                    f"this list has {members} contact{'s' if members != 1 else ''} of its "
                    "directory, and a list holds contacts of its own directory only: "
                    "create a new list in the other directory instead."
                )
        return directory


@admin.register(MailingList)
class MailingListAdmin(_GuardedDeleteMixin, admin.ModelAdmin):
    form = MailingListForm
    list_display = ["name", "directory", "contact_count", "created_at"]
    list_filter = ["directory"]
    search_fields = ["name"]
    # Membership is edited on each contact: a many-to-many widget here would load the
    # whole directory into one page.
    exclude = ["contacts"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("directory")
            .annotate(contact_total=Count("contacts"))
        )

    @admin.display(description="Contacts", ordering="contact_total")
    def contact_count(self, obj: MailingList) -> int:
        return obj.contact_total

    def mailing_list_ids(self, objs) -> list[int]:
        return [obj.pk for obj in objs]


def _membership_label(membership) -> str:
    return str(membership.mailinglist)


# The membership rows are Django's automatic through model: give them a readable name
# where the contact's page lists them (otherwise "MailingList_contacts object (5)").
MailingList.contacts.through.__str__ = _membership_label


class MembershipFormSet(forms.BaseInlineFormSet):
    """A contact belongs only to lists of its own directory: a list of another would
    make the next workflow write to it create the same person twice there."""

    def clean(self) -> None:
        super().clean()
        directory_id = getattr(self.instance, "directory_id", None)
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            mailing_list = data.get("mailinglist")
            if data.get("DELETE") or mailing_list is None or directory_id is None:
                continue
            if mailing_list.directory_id != directory_id:
                raise forms.ValidationError(
                    f"“{mailing_list}” is a list of another directory "
                    f"({mailing_list.directory}): a contact joins the lists of its own "
                    "directory only."
                )


class MembershipInline(admin.TabularInline):
    model = MailingList.contacts.through
    formset = MembershipFormSet
    extra = 0
    verbose_name = "mailing list"
    verbose_name_plural = "mailing lists"
    autocomplete_fields = ["mailinglist"]


class TransactionInline(admin.TabularInline):
    """The contact's touchpoint timeline, newest first; written only by workflows."""

    model = Transaction
    extra = 0
    can_delete = False
    fields = ["created_at", "run_id", "data_pretty"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Data")
    def data_pretty(self, obj: Transaction) -> str:
        return pretty_json(obj.data)


class OptedOutFilter(admin.SimpleListFilter):
    title = "opted out"
    parameter_name = "opted_out"

    def lookups(self, request, model_admin):
        return [("email", "Email"), ("sms", "SMS"), ("none", "Neither")]

    def queryset(self, request, queryset):
        if self.value() == "email":
            return queryset.filter(email_opted_out=True)
        if self.value() == "sms":
            return queryset.filter(sms_opted_out=True)
        if self.value() == "none":
            return queryset.filter(email_opted_out=False, sms_opted_out=False)
        return queryset


OPT_OUT_FLAGS = ("email_opted_out", "sms_opted_out")


class ContactAdminForm(forms.ModelForm):
    """Normalises email and phone as every other way in does (workflows, API)."""

    # The opt-outs as the page showed them: a person who opts out (SMS STOP, the
    # unsubscribe link) while an admin has the page open must not be opted back in by
    # that admin saving an unrelated change.
    email_opted_out_shown = forms.CharField(required=False, widget=forms.HiddenInput)
    sms_opted_out_shown = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for flag in OPT_OUT_FLAGS:
            self.fields[f"{flag}_shown"].initial = "1" if getattr(self.instance, flag) else "0"

    class Meta:
        model = Contact
        fields = [
            "directory",
            "first_name",
            "last_name",
            "email",
            "phone",
            "external_data_reference",
            "language",
            "time_zone",
            "embedded_data",
            "email_opted_out",
            "sms_opted_out",
        ]

    def clean_embedded_data(self):
        value = self.cleaned_data.get("embedded_data")
        if value is None:
            # null passes the model's validators (an "empty" value) and then the
            # NOT NULL column; {} is what "nothing" is.
            raise forms.ValidationError(
                'embedded data must be a JSON object, e.g. {"Region": "Norte"} (or {})'
            )
        return value

    def clean_email(self) -> str:
        try:
            return normalize_email(self.cleaned_data.get("email", ""))
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error

    def clean(self):
        cleaned = super().clean()
        for flag in OPT_OUT_FLAGS:
            shown = cleaned.get(f"{flag}_shown")
            # The instance still holds what the database holds now.
            current = bool(getattr(self.instance, flag))
            if shown in ("0", "1") and cleaned.get(flag) == (shown == "1") != current:
                # Left as shown, but changed meanwhile: the newer state stands.
                cleaned[flag] = current
        directory = cleaned.get("directory")
        if directory is not None and cleaned.get("phone"):
            try:
                cleaned["phone"] = normalize_phone(cleaned["phone"], directory.default_country)
            except ValueError as error:
                self.add_error("phone", str(error))
        return cleaned


_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-/]+$")


def _searched_phone_digits(search_term: str) -> str:
    """The digits of a search that looks like a phone number, without the national
    trunk prefix 0 (which E.164 drops); "" for any other search."""
    term = search_term.strip()
    if not _PHONE_LIKE.match(term):
        return ""
    digits = phonenumbers.normalize_digits_only(term)
    if not term.startswith("+"):
        digits = digits.lstrip("0")
    # Seven digits at least (as the reports' phone search): "2026" or a postcode
    # is not a phone number to look for inside every stored one.
    return digits if len(digits) >= 7 else ""


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactAdminForm
    list_display = [
        "__str__",
        "email",
        "phone",
        "external_data_reference",
        "directory",
        "email_opted_out",
        "sms_opted_out",
        "updated_at",
    ]
    list_filter = ["directory", "mailing_lists", OptedOutFilter]
    search_fields = ["first_name", "last_name", "email", "phone", "external_data_reference"]
    list_select_related = ["directory"]
    show_full_result_count = False
    readonly_fields = [
        "embedded_data_pretty",
        "email_opted_out_at",
        "email_opted_out_source",
        "sms_opted_out_at",
        "sms_opted_out_source",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "directory",
                    ("first_name", "last_name"),
                    "email",
                    "phone",
                    "external_data_reference",
                    ("language", "time_zone"),
                ]
            },
        ),
        ("Embedded data", {"fields": ["embedded_data_pretty", "embedded_data"]}),
        (
            "Opt-out",
            {
                "fields": [
                    ("email_opted_out", "email_opted_out_at", "email_opted_out_source"),
                    ("sms_opted_out", "sms_opted_out_at", "sms_opted_out_source"),
                    ("email_opted_out_shown", "sms_opted_out_shown"),
                ]
            },
        ),
        (None, {"fields": [("created_at", "updated_at")]}),
    ]
    inlines = [MembershipInline, TransactionInline]

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        digits = _searched_phone_digits(search_term)
        if digits:
            # Phones are stored in E.164: "(415) 555-0100" or "020 7946 0958" as typed
            # on a card finds +14155550100 / +442079460958 by its national digits.
            results |= queryset.filter(phone__contains=digits)
        return results, may_have_duplicates

    def save_model(self, request, obj: Contact, form, change: bool) -> None:
        # Record when and by whom an opt-out was ticked or cleared here.
        # Changed by this admin: what the form saves differs from what was stored.
        changed = [
            channel
            for channel in ("email", "sms")
            if bool(form.cleaned_data.get(f"{channel}_opted_out"))
            != bool(form.initial.get(f"{channel}_opted_out"))
        ]
        for channel in changed:
            flag = f"{channel}_opted_out"
            setattr(obj, f"{flag}_at", timezone.now())
            setattr(obj, f"{flag}_source", f"admin ({request.user.get_username()})")
        if change:
            # A new address or number whose owner opted out keeps its opt-out, unless
            # this admin set that opt-out here on purpose.
            keys = {"email": "email", "sms": "phone"}
            moved = [
                channel
                for channel, key in keys.items()
                if key in form.changed_data and channel not in changed
            ]
            apply_retained_opt_outs(obj, channels=moved)
        super().save_model(request, obj, form, change)
        cleared = [
            channel for channel in changed if change and not getattr(obj, f"{channel}_opted_out")
        ]
        if cleared:
            forget_retained_opt_outs(obj, channels=cleared)

    @admin.display(description="Embedded data (current)")
    def embedded_data_pretty(self, obj: Contact) -> str:
        return pretty_json(obj.embedded_data)


@admin.register(RetainedOptOut)
class RetainedOptOutAdmin(admin.ModelAdmin):
    """Opt-outs of deleted contacts, kept so the person is not contacted again when a
    new message creates them anew. Deleting one lets that address or number be sent to
    once more (the person asked for it, say)."""

    list_display = ["value", "channel", "opted_out_at", "source", "former_contact_id", "kept_at"]
    list_filter = ["channel"]
    search_fields = ["value"]
    readonly_fields = list_display

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
