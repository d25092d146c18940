"""The data plane's client properties as the render ships them (config-kafka-<component>-data-plane)."""

from gitops.model.data_plane import client_config, parse_properties


def test_properties_files_parse_as_java_reads_the_simple_form() -> None:
    text = "# comment\n! also a comment\n\nacks=all\nauto.offset.reset = earliest\nkey: value\nflag\n"
    assert parse_properties(text) == {"acks": "all", "auto.offset.reset": "earliest", "key": "value", "flag": ""}


def test_the_broker_data_plane_is_read_from_its_stand_in(renders) -> None:
    render = renders["prod"]
    producer = client_config(render.objects + render.stand_ins, "broker", "producer")
    consumer = client_config(render.objects + render.stand_ins, "broker", "consumer")
    # upstream data-plane/config/broker/100-config-kafka-broker-data-plane.yaml at knative-v1.23.0
    assert producer.get("acks") == "all" and consumer.get("auto.offset.reset") == "latest"
    assert client_config(render.objects, "nothing", "producer").configmap is None
