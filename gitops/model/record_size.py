"""How large a record each hop of the event path accepts, and how much room each hop needs above the one before.

The fact: each source topic's largest record, `max_record_bytes` in the app's topic table
(apps/<app>/src/<app>/topics.py `TOPICS`; the topic's Kafka `max.message.bytes`). From it, in the order an event
travels (docs/operations.md, "Record size"):

1. the Broker receiver's producer (`max.request.size` in `config-kafka-broker-producer.properties` of the
   ConfigMap knative-eventing/config-kafka-broker-data-plane, shared with the Broker dispatcher's reply producer)
   must take the record plus its CloudEvent wrapping: the KafkaSource re-sends the record over HTTP in binary mode
   with its attributes as `ce-` headers, and the receiver writes them as `ce_` record headers and the partition
   key as the record key. Every added byte crosses the receiver's HTTP head, which Vert.x caps at
   `HttpServerOptions.DEFAULT_MAX_HEADER_SIZE` = 8192 bytes (vertx-core 4.5; the data plane's
   config-kafka-broker-httpserver.properties does not raise it), and the key at most once more: WRAPPING_BYTES;
2. the Broker's topic (`default.topic.config.max.message.bytes` of the Broker's ConfigMap, applied when Knative
   creates the topic: eventing-kafka-broker control-plane/pkg/kafka/topic.go `DefaultTopicConfigPrefix`) must take
   what that producer may send;
3. the subscriber's body limit (its route's `max_record_bytes` unless MAX_BODY_BYTES overrides it) must take the
   record's value, which is the binary-mode body;
4. the dead-letter sink's receiver producer (`max.request.size` in `config-kafka-sink-producer.properties` of
   knative-eventing/config-kafka-sink-data-plane) must take what the Broker's topic holds plus the error
   extensions the dispatcher adds (data-plane dispatcher RecordDispatcherImpl: knativeerrordest, knativeerrorcode,
   knativeerrordata cut at KN_ERROR_DATA_MAX_BYTES = 1024 and sent base64, so 1368 characters): ERROR_BYTES;
5. the dead-letter topic must take what that producer may send. The 1.23 KafkaSink cannot say so: its controller
   creates the topic with partitions and replication factor only (control-plane/pkg/reconciler/sink/kafka_sink.go
   `topicConfigFromSinkSpec`), so an operator sets `max.message.bytes` on it to at least the sink producer's
   `max.request.size` (docs/operations.md, "Record size"); the e2e stack creates it so.

The dispatchers' consumers need nothing: a consumer returns a record larger than `max.partition.fetch.bytes`
alone rather than stall (Kafka KIP-74). The KafkaSource dispatcher's producer is unused (its sink is the Broker,
over HTTP).
"""

from dataclasses import dataclass

from gitops.model.app_routes import topic_table

VERTX_MAX_HEADER_BYTES = 8192  # io.vertx.core.http.HttpServerOptions.DEFAULT_MAX_HEADER_SIZE
WRAPPING_BYTES = 2 * VERTX_MAX_HEADER_BYTES
"""The attributes the KafkaSource adds (as record headers) and the partition key again (as the record key): each
fits the receiver's 8 KiB HTTP head, which refuses a larger one before anything is produced."""
KN_ERROR_DATA_MAX_BYTES = 1024  # data-plane dispatcher RecordDispatcherImpl.KN_ERROR_DATA_MAX_BYTES
ERROR_BYTES = 4096
"""knativeerrordata (1024 bytes, base64: 1368), knativeerrordest (the subscriber's URL), knativeerrorcode and the
`ce_` header names, with room to spare; the subscriber sends no `kne-` response headers, the only other source."""

BROKER_DATA_PLANE = ("knative-eventing", "config-kafka-broker-data-plane", "config-kafka-broker-producer.properties")
SINK_DATA_PLANE = ("knative-eventing", "config-kafka-sink-data-plane", "config-kafka-sink-producer.properties")
MAX_REQUEST_SIZE = "max.request.size"
KAFKA_DEFAULT_MAX_REQUEST_SIZE = 1048576  # the Kafka producer's default, and upstream's value in both ConfigMaps
TOPIC_MAX_MESSAGE_BYTES = "default.topic.config.max.message.bytes"


@dataclass(frozen=True)
class SourceTopic:
    name: str
    max_record_bytes: int


def topic_record_limits(app_name: str) -> dict[str, int] | None:
    """topic -> its largest record, from the app's topic table (`<app>.topics.TOPICS`), or None without one."""
    table = topic_table(app_name)
    if table is None:
        return None
    limits = {str(name): getattr(topic, "max_record_bytes", None) for name, topic in table.items()}
    return {name: value for name, value in limits.items() if isinstance(value, int)}


def java_properties(text: str) -> dict[str, str]:
    """The `key=value` lines of a Java properties file as the data plane reads it (comments and blanks skipped;
    the data plane's files use neither continuations nor escapes)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            key, _, value = stripped.partition(":")
        found[key.strip()] = value.strip()
    return found


def producer_limit(properties: str) -> int | None:
    """The producer's max.request.size (Kafka's default when unset), or None when it is not a number."""
    raw = java_properties(properties).get(MAX_REQUEST_SIZE)
    if raw is None:
        return KAFKA_DEFAULT_MAX_REQUEST_SIZE
    return int(raw) if raw.isdigit() else None


def required_receiver_bytes(largest_record: int) -> int:
    return largest_record + WRAPPING_BYTES


def required_dead_letter_bytes(broker_topic_bytes: int) -> int:
    return broker_topic_bytes + ERROR_BYTES
