"""Opt-outs outlive their contact (contacts.models.RetainedOptOut)."""

from django.db.models.signals import pre_delete, pre_save
from django.dispatch import receiver
from django.utils import timezone

from contacts.models import Contact, RetainedOptOut


def _keys(contact: Contact) -> dict[str, str]:
    """channel → the value an opt-out of that channel is kept under."""
    keys = {}
    if contact.email:
        keys[RetainedOptOut.Channel.EMAIL] = contact.email.strip().lower()
    if contact.phone:
        keys[RetainedOptOut.Channel.SMS] = contact.phone
    return keys


@receiver(pre_delete, sender=Contact, dispatch_uid="contacts_keep_opt_outs")
def keep_opt_outs(sender, instance: Contact, **kwargs) -> None:
    for channel, value in _keys(instance).items():
        if not getattr(instance, f"{channel}_opted_out"):
            continue
        RetainedOptOut.objects.update_or_create(
            channel=channel,
            value=value,
            defaults={
                "opted_out_at": getattr(instance, f"{channel}_opted_out_at"),
                "source": getattr(instance, f"{channel}_opted_out_source")[:200],
                "former_contact_id": instance.pk,
            },
        )


@receiver(pre_save, sender=Contact, dispatch_uid="contacts_apply_opt_outs")
def apply_opt_outs(sender, instance: Contact, raw: bool = False, **kwargs) -> None:
    """A new contact with a kept opt-out starts opted out. Clearing an opt-out forgets
    the kept record (contact_set_opt_out, and the admin's form)."""
    if raw or not instance._state.adding:
        return
    apply_retained_opt_outs(instance, channels=list(RetainedOptOut.Channel))


def apply_retained_opt_outs(instance: Contact, *, channels: list[str]) -> list[str]:
    """Opt `instance` (unsaved changes) out of each of `channels` whose address or
    number has a kept opt-out; returns the channels it changed."""
    keys = {channel: value for channel, value in _keys(instance).items() if channel in channels}
    if not keys:
        return []
    applied = []
    kept = RetainedOptOut.objects.filter(channel__in=list(keys), value__in=list(keys.values()))
    for record in kept:
        flag = f"{record.channel}_opted_out"
        if keys.get(record.channel) != record.value or getattr(instance, flag):
            continue
        setattr(instance, flag, True)
        setattr(instance, f"{flag}_at", record.opted_out_at or timezone.now())
        day = f" on {record.kept_at:%Y-%m-%d}" if record.kept_at else ""
        source = f"kept from contact {record.former_contact_id}, deleted{day}"
        setattr(instance, f"{flag}_source", source[:200])
        applied.append(record.channel)
    return [channel for channel in channels if channel in applied]


def forget_retained_opt_outs(contact: Contact, *, channels) -> None:
    keys = _keys(contact)
    for channel in channels:
        if channel in keys:
            RetainedOptOut.objects.filter(channel=channel, value=keys[channel]).delete()
