"""Two-way SMS survey conversations and their messages, and the job that times them out."""

import django.db.models.deletion
from django.db import migrations, models


SCHEDULES = [
    ("sms conversations timeout", "distributions.jobs.expire_sms_conversations", "I", 5),
]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, schedule_type, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": schedule_type, "minutes": minutes, "repeats": -1},
        )


def remove_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('distributions', '0005_reminder_schedule'),
        ('django_q', '0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more'),
    ]

    operations = [
        migrations.CreateModel(
            name='Conversation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('phone', models.CharField(db_index=True, help_text='E.164', max_length=20)),
                ('status', models.CharField(choices=[('open', 'Open'), ('finished', 'Finished'), ('timed_out', 'Timed out'), ('stopped', 'Stopped (opted out)'), ('closed', 'Closed'), ('failed', 'Failed')], default='open', max_length=12)),
                ('question_index', models.PositiveIntegerField(default=0)),
                ('invalid_replies', models.PositiveIntegerField(default=0)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('last_activity_at', models.DateTimeField()),
                ('closed_at', models.DateTimeField(blank=True, null=True)),
                ('close_reason', models.CharField(blank=True, max_length=300)),
                ('recipient', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='conversation', to='distributions.recipient')),
            ],
            options={
                'ordering': ['-id'],
            },
        ),
        migrations.CreateModel(
            name='SmsMessage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('direction', models.CharField(choices=[('in', 'Inbound'), ('out', 'Outbound')], max_length=3)),
                ('phone', models.CharField(db_index=True, max_length=40)),
                ('body', models.TextField(blank=True)),
                ('provider_message_id', models.CharField(blank=True, max_length=64)),
                ('outcome', models.CharField(blank=True, max_length=300)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('conversation', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='distributions.conversation')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.AddIndex(
            model_name='conversation',
            index=models.Index(condition=models.Q(('status', 'open')), fields=['last_activity_at'], name='sms_conversation_open_activity'),
        ),
        migrations.AddConstraint(
            model_name='conversation',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('phone',), name='sms_conversation_one_open_per_phone', violation_error_message='a two-way SMS survey is already open with this number'),
        ),
        migrations.AddConstraint(
            model_name='smsmessage',
            constraint=models.UniqueConstraint(condition=models.Q(('provider_message_id', ''), _negated=True), fields=('direction', 'provider_message_id'), name='sms_message_once_per_provider_id'),
        ),
        migrations.RunPython(create_schedules, remove_schedules),
    ]
