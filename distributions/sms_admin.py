"""Admin pages of two-way SMS surveys: conversations with their texts and answers, and
every inbound text (STOP, HELP, replies from unknown numbers). Registered by admin.py."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from distributions.models import Conversation, SmsMessage
from surveys.models import Response


class _ReadOnly(admin.ModelAdmin):
    # Written by the conversation service and Twilio only: edits would make the
    # record of what a respondent was asked and answered untrue.
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class SmsMessageInline(admin.TabularInline):
    model = SmsMessage
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["created_at", "direction", "body", "outcome", "provider_message_id"]
    readonly_fields = fields
    ordering = ["id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(_ReadOnly):
    list_display = [
        "id",
        "phone",
        "status",
        "survey",
        "question_index",
        "invalid_replies",
        "last_activity_at",
        "recipient_link",
    ]
    list_filter = ["status"]
    search_fields = ["phone", "=recipient__id", "=recipient__distribution__id"]
    list_select_related = ["recipient__survey"]
    readonly_fields = [
        "recipient_link",
        "phone",
        "status",
        "question_index",
        "invalid_replies",
        "created_at",
        "last_activity_at",
        "closed_at",
        "close_reason",
        "answers",
    ]
    fields = readonly_fields
    inlines = [SmsMessageInline]

    @admin.display(description="Survey")
    def survey(self, obj: Conversation) -> str:
        return str(obj.recipient.survey)

    @admin.display(description="Distribution line")
    def recipient_link(self, obj: Conversation) -> str:
        line = obj.recipient
        return format_html(
            '<a href="/admin/distributions/recipient/{}/change/">line {}</a> (distribution {}, {})',
            line.pk,
            line.pk,
            line.distribution_id,
            line.get_status_display(),
        )

    @admin.display(description="Answers recorded")
    def answers(self, obj: Conversation) -> str:
        link_id = obj.recipient.link_id
        response = Response.objects.filter(link_id=link_id).first() if link_id else None
        if response is None:
            return "—"
        questions = {
            str(question.pk): question.text for question in response.survey.questions.all()
        }
        rows = format_html_join(
            "",
            "<li>{}: <strong>{}</strong></li>",
            (
                (questions.get(key, f"question {key}"), json.dumps(value, ensure_ascii=False))
                for key, value in (response.answers or {}).items()
            ),
        )
        state = "finished" if response.finished_at else "not finished"
        return format_html(
            '<a href="/admin/surveys/response/{}/change/">response {}</a> ({})<ul>{}</ul>',
            response.pk,
            response.pk,
            state,
            rows,
        )


@admin.register(SmsMessage)
class SmsMessageAdmin(_ReadOnly):
    list_display = [
        "id",
        "created_at",
        "direction",
        "phone",
        "short_body",
        "outcome",
        "conversation",
    ]
    list_filter = ["direction"]
    search_fields = ["phone", "body", "provider_message_id", "outcome"]
    readonly_fields = [
        "conversation",
        "direction",
        "phone",
        "body",
        "provider_message_id",
        "outcome",
        "created_at",
    ]

    @admin.display(description="Text")
    def short_body(self, obj: SmsMessage) -> str:
        return obj.body if len(obj.body) <= 60 else obj.body[:57] + "…"
