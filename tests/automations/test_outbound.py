"""Notifications and webhooks delivered to real receivers on loopback, their templates, and
the masks that keep their secrets out of reads and error messages."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from receivers import HTTPReceiver, SMTPReceiver

from anabranch._redact import is_masked, mask_action, mask_headers, mask_url
from anabranch.schemas.automations import EventTrigger, SendNotification, StoredAutomation
from anabranch.schemas.deployments import Deployment
from anabranch.schemas.events import Event, Resource
from anabranch.schemas.runs import FlowRun
from anabranch.schemas.states import State, StateType
from anabranch.server.automations.outbound import DeliveryError, call_webhook, send_notification
from anabranch.server.automations.templates import (
    TemplateError,
    build_template_context,
    default_subject,
    render,
)

RUN_URL = "http://ui.example.com/runs/1234"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mailto(smtp: SMTPReceiver) -> str:
    return (
        f"mailto://{smtp.host}:{smtp.port}"
        "?from=anabranch@example.com&to=ops@example.com&mode=insecure"
    )


@pytest.fixture
def failed_run() -> FlowRun:
    state = State(type=StateType.FAILED, name="Failed", message="ValueError: no rows")
    return FlowRun(name="nimble-salmon", flow_name="nightly", state=state)


@pytest.fixture
def context(failed_run: FlowRun) -> dict[str, Any]:
    event = Event(
        event="anabranch.flow-run.Failed",
        resource=Resource(
            {
                "anabranch.resource.id": f"anabranch.flow-run.{failed_run.id}",
                "anabranch.resource.name": failed_run.name,
            }
        ),
        payload={"validated_state": {"type": "FAILED"}},
    )
    deployment = Deployment(name="prod", flow_name="nightly", entrypoint="flows.py:nightly")
    automation = StoredAutomation(
        name="tell-ops",
        trigger=EventTrigger(expect={"anabranch.flow-run.Failed"}),
        actions=[SendNotification(url="json://127.0.0.1/")],
    )
    return build_template_context(event, failed_run, deployment, automation, RUN_URL)


# Notifications through Apprise


def test_json_notification_arrives_with_title_and_body() -> None:
    with HTTPReceiver() as receiver:
        send_notification(f"json://127.0.0.1:{receiver.port}/hook", "Run failed", "line 1\nline 2")
        (request,) = receiver.wait_for(1)
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.json["title"] == "Run failed"
    assert request.json["message"] == "line 1\nline 2"
    assert request.json["type"] == "info"


def test_mailto_notification_arrives_with_subject_and_plain_text_body() -> None:
    with SMTPReceiver() as smtp:
        send_notification(mailto(smtp), "Run failed", "line 1\nline 2")
        (mail,) = smtp.wait_for(1)
    assert mail.subject == "Run failed"
    assert mail.mail_from == "anabranch@example.com"
    assert mail.rcpt_tos == ["ops@example.com"]
    assert mail.body.splitlines() == ["line 1", "line 2"]


def test_default_message_arrives_by_mail(context: dict[str, Any]) -> None:
    with SMTPReceiver() as smtp:
        send_notification(
            mailto(smtp),
            render("{{ default_subject }}", context),
            render("{{ default_body }}", context),
        )
        (mail,) = smtp.wait_for(1)
    assert mail.subject == "Flow run nimble-salmon of nightly entered Failed"
    assert "Message: ValueError: no rows" in mail.body
    assert RUN_URL in mail.body


def test_notification_answered_503_raises_naming_the_status() -> None:
    with HTTPReceiver(then=503) as receiver, pytest.raises(DeliveryError, match="503"):
        send_notification(f"json://127.0.0.1:{receiver.port}/", "subject", "body")


def test_notification_error_masks_the_secrets_of_the_url() -> None:
    with HTTPReceiver(then=503) as receiver:
        url = f"json://127.0.0.1:{receiver.port}/s3cret-path?token=s3cret"
        with pytest.raises(DeliveryError) as raised:
            send_notification(url, "subject", "body")
    assert f"json://127.0.0.1:{receiver.port}/***" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_unknown_scheme_raises_naming_the_scheme_and_the_apprise_docs() -> None:
    with pytest.raises(DeliveryError, match="not an Apprise URL") as raised:
        send_notification("nosuchservice://token/abc", "subject", "body")
    assert "'nosuchservice'" in str(raised.value)
    assert "github.com/caronc/apprise/wiki" in str(raised.value)
    assert "token/abc" not in str(raised.value)


def test_known_scheme_with_bad_options_raises_with_apprise_reason() -> None:
    with pytest.raises(DeliveryError, match="Could not load E-Mail URL"):
        send_notification("mailto://127.0.0.1:25?mode=bogus", "subject", "body")


def test_silent_receiver_fails_within_the_timeout_without_apprise_retries() -> None:
    with HTTPReceiver(hold=True) as receiver:
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="127.0.0.1"):
            send_notification(
                f"json://127.0.0.1:{receiver.port}/?retry=3", "subject", "body", timeout=0.3
            )
        elapsed = time.monotonic() - started
        assert len(receiver.requests) == 1
    assert elapsed < 1.5


def test_concurrent_notifications_each_report_their_own_failure() -> None:
    errors: dict[int, str] = {}
    with HTTPReceiver(then=503) as unavailable, HTTPReceiver(then=404) as missing:
        urls = {503: unavailable.port, 404: missing.port}
        start = threading.Barrier(len(urls))

        def send(status: int) -> None:
            start.wait()
            try:
                send_notification(f"json://127.0.0.1:{urls[status]}/", "s", "b")
            except DeliveryError as exc:
                errors[status] = str(exc)

        threads = [threading.Thread(target=send, args=(status,)) for status in urls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert "error=503" in errors[503] and "error=404" not in errors[503]
    assert "error=404" in errors[404] and "error=503" not in errors[404]


# Webhooks


def test_webhook_arrives_with_method_headers_and_payload() -> None:
    with HTTPReceiver() as receiver:
        status = call_webhook(
            f"{receiver.url}/hooks/run?via=anabranch",
            "PUT",
            {"Authorization": "Bearer t0ken", "X-Origin": "anabranch"},
            '{"run": "nimble-salmon"}',
        )
        (request,) = receiver.wait_for(1)
    assert status == 200
    assert (request.method, request.path) == ("PUT", "/hooks/run?via=anabranch")
    assert request.header("authorization") == "Bearer t0ken"
    assert request.header("x-origin") == "anabranch"
    assert request.header("content-type") == "application/json"
    assert request.json == {"run": "nimble-salmon"}


def test_webhook_sends_text_as_is_and_keeps_a_given_content_type() -> None:
    with HTTPReceiver() as receiver:
        call_webhook(receiver.url, "POST", {}, "run failed")
        call_webhook(receiver.url, "POST", {"content-type": "text/csv"}, '{"a": 1}')
        plain, csv = receiver.wait_for(2)
    assert plain.body == b"run failed"
    assert plain.header("content-type") is None
    assert csv.header("content-type") == "text/csv"


def test_webhook_answered_500_raises_with_the_code_and_the_answer() -> None:
    receiver = HTTPReceiver(then=500, answer=b"database is down")
    with receiver, pytest.raises(DeliveryError, match="500") as raised:
        call_webhook(f"{receiver.url}/hook", "POST", {}, "{}")
    assert "database is down" in str(raised.value)


def test_webhook_retried_by_the_caller_succeeds_after_the_script() -> None:
    with HTTPReceiver([503, 503]) as receiver:
        outcomes: list[int | str] = []
        for _ in range(3):
            try:
                outcomes.append(call_webhook(receiver.url, "POST", {}, "{}"))
            except DeliveryError:
                outcomes.append("failed")
        assert len(receiver.wait_for(3)) == 3
    assert outcomes == ["failed", "failed", 200]


def test_webhook_to_a_closed_port_raises_naming_the_masked_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook/s3cret"
    with pytest.raises(DeliveryError) as raised:
        call_webhook(url, "POST", {}, "{}")
    message = str(raised.value)
    assert "http://127.0.0.1:" in message and "/***" in message
    assert "s3cret" not in message


def test_webhook_to_a_silent_receiver_times_out() -> None:
    receiver = HTTPReceiver(hold=True)
    with receiver, pytest.raises(DeliveryError, match="timed out after 0.2 s"):
        call_webhook(receiver.url, "POST", {}, "{}", timeout=0.2)


# Templates


def test_user_template_renders_run_event_and_deployment(context: dict[str, Any]) -> None:
    template = (
        "{{ flow_run.name }}/{{ flow.name }} is {{ flow_run.state.type.value }} "
        "({{ event.resource.name }}, {{ deployment.full_name }}, "
        "{{ event.payload.validated_state.type }}) by {{ automation.name }}"
    )
    assert render(template, context) == (
        "nimble-salmon/nightly is FAILED (nimble-salmon, nightly/prod, FAILED) by tell-ops"
    )


def test_templates_are_plain_text_and_missing_names_render_empty(
    context: dict[str, Any],
) -> None:
    assert render("<{{ nothing }}>{{ '<b>&' }}", context) == "<><b>&"


def test_event_json_is_the_event(context: dict[str, Any]) -> None:
    rendered = render("{{ event_json }}", context)
    assert Event.model_validate_json(rendered) == context["event"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ flow_run.__class__.__init__.__globals__ }}",
        "{{ flow_run._private }}",
    ],
)
def test_sandbox_hides_private_attributes(template: str, context: dict[str, Any]) -> None:
    # Jinja's sandbox renders an unsafe attribute as undefined; going further raises.
    try:
        rendered = render(template, context)
    except TemplateError as exc:
        assert "unsafe" in str(exc) or "undefined" in str(exc)
    else:
        assert rendered == ""


@pytest.mark.parametrize(
    "template",
    [
        "{{ flow_run.result() }}",
        "{{ flow_run.model_copy() }}",
        "{{ automation.model_validate({}) }}",
    ],
)
def test_sandbox_refuses_model_methods_that_do_more_than_read(
    template: str, context: dict[str, Any]
) -> None:
    with pytest.raises(TemplateError, match="refused by the sandbox"):
        render(template, context)


def test_sandbox_allows_reading_helpers(context: dict[str, Any]) -> None:
    assert render("{{ event.resource.get('anabranch.resource.name') }}", context) == (
        "nimble-salmon"
    )


@pytest.mark.parametrize("template", ["{{ 'x' * 10 ** 9 }}", "{{ 2 ** 10000000 }}"])
def test_sandbox_refuses_huge_values(template: str, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="not allowed"):
        render(template, context)


def test_syntax_error_names_the_problem_and_the_template(context: dict[str, Any]) -> None:
    template = "Run {{ flow_run.name " + "x" * 100
    with pytest.raises(TemplateError) as raised:
        render(template, context)
    message = str(raised.value)
    assert "syntax error on line 1" in message
    assert repr(template[:80]) in message


def test_default_body_names_run_flow_deployment_state_message_and_link(
    context: dict[str, Any], failed_run: FlowRun
) -> None:
    body = context["default_body"]
    for expected in (
        "Flow run: nimble-salmon",
        str(failed_run.id),
        "Flow: nightly",
        "Deployment: nightly/prod",
        "State: Failed",
        "Message: ValueError: no rows",
        "When: ",
        "Automation: tell-ops",
        f"Details: {RUN_URL}",
    ):
        assert expected in body


def test_default_subject_without_a_run_names_the_event(context: dict[str, Any]) -> None:
    without_run = dict(context, flow_run=None)
    assert default_subject(without_run) == "anabranch.flow-run.Failed on nimble-salmon"


# Masks


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/***"),
        ("slack://TokenA/TokenB/TokenC", "slack://***"),
        ("mailto://user:pass@smtp.example.com", "mailto://user:***@smtp.example.com"),
        ("json://127.0.0.1:8080/path?token=x", "json://127.0.0.1:8080/***"),
        ("mailto://127.0.0.1:2525?from=a@example.com", "mailto://127.0.0.1:2525/***"),
        ("ntfy://admin@ntfy.example.com/alerts", "ntfy://admin@ntfy.example.com/***"),
        ("http://[::1]:8080/hook", "http://[::1]:8080/***"),
        ("tgram://123456:AAbbCC/987", "tgram://***"),
        ("https://example.com", "https://example.com"),
        ("http://localhost:4200/", "http://localhost:4200/"),
    ],
)
def test_mask_url_keeps_scheme_host_port_and_user(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert is_masked(masked) == (masked != url)


@pytest.mark.parametrize("garbage", ["", "not a url", "://", "x://[zz/a", "a:b:c@@/?#", "\x00"])
def test_mask_url_never_raises_and_never_shows_more(garbage: str) -> None:
    masked = mask_url(garbage)
    assert masked in ("", "***") or masked.endswith("***")


def test_mask_headers_hides_values_but_harmless_ones() -> None:
    headers = {"Authorization": "Bearer t", "content-type": "application/json", "X-Key": "k"}
    assert mask_headers(headers) == {
        "Authorization": "***",
        "content-type": "application/json",
        "X-Key": "***",
    }


def test_mask_action_masks_url_and_headers_of_a_copy() -> None:
    action = {
        "type": "call-webhook",
        "url": "https://example.com/hook?token=abc",
        "headers": {"X-Token": "abc"},
    }
    assert mask_action(action) == {
        "type": "call-webhook",
        "url": "https://example.com/***",
        "headers": {"X-Token": "***"},
    }
    assert action["url"] == "https://example.com/hook?token=abc"
    assert mask_action({"type": "cancel-flow-run"}) == {"type": "cancel-flow-run"}
