"""`kpi send`: reviews delivered to real local servers (SMTP via aiosmtpd, an HTTP receiver for the chat
webhooks), parsed on arrival and checked against an independent computation; sent once per review."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from receivers import http_receiver, smtp_server

KPI = [sys.executable, "-m", "kpi_engine"]
AS_OF = "2026-06-01"  # a Monday: the weekly review and the first-Monday monthly review are both due

SPEC = """\
version: 1
timezone: UTC
data_root: {data}
sources:
  ads:      {{connector: parquet, path: {data}/ad_events.parquet, time: ts}}
  sessions: {{connector: parquet, path: {data}/sessions.parquet, time: ts}}
kpis:
  ctr:
    name: Click-through rate
    owner: growth-team
    unit: percent
    formula: 100 * sum(ads.clicks) / sum(ads.impressions)
    grain: week
    target: {{objective: Lift CTR to 9%., direction: increase, baseline: 1.8, value: 9, start: 2026-04-01, deadline: 2026-06-30}}
    review: {{cadence: weekly, meeting: Growth sync}}
  bounce_rate:
    name: Bounce rate
    owner: web-team
    unit: percent
    formula: 100 * count(sessions where pageviews == 1) / count(sessions)
    grain: week
    target: {{objective: Keep bounce under 90%., direction: decrease, baseline: 95, value: 90, start: 2026-01-01, deadline: 2026-12-31}}
    review: {{cadence: weekly, meeting: Growth sync}}
  roi:
    name: Return on ad spend
    owner: finance
    unit: percent
    formula: 100 * (sum(ads.revenue) - sum(ads.cost)) / sum(ads.cost)
    grain: month
    review: {{cadence: monthly, meeting: Monthly review}}
"""

DELIVERY = """\
version: 1
channels:
  team-mail:
    type: email
    to: [growth@example.com, lead@example.com]
    from: KPI bot <kpi@example.com>
    host: 127.0.0.1
    port: {smtp}
    security: none
  growth-slack: {type: slack, url: "${env:TEST_SLACK_URL}"}
  growth-teams: {type: teams, url: "${env:TEST_TEAMS_URL}"}
  growth-chat:  {type: google_chat, url: "${env:TEST_CHAT_URL}"}
  finance-hook:
    type: webhook
    url: "${env:TEST_HOOK_URL}"
    headers: {Authorization: "${env:TEST_HOOK_TOKEN}"}
delivery:
  channels: [team-mail]
  meetings:
    Growth sync: [team-mail, growth-slack, growth-teams, growth-chat]
    Monthly review: [finance-hook]
"""


def project(root: Path, example_dir: Path, smtp: int, delivery: str = DELIVERY) -> Path:
    spec = root / "spec"
    spec.mkdir(exist_ok=True)
    data = os.path.relpath(example_dir / "data", spec)
    (spec / "kpis.yaml").write_text(SPEC.format(data=data))
    (spec / "delivery.yaml").write_text(delivery.replace("{smtp}", str(smtp)))
    return spec


def kpi(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KPI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def week_ctr(example_dir: Path) -> float:
    """CTR of the week before the review (25-31 May 2026), computed here with polars on the same file."""
    ads = pl.read_parquet(example_dir / "data" / "ad_events.parquet")
    week = ads.filter((pl.col("ts") >= dt.datetime(2026, 5, 25)) & (pl.col("ts") < dt.datetime(2026, 6, 1)))
    return 100 * week["clicks"].cast(pl.Int64).sum() / week["impressions"].cast(pl.Int64).sum()  # Int32 overflows


def test_send_delivers_each_meeting_to_its_channels_once(tmp_path: Path, example_dir: Path):
    with smtp_server(tmp_path) as smtp, http_receiver() as web:
        spec = project(tmp_path, example_dir, smtp.port)
        env = {
            "TEST_SLACK_URL": f"{web.url}/slack/T000/B000/secret",
            "TEST_TEAMS_URL": f"{web.url}/teams",
            "TEST_CHAT_URL": f"{web.url}/chat?key=k&token=t",
            "TEST_HOOK_URL": f"{web.url}/hook",
            "TEST_HOOK_TOKEN": "Bearer s3cret",
        }
        store = tmp_path / "history.sqlite"
        run = kpi("send", str(spec), "--as-of", AS_OF, "--history", str(store), env=env)
        assert run.returncode == 0, run.stderr
        assert "5 sent, 0 already sent, 0 failed" in run.stderr

        # the e-mail: one message to both recipients, subject, text and HTML parts, the report attached
        assert len(smtp.mails) == 1
        mail = smtp.mails[0]
        assert mail.sender == "kpi@example.com"
        assert sorted(mail.recipients) == ["growth@example.com", "lead@example.com"]
        assert mail.message["Subject"].startswith("Growth sync: review of 1 Jun 2026, ")
        text, html = mail.part("plain"), mail.part("html")
        ctr = week_ctr(example_dir)
        assert f"{ctr:.2f}%" in text and f"{ctr:.2f}%" in html
        check = json.loads(kpi("check", str(spec), "--as-of", AS_OF, "--format", "json").stdout)
        attention = {k["id"] for k in check["kpis"] if k["status"] in ("off_track", "at_risk", "missed", "no_data")}
        section = text.split("NEEDS ATTENTION", 1)[1].split("SCORECARD", 1)[0]
        names = {"ctr": "Click-through rate", "bounce_rate": "Bounce rate"}
        assert {k for k, name in names.items() if f"- {name} [" in section} == attention
        assert attention, "the fixture should put a KPI in needs attention"
        assert f"{len(attention)} need" in mail.message["Subject"]
        (name, page), = mail.attachments().items()
        assert name == "growth-sync-2026-06-01.html" and b"Needs attention" in page
        # previewed by mail clients that run no script: its charts are SVG already
        assert b"<script" not in page and b'class="marks chart"' in page
        assert "Return on ad spend" not in text  # the monthly meeting goes to its own channel

        # the chat webhooks: each in its own format, with the same needs-attention list
        by_path = {r.path.split("/")[1].split("?")[0]: r for r in web.requests}
        assert sorted(by_path) == ["chat", "hook", "slack", "teams"]
        slack = by_path["slack"].json()
        assert slack["blocks"][0]["type"] == "header" and slack["text"] == mail.message["Subject"]
        attention_block = slack["blocks"][2]["text"]["text"]
        assert attention_block.startswith(f"*Needs attention ({len(attention)})*")
        assert all(names[k] in attention_block for k in attention)
        card = by_path["teams"].json()["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert card["content"]["body"][0]["text"] == mail.message["Subject"]
        assert f"{ctr:.2f}%" in json.dumps(card)
        assert by_path["chat"].json()["text"].startswith(f"*{mail.message['Subject']}*")
        hook = by_path["hook"]
        assert hook.headers["Authorization"] == "Bearer s3cret"
        body = hook.json()
        assert body["kind"] == "review" and body["meeting"] == "Monthly review" and body["review_day"] == AS_OF
        (roi,) = body["kpis"]
        ads = pl.read_parquet(example_dir / "data" / "ad_events.parquet")
        may = ads.filter(pl.col("ts").dt.month() == 5)
        expected = 100 * (may["revenue"].sum() - may["cost"].sum()) / may["cost"].sum()
        assert roi["id"] == "roi" and roi["value"] == pytest.approx(expected, rel=1e-9)

        # idempotent: the same day again sends nothing; --force sends again
        again = kpi("send", str(spec), "--as-of", AS_OF, "--history", str(store), env=env)
        assert again.returncode == 0 and "0 sent, 5 already sent" in again.stderr
        assert len(smtp.mails) == 1 and len(web.requests) == 4
        forced = kpi("send", str(spec), "--as-of", AS_OF, "--history", str(store), "--force", "--meeting", "Monthly review", env=env)
        assert forced.returncode == 0 and "1 sent" in forced.stderr
        assert len(web.requests) == 5 and len(smtp.mails) == 1


MAIL_ONLY = """\
version: 1
channels:
  team-mail:
    type: email
    to: [growth@example.com]
    from: kpi@example.com
    host: localhost
    port: {smtp}
    security: {security}
    username: bot
    password: "${env:TEST_SMTP_PASSWORD}"
    ca_file: {ca}
delivery:
  channels: [team-mail]
"""


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls_with_login(tmp_path: Path, example_dir: Path, security: str):
    with smtp_server(tmp_path, security, login=("bot", "pw-1")) as smtp:
        delivery = MAIL_ONLY.replace("{security}", security).replace("{ca}", smtp.ca_file)
        spec = project(tmp_path, example_dir, smtp.port, delivery)
        store = str(tmp_path / "h.sqlite")
        bad = kpi("send", str(spec), "--as-of", AS_OF, "--history", store, env={"TEST_SMTP_PASSWORD": "wrong"})
        assert bad.returncode == 1 and "refused the login of `bot`" in bad.stderr
        assert "wrong" not in bad.stderr + bad.stdout and smtp.mails == []
        good = kpi("send", str(spec), "--as-of", AS_OF, "--history", store, env={"TEST_SMTP_PASSWORD": "pw-1"})
        assert good.returncode == 0, good.stderr
        assert "2 sent, 0 already sent" in good.stderr  # the failed run recorded nothing
        assert smtp.logins == ["bot", "bot"] and len(smtp.mails) == 2
        assert {m.message["Subject"].split(":")[0] for m in smtp.mails} == {"Growth sync", "Monthly review"}


def test_untrusted_certificate_is_refused(tmp_path: Path, example_dir: Path):
    with smtp_server(tmp_path, "starttls") as smtp:
        delivery = MAIL_ONLY.replace("{security}", "starttls").replace("{ca}", "/etc/ssl/certs/ca-certificates.crt")
        spec = project(tmp_path, example_dir, smtp.port, delivery.replace("    username: bot\n", "").replace('    password: "${env:TEST_SMTP_PASSWORD}"\n', ""))
        run = kpi("send", str(spec), "--as-of", AS_OF, "--history", str(tmp_path / "h.sqlite"))
        assert run.returncode == 1 and "TLS failed" in run.stderr and smtp.mails == []


def test_a_failing_channel_does_not_stop_the_others_and_is_retried_alone(tmp_path: Path, example_dir: Path):
    with smtp_server(tmp_path) as smtp, http_receiver() as web:
        spec = project(tmp_path, example_dir, smtp.port)
        env = {k: f"{web.url}/{k.lower()}" for k in ("TEST_SLACK_URL", "TEST_TEAMS_URL", "TEST_CHAT_URL", "TEST_HOOK_URL")}
        env["TEST_HOOK_TOKEN"] = "t"
        web.statuses = [503, 200, 404]  # slack: retried once after a 503, then teams refuses for good
        store = str(tmp_path / "h.sqlite")
        run = kpi("send", str(spec), "--as-of", AS_OF, "--history", store, env=env)
        assert run.returncode == 1
        assert "FAILED Growth sync, review of 1 Jun 2026 to growth-teams: webhook at 127.0.0.1" in run.stderr
        assert "404" in run.stderr and "/test_teams_url" not in run.stderr  # the host, never the URL's path
        assert "4 sent, 0 already sent, 1 failed" in run.stderr
        assert [r.path for r in web.requests[:3]] == ["/test_slack_url", "/test_slack_url", "/test_teams_url"]
        retry = kpi("send", str(spec), "--as-of", AS_OF, "--history", store, env=env)
        assert retry.returncode == 0 and "1 sent, 4 already sent, 0 failed" in retry.stderr
        assert web.requests[-1].path == "/test_teams_url" and len(smtp.mails) == 1


def test_secrets_come_from_the_environment_only(tmp_path: Path, example_dir: Path):
    literal = DELIVERY.replace('"${env:TEST_SLACK_URL}"', "https://hooks.slack.com/services/T0/B0/abc")
    spec = project(tmp_path, example_dir, 25, literal)
    run = kpi("send", str(spec), "--as-of", AS_OF)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "delivery.yaml:10:" in run.stderr and "channel `growth-slack` has its `url` written in the spec" in run.stderr
    assert "${env:GROWTH_SLACK_URL}" in run.stderr
    spec = project(tmp_path, example_dir, 25)
    missing = kpi("send", str(spec), "--as-of", AS_OF, "--history", str(tmp_path / "h.sqlite"))
    assert missing.returncode == 2 and "reads the environment variable `TEST_SLACK_URL`" in missing.stderr
    assert "delivery.yaml:10:" in missing.stderr and not (tmp_path / "h.sqlite").exists()  # nothing was sent


def test_spec_mistakes_in_delivery_get_hints(tmp_path: Path, example_dir: Path):
    typo = DELIVERY.replace("Monthly review: [finance-hook]", "Monthly review: [finance-hok]").replace("type: slack", "type: slak")
    run = kpi("validate", str(project(tmp_path, example_dir, 25, typo)))
    assert run.returncode == 2
    assert "delivery names unknown channel `finance-hok`" in run.stderr and "did you mean `finance-hook`" in run.stderr
    assert "slak" in run.stderr and "slack" in run.stderr
    meeting = DELIVERY.replace("Monthly review: [finance-hook]", "Monthly reveiw: [finance-hook]")
    run = kpi("validate", str(project(tmp_path, example_dir, 25, meeting)))
    assert run.returncode == 2 and "routes meeting `Monthly reveiw`, which no KPI is reviewed in" in run.stderr
    assert "did you mean `Monthly review`" in run.stderr
    option = DELIVERY.replace("security: none", "security: none\n    recipients: [x@example.com]")
    run = kpi("validate", str(project(tmp_path, example_dir, 25, option)))
    assert run.returncode == 2 and "unknown field `recipients`" in run.stderr and "delivery.yaml:10:" in run.stderr


def test_catch_up_owner_routing_and_dry_run(tmp_path: Path, example_dir: Path):
    with smtp_server(tmp_path) as smtp, http_receiver() as web:
        routed = DELIVERY.replace("delivery:\n", "delivery:\n  owners:\n    growth-team: [finance-hook]\n")
        spec = project(tmp_path, example_dir, smtp.port, routed)
        env = {k: f"{web.url}/{k.lower()}" for k in ("TEST_SLACK_URL", "TEST_TEAMS_URL", "TEST_CHAT_URL", "TEST_HOOK_URL")}
        env["TEST_HOOK_TOKEN"] = "t"
        store = tmp_path / "h.sqlite"
        tuesday = ["--as-of", "2026-06-02", "--history", str(store)]
        late = kpi("send", str(spec), *tuesday, env=env)
        assert late.returncode == 0 and "no review due on 2026-06-02" in late.stderr
        dry = kpi("send", str(spec), *tuesday, "--catch-up", "2", "--dry-run")  # no secrets needed
        assert dry.returncode == 0 and dry.stdout.count("subject: ") == 2  # one message per digest, not per channel
        assert dry.stdout.count("would send ") == 5 and "(growth@example.com, lead@example.com)" in dry.stdout
        assert smtp.mails == [] and web.requests == [] and not store.exists()
        owner = kpi("send", str(spec), *tuesday, "--catch-up", "2", "--owner", "growth-team", env=env)
        assert owner.returncode == 0 and "1 sent" in owner.stderr
        (request,) = web.requests
        body = request.json()
        assert request.path == "/test_hook_url" and body["owner"] == "growth-team" and body["review_day"] == AS_OF
        assert [k["id"] for k in body["kpis"]] == ["ctr"]
        everyone = kpi("send", str(spec), *tuesday, "--catch-up", "2", env=env)
        assert "5 sent" in everyone.stderr  # the owner's digest is its own message: the meeting's still goes


def test_a_plugin_channel_is_registered_and_called_through_the_hook(tmp_path: Path, example_dir: Path):
    """A third party's channel type: its options are checked with the spec, and `deliver` calls its send()."""
    import types

    import kpi_engine
    from kpi_engine import deliver, plugins

    received = []

    class Pager(kpi_engine.Channel):
        name = "pager"
        options_schema = {"properties": {"team": {"type": "string"}}, "required": ["team"]}

        def send(self, message, options):  # noqa: ANN001, ANN202
            received.append((options["team"], message.subject, message.summary["needs_attention"]))

    module = types.ModuleType("kpi_test_pager")
    module.register_channels = kpi_engine.hookimpl(lambda register: register(Pager()))
    registry = plugins.build_registry(extra=[module])
    assert registry.channels["pager"].__class__ is Pager
    spec = project(tmp_path, example_dir, 25, "version: 1\nchannels:\n  oncall: {type: pager, team: growth}\ndelivery:\n  channels: [oncall]\n")
    catalog = kpi_engine.load(spec, registry=registry)
    items = deliver.digests(catalog.project, dt.date(2026, 6, 1))
    outcomes = deliver.deliver(catalog, items, tmp_path / "h.sqlite")
    assert [o.state for o in outcomes] == ["sent", "sent"]
    assert [r[0] for r in received] == ["growth", "growth"]
    assert [a["id"] for a in received[0][2]] == ["ctr"]
    (spec / "delivery.yaml").write_text("version: 1\nchannels:\n  oncall: {type: pager, teem: growth}\n")
    with pytest.raises(kpi_engine.KpiError, match="unknown field `teem`"):
        kpi_engine.load(spec, registry=registry)


def test_kpi_schema_describes_the_channel_types():
    """`kpi schema` (editor autocomplete) knows each channel type and its options, secrets marked."""
    res = kpi("schema")
    assert res.returncode == 0
    channel = json.loads(res.stdout)["$defs"]["channel"]
    assert channel["properties"]["type"]["enum"] == ["email", "google_chat", "slack", "teams", "webhook"]
    (email,) = [b["then"] for b in channel["allOf"] if b["if"]["properties"]["type"]["const"] == "email"]
    assert email["properties"]["password"]["secret"] is True and email["additionalProperties"] is False


def test_delivery_errors_read_clearly(tmp_path: Path, example_dir: Path):
    """Every error the delivery part of a spec can raise: exit 2, where, and what to do."""
    spec = project(tmp_path, example_dir, 25, "version: 1\nchannels:\n  hook: {type: webhook, url: http://127.0.0.1:9/x}\n")
    run = kpi("send", str(spec), "--as-of", AS_OF)
    assert run.returncode == 2 and "no channel to deliver `Growth sync` to" in run.stderr
    assert "declare channels under `channels:` and route them under `delivery:`" in run.stderr
    (spec / "alerts.yaml").write_text("version: 1\nkpis:\n  extra: {unit: count, formula: count(ads), grain: week, alerts: [status]}\n")
    run = kpi("alerts", str(spec), "--now", "2026-06-01T09:00")
    assert run.returncode == 2 and "KPIs extra have alerts but no channel to send them to" in run.stderr
    run = kpi("alerts", str(spec), "--now", "yesterday")
    assert run.returncode == 2 and "--now `yesterday` is not a time" in run.stderr and "2026-06-01T09:00" in run.stderr
    (spec / "alerts.yaml").unlink()
    twice = "version: 1\nchannels:\n  hook: {type: webhook, url: http://127.0.0.1:9/y}\ndelivery: {channels: [hook]}\nalerts: {quiet_hours: \"22:00-07:00\"}\n"
    (spec / "more.yaml").write_text(twice)
    (spec / "zz.yaml").write_text("version: 1\ndelivery: {channels: [hook]}\nalerts: {renotify_hours: 4}\n")
    run = kpi("validate", str(spec))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "more.yaml:3:3: duplicate channel `hook`" in run.stderr and "first defined at" in run.stderr
    assert "zz.yaml:2:1: duplicate `delivery:`" in run.stderr and "duplicate project-wide `alerts:`" in run.stderr
