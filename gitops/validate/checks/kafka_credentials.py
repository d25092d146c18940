"""Kafka credentials: declared in git (an ExternalSecret), with exactly the keys the Kafka auth contract reads.

The Broker's ConfigMap, the dead-letter KafkaSink and the KafkaSource read one Secret (gitops.model.kafka_auth).
That Secret is never committed; an External Secrets Operator ExternalSecret in the render declares it, and the
operator writes it on the cluster from the secret store (gitops.model.external_secrets derives what it writes).
Without the declaration a fresh cluster never converges from git: every Kafka object stays not Ready.

The keys are checked twice: against the contract's table here (every key the render's protocol needs, nothing
else), and by eventing-kafka-broker's own code, which builds its Kafka client config from a Secret with the
declared keys and placeholder values (`bin/knative-admission kafka-auth`, hack/knative-admission/kafkaauth.go).
"""

import json
import subprocess
import sys
from collections.abc import Iterator

from gitops.core import cache as result_cache
from gitops.core import manifests
from gitops.model import kafka_auth
from gitops.model.external_secrets import DerivedSecret, derived_secrets
from gitops.validate import admission
from gitops.validate.findings import EnvContext, Finding
from gitops.validate.registry import env_check

CHECK = "kafka-credentials"
TEMPLATE_FIELD = "spec.target.template.data"
UPSTREAM = f"eventing-kafka-broker's Kafka auth ({kafka_auth.SECRET_GO})"


def _keys(keys: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(keys))


def upstream_verdicts(secrets: list[DerivedSecret], ctx: EnvContext) -> dict[str, str]:
    """Secret ref -> upstream's error ("" when it accepts), judged by the pinned eventing-kafka-broker code."""
    if not secrets:
        return {}
    tool = admission.binary()
    config = result_cache.digest(
        "kafka-auth-v1",
        result_cache.tool_identity(tool, admission.source_digest()),
        result_cache.code_digest(sys.modules[__name__]),
    )
    verdicts: dict[str, str] = {}
    pending = []
    for secret in secrets:
        key = result_cache.digest(config, json.dumps(secret.data, sort_keys=True))
        stored = ctx.cache.get("kafka-auth", key)
        if isinstance(stored, str):
            verdicts[secret.ref] = stored
        else:
            pending.append((key, secret))
    if pending:
        request = {"secrets": [{"id": s.ref, "data": s.data} for _k, s in pending]}
        proc = subprocess.run(
            [str(tool), "kafka-auth"], input=json.dumps(request), capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise admission.AdmissionUnavailable(f"{admission.BINARY} kafka-auth failed: {last}")
        answer = {v["id"]: v["error"] for v in json.loads(proc.stdout)["secrets"]}
        for key, secret in pending:
            verdicts[secret.ref] = answer[secret.ref]
            ctx.cache.put("kafka-auth", key, answer[secret.ref])
    return verdicts


@env_check(CHECK)
def check_kafka_credentials(ctx: EnvContext) -> Iterator[Finding]:
    """Every Kafka credentials Secret is declared by an ExternalSecret with exactly the keys its protocol needs."""
    declared = {(s.namespace, s.name): s for s in derived_secrets(ctx.objects)}
    uses = list(kafka_auth.secret_uses(ctx.objects))
    for use in uses:
        if (use.namespace, use.name) not in declared:
            yield ctx.finding(
                CHECK,
                use.reader,
                f"{use.field} reads Secret {use.namespace}/{use.name}, which no ExternalSecret in the render declares: "
                "a fresh cluster never converges from git (the Kafka objects stay not Ready); declare it with an "
                "ExternalSecret (overlays/prod/kafka-credentials.yaml, docs/forking.md)",
                field=use.field,
            )
    used = {(u.namespace, u.name) for u in uses}
    checkable: list[DerivedSecret] = []
    for ref, secret in sorted(declared.items()):
        if ref not in used:
            continue
        es = secret.source
        for problem in secret.unknowable:
            yield ctx.finding(CHECK, es, f"{problem}: validate cannot tell which keys {secret.ref} will hold")
        if secret.unknowable:
            continue
        protocol = secret.data.get(kafka_auth.PROTOCOL)
        if protocol is None:
            yield ctx.finding(
                CHECK,
                es,
                f"{secret.ref} gets `protocol` "
                + ("from the secret store" if kafka_auth.PROTOCOL in secret.data else "from nowhere")
                + f": state it in {TEMPLATE_FIELD} (e.g. protocol: SASL_SSL), so the keys it needs can be checked",
                field=TEMPLATE_FIELD,
            )
            continue
        if protocol not in kafka_auth.PROTOCOL_KEYS:
            yield ctx.finding(
                CHECK,
                es,
                f"{secret.ref} protocol {protocol!r} is not one of {_keys(frozenset(kafka_auth.PROTOCOL_KEYS))}",
                field=TEMPLATE_FIELD,
            )
            continue
        wanted = set(kafka_auth.PROTOCOL_KEYS[protocol])
        readers = [u for u in uses if (u.namespace, u.name) == ref]
        for use in readers:
            wanted |= set(use.keys)
            if use.protocol is not None and use.protocol != protocol:
                yield ctx.finding(
                    CHECK,
                    use.reader,
                    f"spec.net speaks {use.protocol} but Secret {use.namespace}/{use.name} says protocol {protocol} "
                    f"(declared by {manifests.ObjKey.of(es)}): set spec.net.sasl.enable/tls.enable to match",
                    field="spec.net",
                )
        missing, extra = wanted - set(secret.data), set(secret.data) - wanted
        if missing:
            policy = missing - kafka_auth.UPSTREAM_REQUIRED[protocol] - {k for u in readers for k in u.keys}
            yield ctx.finding(
                CHECK,
                es,
                f"{secret.ref} (protocol {protocol}) lacks {_keys(missing)}: {protocol} needs exactly "
                f"{_keys(kafka_auth.PROTOCOL_KEYS[protocol])} ({kafka_auth.SECRET_GO}"
                + (f"; {_keys(policy)} by our policy, see gitops/model/kafka_auth.py" if policy else "")
                + ")"
                + "".join(
                    sorted(
                        {
                            f", {manifests.ObjKey.of(u.reader)} reads {k}"
                            for u in readers
                            for k in u.keys
                            if k in missing
                        }
                    )
                )
                + f"; add them to {TEMPLATE_FIELD} or spec.data",
                field=TEMPLATE_FIELD,
            )
        if extra:
            yield ctx.finding(
                CHECK,
                es,
                f"{secret.ref} (protocol {protocol}) has {_keys(extra)}, which nothing reads for {protocol} "
                f"(it needs exactly {_keys(kafka_auth.PROTOCOL_KEYS[protocol])}): a misspelt key? remove or rename it",
                field=TEMPLATE_FIELD,
            )
        checkable.append(secret)
    try:
        verdicts = upstream_verdicts(checkable, ctx)
    except (admission.AdmissionUnavailable, subprocess.TimeoutExpired, OSError) as error:
        yield Finding(CHECK, ctx.env, "-", str(admission.BINARY), str(error))
        return
    for secret in checkable:
        error = verdicts.get(secret.ref)
        if error:
            yield ctx.finding(
                CHECK,
                secret.source,
                f"{UPSTREAM} refuses {secret.ref} as declared (store values stood in by placeholders): {error}",
                field=TEMPLATE_FIELD,
            )
