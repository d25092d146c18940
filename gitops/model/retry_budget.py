"""How long the Kafka Broker keeps retrying one event before it gives up on a Trigger's subscriber (worst case).

What the 1.23 code does (eventing-kafka-broker knative-v1.23.0):
- The delivery a Trigger's egress gets: its own spec.delivery when that sets deadLetterSink, retry or timeout, else
  none, and the dispatcher falls back to the Broker's (control-plane pkg/core/config/utils.go
  EgressConfigFromDelivery returns nil for such a delivery; the contract's resource-level egressConfig is the
  Broker's).
- backoffDelay unset: the controller's default, env BROKER_DEFAULT_BACKOFF_DELAY_MS of kafka-controller
  (control-plane pkg/config/env_config.go DefaultBackoffDelayMs, `split_words` with the BROKER_ prefix).
- Delay before retry n (n = 1..retry): data-plane dispatcher/.../http/WebClientCloudEventSender.java
  computeRetryPolicy: exponential `delay * Math.round(Math.pow(2, n))`, linear `delay * n`; `retry(retryCounter)`
  applies it to retryCounter + 1, starting from 0 after the first attempt.
- Each attempt's HTTP timeout: delivery.timeout, else DEFAULT_TIMEOUT_MS = 600 000 ms (same file).
So the worst case is every backoff delay plus (retry + 1) attempts each running to its timeout.
"""

from dataclasses import dataclass

from gitops.core import manifests
from gitops.core.manifests import Obj, dig
from gitops.model.eventing import trigger_broker
from gitops.model.knative import iso_duration

DEFAULT_TIMEOUT_S = 600.0  # WebClientCloudEventSender.DEFAULT_TIMEOUT_MS
BACKOFF_DELAY_ENV = "BROKER_DEFAULT_BACKOFF_DELAY_MS"
EGRESS_FIELDS = ("deadLetterSink", "retry", "timeout")  # EgressConfigFromDelivery: any of these, or nil


@dataclass(frozen=True)
class RetryBudget:
    trigger: str  # "Trigger <ns>/<name>"
    retry: int
    policy: str
    delay_s: float
    timeout_s: float
    timeout_defaulted: bool
    delivery_from: str  # "Trigger" or "Broker <ns>/<name>"

    @property
    def backoff_s(self) -> float:
        if self.policy == "linear":
            return self.delay_s * sum(range(1, self.retry + 1))
        return self.delay_s * sum(2**n for n in range(1, self.retry + 1))

    @property
    def attempts(self) -> int:
        return self.retry + 1

    @property
    def worst_case_s(self) -> float:
        return self.backoff_s + self.attempts * self.timeout_s

    def describe(self) -> str:
        formula = (
            f"{_s(self.delay_s)} x (1+…+{self.retry})"
            if self.policy == "linear"
            else f"{_s(self.delay_s)} x (2^1+…+2^{self.retry})"
        )
        timeout = f"{_s(self.timeout_s)}{' (dispatcher default)' if self.timeout_defaulted else ''}"
        if self.retry == 0:
            return f"{self.trigger}: no retries; one attempt of up to {timeout} (delivery of {self.delivery_from})"
        return (
            f"{self.trigger}: worst-case retry budget {_s(self.worst_case_s)} = {self.retry} {self.policy} backoffs "
            f"{_s(self.backoff_s)} ({formula}) + {self.attempts} attempts x {timeout} timeout "
            f"(delivery of {self.delivery_from})"
        )


def _s(seconds: float) -> str:
    text = f"{seconds:.1f}".removesuffix(".0")
    return f"{text} s" if seconds < 120 else f"{text} s ({seconds / 60:.1f} min)"


def _default_delay_s(objects: list[Obj]) -> float:
    controller = manifests.find(objects, "apps", "Deployment", "knative-eventing", "kafka-controller") or {}
    for container in dig(controller, "spec", "template", "spec", "containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == BACKOFF_DELAY_ENV and str(env.get("value", "")).isdigit():
                return int(env["value"]) / 1000
    return 0.0


def retry_budgets(objects: list[Obj]) -> list[RetryBudget]:
    """Every Trigger's worst-case time from the first attempt to giving up (then its dead-letter sink, if any)."""
    default_delay = _default_delay_s(objects)
    budgets = []
    for trigger in sorted(manifests.of_kind(objects, "eventing.knative.dev", "Trigger"), key=manifests.ObjKey.of):
        own = dig(trigger, "spec", "delivery") or {}
        if any(own.get(f) is not None for f in EGRESS_FIELDS):
            delivery, source = own, "Trigger"
        else:
            broker = trigger_broker(objects, trigger)
            delivery = dig(broker, "spec", "delivery") or {} if broker else {}
            source = str(manifests.ObjKey.of(broker)) if broker else "nobody (no Broker in the render)"
        delay = iso_duration(delivery.get("backoffDelay"))
        timeout = iso_duration(delivery.get("timeout"))
        budgets.append(
            RetryBudget(
                trigger=str(manifests.ObjKey.of(trigger)),
                retry=int(delivery.get("retry") or 0),
                policy=str(delivery.get("backoffPolicy") or "exponential"),
                delay_s=delay.total_seconds() if delay else default_delay,
                timeout_s=timeout.total_seconds() if timeout else DEFAULT_TIMEOUT_S,
                timeout_defaulted=timeout is None,
                delivery_from=source,
            )
        )
    return budgets
