"""Sender-identity and ServiceAccount checks (production): each fails on its mistake, naming env, object and file."""

from gitops.validate.checks import identity
from tests.support import obj, run_check

NS = "notifications"
EV = "eventing.knative.dev"
KSVC = f"[prod] Service.serving.knative.dev {NS}/notifications (apps/notifications/deploy/service.yaml)"
# A finding on the subscriber's env names the overlay file that sets it, not the base Service.
KSVC_ENV = f"[prod] Service.serving.knative.dev {NS}/notifications (overlays/prod/oidc-subscriber.yaml)"


def ksvc(render):
    return obj(render, "serving.knative.dev", "Service", NS, "notifications")


def test_oidc_flag_off(broken):
    render = broken("prod")
    obj(render, "", "ConfigMap", "knative-eventing", "config-features")["data"]["authentication-oidc"] = "disabled"
    messages = [str(f) for f in run_check(identity.check_sender_identity, render)]
    assert any(
        m.startswith("[prod] ConfigMap knative-eventing/config-features (") and "authentication-oidc is 'disabled'" in m
        for m in messages
    ), messages


def test_broker_without_event_policy(broken):
    render = broken("prod")
    render.objects.remove(obj(render, EV, "EventPolicy", NS, "events-senders"))
    messages = [str(f) for f in run_check(identity.check_sender_identity, render)]
    assert any(
        m.startswith(f"[prod] Broker {NS}/events (base/eventing/broker.yaml)") and "no EventPolicy applies" in m
        for m in messages
    ), messages


def test_event_policy_naming_the_wrong_source(broken):
    render = broken("prod")
    policy = obj(render, EV, "EventPolicy", NS, "events-senders")
    policy["spec"]["from"][0] = {
        "ref": {"apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource", "name": "kafka-sauce", "namespace": NS}
    }
    messages = [str(f) for f in run_check(identity.check_sender_identity, render)]
    assert any(
        m.startswith(f"[prod] EventPolicy {NS}/events-senders (overlays/prod/eventpolicy.yaml)")
        and "kafka-sauce is not in the render" in m
        for m in messages
    ), messages
    assert any("KafkaSource notifications/kafka-source sends to it" in m and "403" in m for m in messages), messages


def test_event_policy_naming_the_source_by_a_misspelt_sub(broken):
    """prod names its senders by OIDC `sub` (overlays/prod/eventpolicy.yaml): a misspelt one is a ServiceAccount
    nobody has, and the source it was meant for is not admitted."""
    render = broken("prod")
    policy = obj(render, EV, "EventPolicy", NS, "events-senders")
    policy["spec"]["from"][0] = {
        "sub": "system:serviceaccount:notifications:kafka-sauce-oidc-sources.knative.dev-kafkasource"
    }
    messages = [str(f) for f in run_check(identity.check_sender_identity, render)]
    assert any("names ServiceAccount notifications/kafka-sauce-oidc" in m for m in messages), messages
    assert any("KafkaSource notifications/kafka-source sends to it" in m and "403" in m for m in messages), messages


def test_wildcard_subject(broken):
    render = broken("prod")
    obj(render, EV, "EventPolicy", NS, "events-senders")["spec"]["from"].append({"sub": "system:serviceaccount:*"})
    messages = [str(f) for f in run_check(identity.check_sender_identity, render)]
    assert any("EventPolicy notifications/events-senders" in m and "is a wildcard" in m for m in messages), messages


def test_replay_identity_without_its_service_account(broken):
    """The prod Broker admits the replay identity by `sub`; a policy naming a ServiceAccount the render lacks (a
    typo, or the file left out) admits an identity nobody has."""
    render = broken("prod")
    assert run_check(identity.check_sender_identity, render) == []
    render.objects.remove(obj(render, "", "ServiceAccount", NS, "replay"))
    messages = [str(f) for f in run_check(identity.check_sender_identity, render)]
    assert any(
        m.startswith(f"[prod] EventPolicy {NS}/events-senders (overlays/prod/eventpolicy.yaml)")
        and "names ServiceAccount notifications/replay, which is not in the render" in m
        for m in messages
    ), messages


def test_trigger_without_audience(broken):
    render = broken("prod")
    obj(render, EV, "Trigger", NS, "loggings")["spec"]["subscriber"].pop("audience")
    messages = [str(f) for f in run_check(identity.check_subscriber_audience, render)]
    assert any(
        m.startswith(f"[prod] Trigger {NS}/loggings (base/eventing/triggers.yaml)") and "without an audience" in m
        for m in messages
    ), messages


def test_dead_letter_audience_mismatch(broken):
    render = broken("prod")
    obj(render, EV, "Broker", NS, "events")["spec"]["delivery"]["deadLetterSink"] = {
        "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "notifications", "namespace": NS},
        "audience": "notifications",
    }
    messages = [str(f) for f in run_check(identity.check_subscriber_audience, render)]
    assert any(
        m.startswith(f"[prod] Broker {NS}/events (base/eventing/broker.yaml)")
        and "spec.delivery.deadLetterSink.audience 'notifications' is not the subscriber's OIDC_AUDIENCE" in m
        for m in messages
    ), messages


def test_subscriber_without_issuer(broken):
    render = broken("prod")
    env = ksvc(render)["spec"]["template"]["spec"]["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "OIDC_ISSUER"]
    messages = [str(f) for f in run_check(identity.check_subscriber_settings, render)]
    assert any(m.startswith(KSVC_ENV) and "OIDC_ISSUER is not set" in m for m in messages), messages


def test_default_service_account(broken):
    render = broken("prod")
    ksvc(render)["spec"]["template"]["spec"].pop("serviceAccountName")
    messages = [str(f) for f in run_check(identity.check_service_accounts, render)]
    assert any(m.startswith(KSVC) and "runs as ServiceAccount 'default'" in m for m in messages), messages


def test_automounted_token(broken):
    render = broken("prod")
    ksvc(render)["spec"]["template"]["spec"].pop("automountServiceAccountToken")
    obj(render, "", "ServiceAccount", NS, "notifications").pop("automountServiceAccountToken")
    messages = [str(f) for f in run_check(identity.check_service_accounts, render)]
    assert any(m.startswith(KSVC) and "token is automounted" in m for m in messages), messages


def test_token_file_not_mounted(broken):
    render = broken("prod")
    container = ksvc(render)["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "kube-api"]
    messages = [str(f) for f in run_check(identity.check_service_accounts, render)]
    assert any(m.startswith(KSVC) and "no projected serviceAccountToken volume" in m for m in messages), messages


def test_trigger_missing_from_allowed_subjects(broken):
    render = broken("prod")
    env = ksvc(render)["spec"]["template"]["spec"]["containers"][0]["env"]
    allowed = next(e for e in env if e["name"] == "OIDC_ALLOWED_SUBJECTS")
    allowed["value"] = "system:serviceaccount:notifications:notifications-oidc-eventing.knative.dev-trigger"
    messages = [str(f) for f in run_check(identity.check_subscriber_audience, render)]
    assert any(
        m.startswith(f"[prod] Trigger {NS}/loggings (base/eventing/triggers.yaml)")
        and "system:serviceaccount:notifications:loggings-oidc-eventing.knative.dev-trigger" in m
        and "403" in m
        for m in messages
    ), messages
    assert not any("Trigger notifications/notifications" in m for m in messages), messages


def test_allowed_subjects_required_in_prod(broken):
    render = broken("prod")
    env = ksvc(render)["spec"]["template"]["spec"]["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "OIDC_ALLOWED_SUBJECTS"]
    messages = [str(f) for f in run_check(identity.check_subscriber_settings, render)]
    assert any(m.startswith(KSVC_ENV) and "OIDC_ALLOWED_SUBJECTS is not set" in m for m in messages), messages


def subscriber_env(render):
    return ksvc(render)["spec"]["template"]["spec"]["containers"][0]["env"]


def test_misspelt_audience_names_the_variable_the_overlay_and_what_happens(broken):
    """The mistake that used to turn verification off in the app while validate blamed base files and said the
    audience was None and every delivery refused."""
    render = broken("prod")
    next(e for e in subscriber_env(render) if e["name"] == "OIDC_AUDIENCE")["name"] = "OIDC_AUDEINCE"
    messages = [str(f) for f in run_check(identity.check_subscriber_settings, render)]
    for problem in ("OIDC_AUDEINCE is not a setting the subscriber reads", "OIDC_AUDIENCE is not set"):
        assert any(
            m.startswith(KSVC_ENV)
            and problem in m
            and "exits at start-up, its pods never pass readiness" in m
            and "last ready revision" in m
            for m in messages
        ), messages
    audience = [str(f) for f in run_check(identity.check_subscriber_audience, render)]
    assert not any("None" in m for m in audience), audience


def test_production_mode_must_follow_environments_yaml(broken):
    render = broken("prod")
    subscriber_env(render)[:] = [e for e in subscriber_env(render) if e["name"] != "PRODUCTION"]
    messages = [str(f) for f in run_check(identity.check_subscriber_settings, render)]
    assert any(
        m.startswith(KSVC_ENV)
        and "PRODUCTION=(unset) but environments.yaml says prod is production" in m
        and 'set PRODUCTION: "true" in the container env (overlays/prod/oidc-subscriber.yaml)' in m
        for m in messages
    ), messages


def test_production_mode_outside_production(broken):
    render = broken("dev")
    spec = ksvc(render)["spec"]["template"]["spec"]["containers"][0]
    spec.setdefault("env", []).append({"name": "PRODUCTION", "value": "true"})
    messages = [str(f) for f in run_check(identity.check_subscriber_settings, render)]
    assert any(
        m.startswith("[dev] Service.serving.knative.dev notifications/notifications (")
        and "environments.yaml says dev is not production" in m
        for m in messages
    ), messages


def test_half_configured_verification_outside_production(broken):
    """dev with OIDC_ISSUER and OIDC_ALLOWED_SUBJECTS but no OIDC_AUDIENCE: the app refuses to start (it used to run
    with verification silently off), so validate says so, naming the missing ones and the file."""
    render = broken("dev")
    container = ksvc(render)["spec"]["template"]["spec"]["containers"][0]
    container.setdefault("env", []).extend(
        [
            {"name": "OIDC_ISSUER", "value": "https://kubernetes.default.svc.cluster.local"},
            {"name": "OIDC_ALLOWED_SUBJECTS", "value": "system:serviceaccount:notifications:x"},
        ]
    )
    messages = [str(f) for f in run_check(identity.check_subscriber_settings, render)]
    assert any(
        m.startswith("[dev] Service.serving.knative.dev notifications/notifications (")
        and "OIDC_AUDIENCE and OIDC_JWKS_URL are not set in the container env" in m
        and "exits at start-up" in m
        and "or none to run without sender verification" in m
        for m in messages
    ), messages
    # The committed dev render sets no OIDC_*: nothing to say.
    assert not [str(f) for f in run_check(identity.check_subscriber_settings, broken("dev"))]
