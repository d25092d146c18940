"""The Kafka data plane's client settings as the render ships them: config-kafka-<component>-data-plane.

Each data plane reads its Kafka producer and consumer properties from a ConfigMap in knative-eventing
(eventing-kafka-broker knative-v1.23.0 data-plane/config/<component>/100-config-kafka-<component>-data-plane.yaml:
keys config-kafka-<component>-producer.properties and -consumer.properties, Java properties files). The Broker's
ConfigMap is in a release asset an offline render leaves out, so callers pass `EnvContext.with_stand_ins`: the
objects rebuilt from the same sources, with the overlays' patches.
"""

from dataclasses import dataclass

from gitops.core import manifests
from gitops.core.manifests import Obj

NAMESPACE = "knative-eventing"


@dataclass(frozen=True)
class ClientConfig:
    configmap: Obj | None
    key: str  # e.g. config-kafka-broker-producer.properties
    values: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def parse_properties(text: str) -> dict[str, str]:
    """A Java properties file's simple form (the one upstream ships): `key=value` or `key: value` lines, `#`/`!`
    comments, blank lines."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut < 0:
            found[line] = ""
        else:
            found[line[:cut].strip()] = line[cut + 1 :].strip()
    return found


def client_config(objects: list[Obj], component: str, client: str) -> ClientConfig:
    """component: broker | source | sink; client: producer | consumer."""
    configmap = manifests.find(objects, "", "ConfigMap", NAMESPACE, f"config-kafka-{component}-data-plane")
    key = f"config-kafka-{component}-{client}.properties"
    text = str(((configmap or {}).get("data") or {}).get(key) or "")
    return ClientConfig(configmap, key, parse_properties(text))
